"""Without a Prefect server (a plain `vamosjuntos run`), one run per date is a file lock the kernel owns.

Real processes on Prefect's ephemeral API sharing one PREFECT_HOME, as two runs on one machine do: a run
killed with SIGKILL while it holds its date must not block the next run of that date (a global
concurrency slot taken on the ephemeral server stays taken in its database after its holder dies), and a
second live run of the date still waits for the first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.date_lock import lock_path
from flows.settings import Settings
from tests.k8s.conftest import REPO

pytestmark = pytest.mark.integration
DATE = "2026-11-25"
HOLDER = """
import sys, time
from pathlib import Path
from prefect import flow
from flows.date_lock import one_rollback_per_table, one_run_per_date
from flows.settings import Settings

@flow
def hold(date: str, marker: str, release: str) -> float:
    # hold the date (or a table's rollback: "rollback:TABLE") until the file `release` exists
    kind, _, table = date.partition(":")
    lake = Settings()
    guard = one_rollback_per_table(table, lake) if kind == "rollback" else one_run_per_date(date, lake)
    with guard:  # the lake from VAMOSJUNTOS_LAKE_ROOT
        Path(marker).write_text(str(time.time()))
        while not Path(release).exists():
            time.sleep(0.1)
        return time.time()

print("released", hold(sys.argv[1], sys.argv[2], sys.argv[3]), flush=True)
"""


def _start(tmp_path: Path, marker: Path, release: Path, held: str = DATE) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "VAMOSJUNTOS_"))}
    env.update(
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_HOME=str(tmp_path / "prefect-home"),  # one ephemeral database, as on one machine
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="300",  # a busy machine starts it slowly
        VAMOSJUNTOS_LAKE_ROOT=str(tmp_path / "lake"),
        PYTHONPATH=str(REPO),
    )
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, held, str(marker), str(release)],
        env=env,
        cwd=tmp_path,
        stdout=(tmp_path / f"{marker.name}.log").open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _log(marker: Path) -> str:
    return marker.with_name(f"{marker.name}.log").read_text()


def _wait_for(marker: Path, proc: subprocess.Popen[str], timeout_s: float = 180) -> float:
    deadline = time.monotonic() + timeout_s
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"the holder exited before taking the date: {_log(marker)[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail("the holder never took the date")
        time.sleep(0.2)
    return float(marker.read_text())


def test_a_killed_run_does_not_hold_its_date(tmp_path: Path) -> None:
    killed = _start(tmp_path, tmp_path / "killed", tmp_path / "never")
    after: subprocess.Popen[str] | None = None
    try:
        _wait_for(tmp_path / "killed", killed)
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(10)

        (tmp_path / "go").touch()
        after = _start(tmp_path, tmp_path / "after", tmp_path / "go")
        try:
            after.wait(timeout=180)
        except subprocess.TimeoutExpired:
            pytest.fail("the next run of the date waited for a run that had been killed")
        log = _log(tmp_path / "after")
        assert after.returncode == 0 and "released" in log, log[-3000:]
    finally:
        _kill(killed, after)
    # The lock lives beside the lake and says who held it last.
    lock = lock_path(Settings(lake_root=str(tmp_path / "lake")), DATE)
    assert lock.exists() and lock.read_text().startswith("pid ")


def _kill(*procs: subprocess.Popen[str] | None) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.mark.parametrize(
    ("held", "waiting"),
    [
        (DATE, f"Another run of {DATE} is in progress"),
        # a rollback of one consumer table at a time: the second then sees what the first did
        ("rollback:regioes", "Another run of rollback regioes is in progress"),
    ],
)
def test_a_second_live_run_of_the_date_waits_for_the_first(tmp_path: Path, held: str, waiting: str) -> None:
    release = tmp_path / "release"
    first = _start(tmp_path, tmp_path / "first", release, held)
    _wait_for(tmp_path / "first", first)
    second = _start(tmp_path, tmp_path / "second", tmp_path / "first", held)  # released once it holds
    try:
        deadline = time.monotonic() + 180
        while waiting not in _log(tmp_path / "second"):
            assert second.poll() is None, f"the second run did not wait: {_log(tmp_path / 'second')[-3000:]}"
            assert time.monotonic() < deadline, "the second run never reached the date"
            time.sleep(0.2)
        assert not (tmp_path / "second").exists()  # still waiting while the first holds the date
        release.touch()
        assert first.wait(180) == 0 and second.wait(180) == 0, _log(tmp_path / "second")[-3000:]
    finally:
        release.touch()
        _kill(first, second)
    released = float(_log(tmp_path / "first").split("released", 1)[1].split()[0])
    assert float((tmp_path / "second").read_text()) >= released
