"""A failing command prints one summary (what, where, what to do) and where the full trace is; no
traceback on the console unless --verbose. Run as a user runs it: the console script's module, in a
subprocess, with its own Prefect home."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flows.sources.local_mongo import free_port


def _cli(tmp_path: Path, *args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    """The command in a subprocess; `env` adds variables, or removes those given as None."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VAMOSJUNTOS_", "PREFECT_API"))}
    base.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="300",  # a busy machine starts it slowly
        VAMOSJUNTOS_IBGE_SOURCE="snapshot",
    )
    for name, value in env.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, env=base, timeout=600
    )


def _log_file(stderr: str) -> Path:
    match = re.search(r"the full trace is in (\S+\.log);", stderr)
    assert match, stderr
    return Path(match.group(1))


def _assert_one_summary(done: subprocess.CompletedProcess[str], *expected: str) -> Path:
    console = done.stdout + done.stderr
    assert done.returncode == 1
    assert "Traceback" not in console, console
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    for text in expected:
        assert text in errors[0], errors[0]
    log = _log_file(done.stderr)
    assert "Traceback (most recent call last)" in log.read_text()
    return log


def test_a_lake_root_that_is_a_file_gives_one_clear_line(tmp_path: Path) -> None:
    lake = tmp_path / "lake-is-a-file"
    lake.write_text("not a folder")
    done = _cli(tmp_path, "run", "--rows", "10", VAMOSJUNTOS_LAKE_ROOT=str(lake))
    _assert_one_summary(done, f"{lake} is a file, not a folder", "VAMOSJUNTOS_LAKE_ROOT")
    assert len(done.stderr.splitlines()) == 2

    verbose = _cli(tmp_path, "run", "--rows", "10", "--verbose", VAMOSJUNTOS_LAKE_ROOT=str(lake))
    assert verbose.returncode == 1 and "Traceback (most recent call last)" in verbose.stderr

    answers = _cli(tmp_path, "answers", VAMOSJUNTOS_LAKE_ROOT=str(lake))
    _assert_one_summary(answers, "Not a directory", "VAMOSJUNTOS_LAKE_ROOT")


def test_a_lake_root_that_cannot_be_written_gives_one_clear_line(tmp_path: Path) -> None:
    # Root ignores file modes; /proc refuses new folders whoever asks.
    done = _cli(tmp_path, "run", "--rows", "10", VAMOSJUNTOS_LAKE_ROOT="/proc/self/lake")
    _assert_one_summary(done, "cannot be written", "VAMOSJUNTOS_LAKE_ROOT")


def test_settings_the_environment_refuses_are_named_as_the_user_sets_them_never_with_their_value(
    tmp_path: Path,
) -> None:
    done = _cli(
        tmp_path, "run", "--rows", "10", VAMOSJUNTOS_SEED_ROWS="ten", VAMOSJUNTOS_MAX_QUARANTINE_SHARE="2"
    )
    _assert_one_summary(done, "the settings are not valid")
    assert "  VAMOSJUNTOS_SEED_ROWS: Input should be a valid integer" in done.stderr
    assert "  VAMOSJUNTOS_MAX_QUARANTINE_SHARE: Input should be less than or equal to 1" in done.stderr

    secret = "tok-3f9a7c1e5b"
    done = _cli(tmp_path, "answers", VAMOSJUNTOS_SPARK_REMOTE=f"http://localhost:15002/;token={secret}")
    log = _assert_one_summary(done, "the settings are not valid")
    assert "  VAMOSJUNTOS_SPARK_REMOTE must be a Spark Connect URL" in done.stderr
    assert secret not in done.stdout + done.stderr + log.read_text()

    # set but empty, or without its scheme: refused, not taken for "unset" (the embedded stand-in's
    # generated documents instead of the real source)
    lake = tmp_path / "lake"
    for uri in ("", "etl:Secret-PW@db.example:27017"):
        done = _cli(
            tmp_path, "run", "--rows", "10", VAMOSJUNTOS_LAKE_ROOT=str(lake), VAMOSJUNTOS_MONGO_URI=uri
        )
        log = _assert_one_summary(done, "the settings are not valid")
        assert "  VAMOSJUNTOS_MONGO_URI: not a MongoDB URI" in done.stderr
        assert "Secret-PW" not in done.stdout + done.stderr + log.read_text()
        assert not lake.exists()  # nothing ran


def test_athena_with_a_local_lake_is_refused_before_the_run_starts(tmp_path: Path) -> None:
    done = _cli(
        tmp_path,
        "run",
        "--rows",
        "10",
        VAMOSJUNTOS_LAKE_ROOT=str(tmp_path / "lake"),
        VAMOSJUNTOS_ENGINE="athena",
    )
    _assert_one_summary(done, "the settings are not valid")
    assert "needs the consumer zone on S3" in done.stderr
    assert not (tmp_path / "lake").exists()  # nothing ran


def test_an_s3_lake_without_aws_credentials_says_how_to_give_them(tmp_path: Path) -> None:
    nowhere = str(tmp_path / "no-such-file")
    no_credentials: dict[str, str | None] = {
        "VAMOSJUNTOS_LAKE_ROOT": "s3://vamosjuntos-lake",
        "AWS_SHARED_CREDENTIALS_FILE": nowhere,
        "AWS_CONFIG_FILE": nowhere,
        "AWS_EC2_METADATA_DISABLED": "true",  # no instance role to ask for
    }
    for name in (
        "ACCESS_KEY_ID",
        "SECRET_ACCESS_KEY",
        "SESSION_TOKEN",
        "PROFILE",
        "DEFAULT_PROFILE",
        "CONTAINER_CREDENTIALS_FULL_URI",
        "CONTAINER_CREDENTIALS_RELATIVE_URI",
        "WEB_IDENTITY_TOKEN_FILE",
    ):
        no_credentials[f"AWS_{name}"] = None
    done = _cli(tmp_path, "answers", **no_credentials)
    _assert_one_summary(done, "no AWS credentials were found", "AWS_PROFILE")

    done = _cli(tmp_path, "answers", **{**no_credentials, "AWS_PROFILE": "nobody-has-this"})
    _assert_one_summary(done, "nobody-has-this", "AWS_PROFILE")


@pytest.mark.integration
def test_a_failure_inside_the_flows_prints_progress_and_one_summary_without_tracebacks(
    tmp_path: Path,
) -> None:
    dead = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    done = _cli(
        tmp_path,
        "run",
        "--ingestion-date",
        "2026-11-25",
        VAMOSJUNTOS_LAKE_ROOT=str(tmp_path / "lake"),
        VAMOSJUNTOS_MONGO_URI=dead,
        VAMOSJUNTOS_MONGO_SERVER_SELECTION_TIMEOUT_MS="300",
    )
    log = _assert_one_summary(done, "cannot be reached within 300 ms")
    assert "Beginning flow run" in done.stderr  # progress still shows
    assert len(done.stderr.splitlines()) < 40, done.stderr
    assert log.read_text().count("Traceback (most recent call last)") >= 2  # Prefect's and the summary's
