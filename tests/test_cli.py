"""The command line's own behaviour: Java checks, the answers of the latest run, the query sent ahead."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

import flows.pipeline as pipeline
from flows import cli
from flows.answers import Answer, load_latest, store
from flows.cli import main
from flows.errors import AnswerError, VamosJuntosError
from flows.lake import Lake
from flows.settings import Settings
from flows.sources.local_mongo import SecantusProcess
from flows.sources.mongo import ahead


def fake_java(tmp_path: Path, version: str) -> Path:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2021-01-19' >&2\n")
    java.chmod(0o755)
    return home


@pytest.mark.parametrize("version", ["11.0.2", "1.8.0_292"])
def test_run_refuses_an_old_java_and_says_how_to_get_17(tmp_path: Path, version: str) -> None:
    env = {"JAVA_HOME": str(fake_java(tmp_path, version)), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--rows", "10"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 1
    assert "Spark needs Java 17 or newer" in done.stderr and "openjdk-17-jre-headless" in done.stderr


def test_answers_without_a_run_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("VAMOSJUNTOS_LAKE_ROOT", str(tmp_path / "empty"))
    assert main(["answers"]) == 1
    assert "run `vamosjuntos run` first" in capsys.readouterr().err


def test_answers_json_and_table_formats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("VAMOSJUNTOS_LAKE_ROOT", str(tmp_path / "lake"))
    answers = [
        Answer(1, "Average income?", 2150.5, 10),
        Answer(6, "Men in MT?", None, 0),
        Answer(4, "State?", "Pará", 7),
    ]
    store(Lake(Settings()), answers, {"flow_run_id": "x"})

    assert main(["answers", "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == [
        {"id": 1, "question": "Average income?", "answer": 2150.5, "rows": 10},
        {"id": 6, "question": "Men in MT?", "answer": None, "rows": 0},
        {"id": 4, "question": "State?", "answer": "Pará", "rows": 7},
    ]
    assert main(["answers"]) == 0
    table = capsys.readouterr().out
    assert "2,150.50" in table and "no data" in table and "Pará" in table


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_an_answer_that_is_not_finite_is_never_stored(tmp_path: Path, bad: float) -> None:
    lake = Lake(Settings(lake_root=str(tmp_path / "lake")))
    store(lake, [Answer(1, "Average income?", 2150.5, 10)], {"flow_run_id": "good"})
    with pytest.raises(AnswerError, match=r"question 1: (inf|-inf|nan).*previous answers were kept"):
        store(lake, [Answer(1, "Average income?", bad, 10)], {"flow_run_id": "bad"})
    assert load_latest(lake)["run"] == {"flow_run_id": "good"}


def test_answers_of_an_older_run_holding_infinity_give_a_clear_error_not_invalid_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("VAMOSJUNTOS_LAKE_ROOT", str(tmp_path / "lake"))
    answers = [{"id": 1, "question": "Average income?", "answer": float("inf"), "rows": 2}]
    Lake(Settings()).write_json("consumer", "_answers/latest.json", {"answers": answers})  # as 0.x wrote it
    assert main(["answers", "--format", "json"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "not finite numbers (question 1: inf)" in err and "run `vamosjuntos run`" in err


def test_answers_with_a_key_added_beside_them_print_as_the_run_stored_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A key not an answer's, holding NaN (which JSON output refuses), failed `--format json` with an
    unexpected ValueError."""
    monkeypatch.setenv("VAMOSJUNTOS_LAKE_ROOT", str(tmp_path / "lake"))
    store(Lake(Settings()), [Answer(1, "Average income?", 2150.5, 10)], {"flow_run_id": "x"})
    latest = Path(Lake(Settings()).path("consumer", "_answers/latest.json"))
    payload = json.loads(latest.read_text())
    payload["answers"][0]["note"] = float("nan")
    latest.write_text(json.dumps(payload))  # `NaN`, as Python's json module writes and reads it
    assert '"note": NaN' in latest.read_text()
    assert main(["answers", "--format", "json"]) == 0
    out, _ = capsys.readouterr()
    assert json.loads(out) == [{"id": 1, "question": "Average income?", "answer": 2150.5, "rows": 10}]


@pytest.mark.parametrize(
    "body",
    [
        '{"answers": 5}',
        '{"answers": [{"id": 1}]}',
        '{"answers": [{"id": "1", "question": "Q", "answer": 1.0, "rows": 2}]}',
        '{"answers": [{"id": 11, "question": "Q", "answer": 1.0, "rows": 2}]}',
        '{"answers": [{"id": 1, "question": "Q", "answer": "x", "rows": 2}]}',
        '{"answers": [{"id": true, "question": "Q", "answer": 1.0, "rows": 2}]}',
        '{"answers": [{"id": 1, "question": "Q", "answer": true, "rows": 2}]}',
        '{"answers": [{"id": 1, "question": "Q", "rows": 2}]}',
        "[]",
    ],
)
def test_answers_changed_outside_the_pipeline_say_so_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, body: str
) -> None:
    monkeypatch.setenv("VAMOSJUNTOS_LAKE_ROOT", str(tmp_path / "lake"))
    store(Lake(Settings()), [Answer(1, "Average income?", 2150.5, 10)], {"flow_run_id": "x"})
    latest = Path(Lake(Settings()).path("consumer", "_answers/latest.json"))
    latest.write_text(body)
    for argv in (["answers"], ["answers", "--format", "json"]):
        assert main(argv) == 1
        out, err = capsys.readouterr()
        assert out == "" and err.startswith(
            f"error: The latest answers cannot be read: {latest} is damaged ("
        )
        assert "Run `vamosjuntos run` again to answer anew" in err


def test_a_run_failing_before_its_flow_run_leaves_no_spark_warm_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, prefect_harness: None
) -> None:
    """Spark's JVM starts at the top of the `lakehouse` run (flows/spark/warmup.py), which discards it if
    the run fails; a failure before that run (here: Prefect's temporary server not starting) starts none."""
    import threading

    from flows.in_process import TemporaryServer
    from flows.spark import warmup

    def refuse(self: TemporaryServer) -> None:
        raise RuntimeError("the temporary server did not start")

    # where a run finds its server did not start (the session's server is named: none starts here)
    monkeypatch.setattr(TemporaryServer, "wait", refuse)
    monkeypatch.setattr(warmup, "_current", None)
    monkeypatch.setenv("VAMOSJUNTOS_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("VAMOSJUNTOS_SPARK_MASTER", "local[1]")
    assert main(["run", "--rows", "10", "--ingestion-date", "2026-11-25"]) == 1
    assert "the temporary server did not start" in capsys.readouterr().err
    assert warmup._current is None
    assert warmup.THREAD_NAME not in {thread.name for thread in threading.enumerate()}


def test_a_signal_s_advice_fits_the_command() -> None:
    """Terminated says what to do next: a date is run again, a backfill's range resumes, a rollback is
    run again (finished if it stopped half-way, refused if it completed), a command that only reads is run
    again."""
    import argparse
    import signal

    from flows.cli import after_a_signal
    from flows.errors import Terminated

    def said(**args: object) -> str:
        return str(Terminated(signal.SIGTERM, after_a_signal(argparse.Namespace(**args))))

    single = said(command="run", start=None, end=None, ingestion_date="2026-11-25")
    assert single.startswith("terminated by SIGTERM: the command stopped. ")
    assert "run the same date again (`--ingestion-date 2026-11-25`)" in single
    backfill = said(command="run", start="2026-11-01", end="2026-11-05", ingestion_date=None)
    assert "run the same range again (`--from 2026-11-01 --to 2026-11-05`)" in backfill
    assert "skips the dates it completed" in backfill and "same date" not in backfill
    rollback = said(command="rollback", table="ufs", to_run_id=None, list=False)
    assert "`vamosjuntos rollback ufs --list` shows which run is current" in rollback
    assert "one that stopped before the catalog and the answers followed is finished" in rollback
    assert "date" not in rollback and "committed stays" not in rollback
    answers = said(command="answers", format="table")
    assert "Nothing in the lake changed; run the command again." in answers and "date" not in answers


class _Stop(VamosJuntosError):
    pass


@pytest.mark.parametrize(
    ("argv", "sent"),
    [
        (["--ingestion-date", "2026-11-25"], [("2026-11-25", False, False)]),
        (["--ingestion-date", "2026-11-25", "--full-refresh"], [("2026-11-25", True, False)]),
        (["--from", "2026-11-24", "--to", "2026-11-25"], []),  # a backfill: each date plans after the last
    ],
)
def test_run_sends_the_stream_s_query_ahead_and_closes_it_when_no_stream_took_it(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    prefect_harness: None,
    seeded: Callable[[int], SecantusProcess],
    argv: list[str],
    sent: list[tuple[str, bool, bool]],
) -> None:
    """flows/sources/mongo/ahead.py: the command sends it before Prefect's server is awaited; a run that
    fails before its stream leaves no cursor open on the server (it would hold its whole answer)."""
    server = seeded(30)
    monkeypatch.setenv("VAMOSJUNTOS_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("VAMOSJUNTOS_MONGO_URI", server.uri)
    monkeypatch.setenv("VAMOSJUNTOS_MONGO_BATCH_SIZE", "7")  # the answer outlives its first batch
    made: list[ahead.Sent] = []
    calls: list[tuple[str, bool, bool]] = []

    class Recorded(ahead.Sent):
        def __init__(self, settings: Settings, date: str, full_refresh: bool, embedded: bool) -> None:
            calls.append((date, full_refresh, embedded))
            super().__init__(settings, date, full_refresh, embedded)
            made.append(self)

    def stop(*args: Any, **kwargs: Any) -> None:
        for one in made:
            one.wait()
        raise _Stop("stopped before the flow")

    monkeypatch.setattr(ahead, "Sent", Recorded)
    monkeypatch.setattr(pipeline, "lakehouse", stop)
    monkeypatch.setattr(cli, "run_backfill", stop)
    assert main(["run", *argv]) == 1
    assert calls == sent
    assert all(one.query is not None and one._client is None for one in made) and ahead._sent is None
    with MongoClient(server.uri) as client:
        assert client.admin.command("serverStatus")["metrics"]["cursor"]["open"]["total"] == 0
