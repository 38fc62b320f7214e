"""A `vamosjuntos run` sent SIGTERM (a container stop, `kill`, a CI timeout) ends promptly and cleanly.

The command as a user runs it, in a process of its own: SIGTERM while MongoDB is being extracted, then again
(a fresh run) while a Spark step runs. Each time it exits soon with one clear line and a non-zero code, leaves
no process it started (the JVM, SecantusDB, Prefect's server, the watchdog), and no half-written unit
visible; a rerun of the date then succeeds. The same when the signal goes to the run's whole process group
(`timeout`, `kill -- -PGID`, a systemd stop) and for Ctrl-C's SIGINT to it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import pytest

from flows.lake import Lake
from flows.layout import Zone, raw_pnadc, units_of
from flows.orphans import MARK
from flows.settings import Settings

DATE = "2026-11-25"
ROWS = "60000"  # enough that the extraction and the Spark steps last seconds, not a blink
EXIT_WITHIN_S = 60  # generous on a loaded machine; a hang is minutes (the warm-up join waited 120 s)
GROUP_EXIT_WITHIN_S = 90  # the crash recorded against a dead server took > 120 s
STARTED = ("secantus", "uvicorn", "flows.orphans", "java")
SPARK_STEP_ATTEMPTS = 3


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAMOSJUNTOS_", "PREFECT_API", MARK))}
    return env | {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
        "VAMOSJUNTOS_IBGE_SOURCE": "snapshot",
        "VAMOSJUNTOS_LAKE_ROOT": str(tmp_path / "lake"),
        # Parts of 5,000 of the 60,000 rows: case 1's "a part written, no manifest yet" lasts most of the
        # extraction, not only its last 10,000 documents (with the default 50,000 a part).
        "VAMOSJUNTOS_MONGO_BATCH_SIZE": "5000",
        "VAMOSJUNTOS_SPARK_SHUFFLE_PARTITIONS": "4",
    }


def _args() -> list[str]:
    return [sys.executable, "-m", "flows.cli", "run", "--rows", ROWS, "--ingestion-date", DATE]


def _as_at_a_terminal() -> None:
    """In the child before it runs: SIGINT as a command typed at a terminal has it, whatever the tests'
    own parent left it as (a shell starts background jobs with SIGINT ignored, and the run honours that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _children(run: subprocess.Popen[bytes]) -> dict[str, psutil.Process]:
    found: dict[str, psutil.Process] = {}
    with suppress(psutil.Error):
        for proc in psutil.Process(run.pid).children(recursive=True):
            with suppress(psutil.Error):
                command = " ".join(proc.cmdline())
                found.update({k: proc for k in STARTED if k in command})
    return found


def _terminate_when(
    run: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    timeout_s: float = 900,
    signum: int = signal.SIGTERM,
    group: bool = False,
    passed: Callable[[], bool] = lambda: False,
) -> dict[str, psutil.Process] | None:
    """Send `signum` to the run (or its whole process group) once `ready()`; what it had started by then.
    None, and no signal, when `passed()` says the moment went by between two looks (a loaded machine can
    keep this loop from looking for seconds)."""
    started: dict[str, psutil.Process] = {}
    deadline = time.monotonic() + timeout_s
    while not ready():
        if passed():
            return None
        assert run.poll() is None, f"the run ended first ({run.returncode})"
        assert time.monotonic() < deadline, "the moment to terminate never came"
        started.update(_children(run))
        time.sleep(0.1)
    started.update(_children(run))
    if run.poll() is not None and passed():
        return None
    # Popen.send_signal sends nothing to a run that has ended: say so, not "it exited 0 after the signal".
    assert run.returncode is None, f"the run ended ({run.returncode}) before it could be signalled"
    # Held still from the last look to the signal: the run's Python process is what commits, so no commit
    # can come between them, however late this process gets to send it (the signal waits for SIGCONT).
    os.kill(run.pid, signal.SIGSTOP)  # not reaped (it was just polled): the pid is still the run's
    try:
        if passed():
            return None
        if group:  # the run leads its own group (started in a session of its own)
            os.killpg(run.pid, signum)
        else:
            os.kill(run.pid, signum)
    finally:
        os.kill(run.pid, signal.SIGCONT)
    return started


def _still_alive(procs: list[psutil.Process], within_s: float) -> list[str]:
    _, alive = psutil.wait_procs(procs, timeout=within_s)
    return [" ".join(p.cmdline())[:120] for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def _visible_units(lake: Lake) -> dict[str, int]:
    """Every unit of the date a reader can see (a manifest), and the files its manifest names that exist."""
    seen = {}
    for unit in units_of(DATE):
        manifest = lake.manifest(unit.zone, unit.path)
        if manifest is not None:
            files = lake.committed_files(unit.zone, unit.path)
            assert files and all(lake.fs(unit.zone).exists(f) for f in files), unit
            seen[f"{unit.zone}/{unit.path}"] = manifest["records"]
    return seen


def _run_id(lake: Lake, zone: Zone, unit: str) -> str | None:
    manifest = lake.manifest(zone, unit)
    return None if manifest is None else str(manifest["run_id"])


def _consumer_runs(lake: Lake) -> dict[str, str | None]:
    """The run each consumer table's manifest names now (None: not written)."""
    return {u.path: _run_id(lake, u.zone, u.path) for u in units_of(DATE) if u.zone == "consumer"}


def _spark_step_writing(lake: Lake, root: Path, raw_before: str | None, since: float) -> bool:
    """This run's raw batch is committed (a manifest not the one before it) and processing files are
    written since `since`."""
    with suppress(FileNotFoundError):  # a file can go while the walk reaches it (Spark's temporary files)
        return _run_id(lake, "raw", raw_pnadc(DATE)) not in (None, raw_before) and any(
            f.stat().st_mtime >= since for f in (root / "lake" / "processing").rglob("*.parquet")
        )
    return False


def _replaced(lake: Lake, consumer: dict[str, str | None]) -> bool:
    return _consumer_runs(lake) != consumer


def _signalled_during_spark_step(
    lake: Lake, root: Path, log: Path, signum: int = signal.SIGTERM, group: bool = False, **popen: Any
) -> tuple[subprocess.Popen[bytes], dict[str, psutil.Process], dict[str, str | None]]:
    """A run of DATE signalled after its Spark steps began and before its consumer commits: its raw batch
    committed, processing files of its own written, every consumer table still as before it. Returns the
    run, what it had started and the consumer's runs before it.

    The run's Spark steps last seconds; a look that comes later (a loaded machine) finds the consumer
    replaced: that run ends by itself (its log kept beside `log`) and the date is run again, up to
    SPARK_STEP_ATTEMPTS times. Only a run never signalled is tried again. (In ci95 a run "exited 0 after
    SIGTERM": its log shows no signal, the test's look having come as it ended, and Popen.send_signal
    sending nothing to a run that has.)"""
    for attempt in range(1, SPARK_STEP_ATTEMPTS + 1):
        consumer = _consumer_runs(lake)
        writing = partial(_spark_step_writing, lake, root, _run_id(lake, "raw", raw_pnadc(DATE)), time.time())
        with log.open("wb") as err:
            run = subprocess.Popen(
                _args(), stdout=subprocess.DEVNULL, stderr=err, start_new_session=group, **popen
            )
        try:
            started = _terminate_when(
                run, writing, signum=signum, group=group, passed=partial(_replaced, lake, consumer)
            )
            if started is not None:
                return run, started, consumer
            assert run.wait(timeout=900) == 0, log.read_text()[-3000:]  # unsignalled, it finishes
        except BaseException:
            run.kill()  # what it started goes with it (its watchdog: flows/orphans.py)
            run.wait()
            raise
        log.rename(log.with_name(f"{log.stem}.unsignalled-{attempt}{log.suffix}"))
    pytest.fail(f"none of {SPARK_STEP_ATTEMPTS} runs was seen between its processing files and its consumer")


def _assert_ended_cleanly(
    run: subprocess.Popen[bytes],
    started: dict[str, psutil.Process],
    log: Path,
    signum: int = signal.SIGTERM,
    within_s: float = EXIT_WITHIN_S,
) -> str:
    signalled = time.monotonic()
    try:
        run.wait(timeout=within_s)
    except subprocess.TimeoutExpired:
        left = {k: p.pid for k, p in _children(run).items()}
        run.kill()
        run.wait()
        name = signal.Signals(signum).name
        pytest.fail(f"still running {within_s} s after {name} (children {left}): {log.read_text()[-3000:]}")
    took = time.monotonic() - signalled
    assert run.returncode == 128 + signum, run.returncode  # the shell's code for "ended by" the signal
    err = [line for line in log.read_text().splitlines() if line.strip()]
    # One summary (Spark's JVM, still starting, may print after it: its stderr is the run's).
    errors = [i for i, line in enumerate(err) if line.startswith("error: ")]
    assert len(errors) == 1, err[-15:]
    assert (
        err[errors[0]].startswith(f"error: terminated by {signal.Signals(signum).name}: ")
        and "run the same date again" in err[errors[0]]
    )
    assert err[errors[0] + 1].startswith("(the full trace is in ")
    assert not any(line.startswith("Traceback") for line in err), err
    assert _still_alive(list(started.values()), within_s=30) == [], started
    return f"exited {run.returncode} after {took:.1f} s"


@pytest.mark.integration
@pytest.mark.timeout(3600)  # up to five runs (Prefect, SecantusDB, Spark each) on a loaded machine
def test_a_terminated_run_ends_promptly_leaves_nothing_and_the_date_reruns(tmp_path: Path) -> None:
    env = _env(tmp_path)
    lake = Lake(Settings(lake_root=str(tmp_path / "lake")))
    raw = tmp_path / "lake" / "raw" / raw_pnadc(DATE)

    # 1. During the MongoDB extraction: a part file is written, the batch is not committed yet.
    log = tmp_path / "first.err"
    with log.open("wb") as err:
        run = subprocess.Popen(_args(), env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
        started = _terminate_when(
            run, lambda: any(raw.rglob("part-*")) and lake.manifest("raw", raw_pnadc(DATE)) is None
        )
        assert started is not None
        _assert_ended_cleanly(run, started, log)
    assert {"secantus", "uvicorn", "flows.orphans"} <= started.keys()
    assert not any(u.startswith(("raw/pnadc", "consumer/")) for u in _visible_units(lake))

    # 2. During a Spark step: the raw batches are committed, the consumer tables are not.
    log = tmp_path / "second.err"
    run, started, consumer = _signalled_during_spark_step(lake, tmp_path, log, env=env, cwd=tmp_path)
    _assert_ended_cleanly(run, started, log)
    assert "java" in started
    assert _consumer_runs(lake) == consumer  # nothing of the run visible there
    _visible_units(lake)  # and what is visible is whole

    # 3. The same date again, to the end.
    again = subprocess.run(_args(), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1500)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Average income" in again.stdout
    assert _visible_units(lake)[f"raw/{raw_pnadc(DATE)}"] == int(ROWS)


@pytest.mark.integration
@pytest.mark.timeout(3000)  # up to four runs on a loaded machine
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_the_runs_process_group_ends_it_promptly_and_the_date_reruns(
    tmp_path: Path, signum: int
) -> None:
    """`timeout`, `kill -- -PGID`, a systemd stop and Ctrl-C (SIGINT) signal every process of the run's group:
    Prefect's temporary server must outlive the signal long enough to record the crash, or the run spent
    minutes retrying against it and ended with `unexpected ConnectError`."""
    env = _env(tmp_path)
    lake = Lake(Settings(lake_root=str(tmp_path / "lake")))
    log = tmp_path / "signalled.err"
    run, started, consumer = _signalled_during_spark_step(
        lake, tmp_path, log, signum=signum, group=True, env=env, cwd=tmp_path, preexec_fn=_as_at_a_terminal
    )
    _assert_ended_cleanly(run, started, log, signum=signum, within_s=GROUP_EXIT_WITHIN_S)
    assert {"uvicorn", "java"} <= started.keys()
    assert _consumer_runs(lake) == consumer
    _visible_units(lake)

    again = subprocess.run(_args(), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1500)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _visible_units(lake)[f"raw/{raw_pnadc(DATE)}"] == int(ROWS)
