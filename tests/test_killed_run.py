"""After a run is killed (SIGKILL: none of its code runs again), nothing it started outlives it.

Real processes throughout: the CLI as a user runs it, real SecantusDB servers on real data folders, Prefect's
own temporary API server; pids are checked with psutil.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from contextlib import suppress
from pathlib import Path

import psutil
import pytest

from flows.errors import SourceUnavailable
from flows.orphans import MARK, stop_orphans
from flows.sources.local_mongo import SecantusProcess

REPO = Path(__file__).resolve().parents[1]


def _python(script: str, **env: str) -> subprocess.Popen[str]:
    """A process that prints one line of pids once what it starts is up, then waits to be killed."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k != MARK} | env,
    )


def _pids(proc: subprocess.Popen[str]) -> list[int]:
    line = proc.stdout.readline() if proc.stdout else ""
    assert line.startswith("PIDS"), f"the helper did not start (rc {proc.poll()}): {line!r}"
    return [int(p) for p in line.split()[1:]]


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def _gone(pids: list[int], within_s: float) -> list[int]:
    """The pids still alive after waiting `within_s` for all of them to end."""
    procs = []
    for pid in pids:
        with suppress(psutil.NoSuchProcess):
            procs.append(psutil.Process(pid))
    _, alive = psutil.wait_procs(procs, timeout=within_s)
    still = {p.pid for p in alive if p.status() != psutil.STATUS_ZOMBIE}
    # In the order asked for: wait_procs returns its own order.
    return [pid for pid in pids if pid in still]


GUARDED = """
    import subprocess, sys, time
    from flows.orphans import guard_this_run
    guard_this_run()
    # A child in its own session, as SecantusDB is, and a grandchild: no process group reaches both.
    child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
        "print(g.pid, flush=True); time.sleep(600)"], stdout=subprocess.PIPE, text=True,
        start_new_session=True)
    grandchild = child.stdout.readline().strip()
    from flows.orphans import _watchdog
    print("PIDS", child.pid, grandchild, _watchdog[0].pid, flush=True)
    time.sleep(600)
"""


def test_what_a_killed_run_started_ends_with_it() -> None:
    run = _python(GUARDED)
    child, grandchild, watchdog = _pids(run)
    _kill(run.pid)
    run.wait()
    assert _gone([child, grandchild, watchdog], within_s=30) == []


def test_the_next_run_stops_what_a_run_killed_with_its_watchdog_left() -> None:
    run = _python(GUARDED)
    child, grandchild, watchdog = _pids(run)
    _kill(watchdog)
    _kill(run.pid)
    run.wait()
    assert _gone([child, grandchild], within_s=3) == [child, grandchild]  # orphans, left alone

    stopped = stop_orphans()

    assert _gone([child, grandchild], within_s=15) == []
    assert {f"pid {child}", f"pid {grandchild}"} <= {name.split(" (")[0] for name in stopped}


def test_the_next_run_leaves_a_live_runs_processes_alone() -> None:
    run = _python(GUARDED)
    child, grandchild, _ = _pids(run)
    try:
        stop_orphans()
        assert psutil.pid_exists(child) and psutil.pid_exists(grandchild)
    finally:
        _kill(run.pid)
        run.wait()
    assert _gone([child, grandchild], within_s=30) == []


def test_guarding_twice_starts_one_watchdog() -> None:
    """Two commands in one process (as tests run them) share one watchdog."""
    run = _python(
        """
        import time
        from flows.orphans import _watchdog, guard_this_run
        guard_this_run()
        guard_this_run()
        print("PIDS", *[w.pid for w in _watchdog], flush=True)
        time.sleep(600)
        """
    )
    watchdogs = _pids(run)
    _kill(run.pid)
    run.wait()
    assert len(watchdogs) == 1
    assert _gone(watchdogs, within_s=30) == []


# --- the embedded SecantusDB's data folder --------------------------------------------------------
def test_a_secantusdb_left_on_the_data_folder_by_a_killed_owner_is_stopped_and_replaced(
    tmp_path: Path,
) -> None:
    owner = _python(
        f"""
        import time
        from flows.sources.local_mongo import SecantusProcess
        server = SecantusProcess({str(tmp_path / "mongo")!r}).start()
        print("PIDS", server.proc.pid, flush=True)
        time.sleep(600)
        """
    )
    (orphan,) = _pids(owner)
    _kill(owner.pid)  # the owner is gone; its server lives on, holding the folder's lock
    owner.wait()
    assert psutil.pid_exists(orphan)

    with SecantusProcess(tmp_path / "mongo") as server:
        assert _gone([orphan], within_s=5) == []
        assert server.proc is not None and server.proc.poll() is None


def test_a_data_folder_in_use_by_a_live_run_is_not_taken(tmp_path: Path) -> None:
    with SecantusProcess(tmp_path / "mongo") as first:
        assert first.proc is not None
        with pytest.raises(SourceUnavailable) as err:
            SecantusProcess(tmp_path / "mongo").start()
        assert first.proc.poll() is None
    message = str(err.value)
    assert f"data folder {tmp_path / 'mongo'} is locked by SecantusDB pid {first.proc.pid}" in message
    assert f"started by pid {os.getpid()}, which is still running" in message


def test_a_data_folder_locked_by_another_program_names_it(tmp_path: Path) -> None:
    folder = tmp_path / "mongo"
    folder.mkdir()
    (folder / "WiredTiger.lock").write_text("WiredTiger lock file\n")
    other = _python(
        f"""
        import fcntl, os, time
        fd = os.open({str(folder / "WiredTiger.lock")!r}, os.O_RDWR)
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        print("PIDS", os.getpid(), flush=True)
        time.sleep(600)
        """
    )
    try:
        _pids(other)
        with pytest.raises(SourceUnavailable) as err:
            SecantusProcess(folder).start()
        assert other.poll() is None  # not ours to stop
    finally:
        other.kill()
        other.wait()
    message = str(err.value)
    assert f"is locked by pid {other.pid} ({sys.executable} -c" in message
    assert "stop that process, or set VAMOSJUNTOS_LAKE_ROOT to another lake" in message
    assert "\n" not in message


def test_a_failed_start_says_why_from_the_servers_log(tmp_path: Path) -> None:
    folder = tmp_path / "mongo"
    folder.mkdir()
    (folder / "WiredTiger").write_text("WiredTiger\nWiredTiger 11.2.0: (January 1, 2024)\n")
    (folder / "WiredTiger.turtle").write_text("not a turtle file\n")  # a damaged data folder
    log = tmp_path / "secantusd.log"
    log.write_text("an older start's line [ERROR]: nothing to do with this one\n")

    with pytest.raises(SourceUnavailable) as err:
        SecantusProcess(folder, log_path=log).start()

    message = str(err.value)
    assert "SecantusDB exited with code 1 on start" in message
    assert "WiredTigerError: WT_TRY_SALVAGE: database corruption detected" in message
    assert "(WiredTiger: " in message and "nothing to do with this one" not in message
    assert f"its log: {log}" in message


# --- the command line, killed mid-run ----------------------------------------------------------------
_SPARK_JVM = "org.apache.spark.deploy.SparkSubmit"
_LAUNCHER = "org.apache.spark.launcher.Main"


def _cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAMOSJUNTOS_", "PREFECT_API", MARK))}
    return env | {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",  # a busy machine starts it slowly
        "VAMOSJUNTOS_IBGE_SOURCE": "snapshot",
        "VAMOSJUNTOS_LAKE_ROOT": str(tmp_path / "lake"),
        "TMPDIR": str(tmp_path),  # where the command's log goes (flows/console.py)
    }


@pytest.mark.integration
@pytest.mark.timeout(1800)  # two runs' worth of starts (Prefect, SecantusDB, Spark) on a loaded machine
def test_a_run_killed_mid_run_leaves_nothing_running_and_the_next_run_succeeds(tmp_path: Path) -> None:
    """The next run also launches its embedded SecantusDB ahead of its flow run (while Prefect's server
    starts), and its flow takes that one: one SecantusDB in all."""
    # Enough rows that the embedded SecantusDB, which stops once they are streamed, is seen while it serves.
    args = [sys.executable, "-m", "flows.cli", "run", "--rows", "20000", "--ingestion-date", "2026-11-25"]
    env = _cli_env(tmp_path)
    run = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cli = psutil.Process(run.pid)
    started: dict[str, psutil.Process] = {}
    deadline = time.monotonic() + 600
    # Mid-run: the flow run has begun (it starts Spark's JVM) and the embedded SecantusDB is up.
    while not {"secantus", "uvicorn", "flows.orphans", "java"} <= started.keys():
        assert run.poll() is None and time.monotonic() < deadline, f"the run ended first ({run.poll()})"
        for proc in cli.children(recursive=True):
            with suppress(psutil.Error):
                command = proc.cmdline()
                line = " ".join(command)
                started.update({k: proc for k in ("secantus", "uvicorn", "flows.orphans") if k in line})
                # Spark's JVM, not spark-submit's launcher (a `java` too, which exits once it has printed
                # the JVM's command line).
                if (
                    command
                    and Path(command[0]).name == "java"
                    and _SPARK_JVM in line
                    and _LAUNCHER not in line
                ):
                    started["java"] = proc
        time.sleep(0.05)
    # The JVM too (PySpark's ends when its driver's pipe closes; the watchdog stops it if not).
    pids = [p.pid for p in started.values()]
    assert started["secantus"].is_running(), "the stream was over before the kill: more --rows"
    assert started["java"].is_running(), "Spark's JVM ended before the kill"

    _kill(run.pid)
    run.wait()

    assert _gone(pids, within_s=60) == [], {k: p.pid for k, p in started.items()}
    out = tmp_path / "again.out"
    with out.open("w") as stdout:
        popen = time.time()
        again = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=stdout, stderr=subprocess.STDOUT)
        began = psutil.Process(again.pid).create_time()
        secantus = _secantus_started(again, timeout_s=1500)
    assert again.returncode == 0, out.read_text()[-3000:]
    assert "Average income" in out.read_text()
    [launched] = secantus.values()
    # Offsets from the command's start, each on one clock: psutil's start times share an offset of up to a
    # second from the wall clock, the log's lines are wall-clock time.
    flow_began = _flow_run_began(Path(env["TMPDIR"]), "lakehouse") - popen
    assert launched - began < flow_began - 0.5
    # Its stream's query too (flows/sources/mongo/ahead.py), once the server was up.
    [manifest] = [json.loads(p.read_text()) for p in (tmp_path / "lake").rglob("raw/pnadc/*/_manifest.json")]
    sent = dt.datetime.fromisoformat(manifest["query_sent_ahead"]["sent_at"]).timestamp()
    assert sent - popen < flow_began


def _secantus_started(run: subprocess.Popen[bytes], timeout_s: float) -> dict[int, float]:
    """Until the run ends: each SecantusDB it started, by pid, with the time it was created."""
    cli, seen = psutil.Process(run.pid), dict[int, float]()
    deadline = time.monotonic() + timeout_s
    while run.poll() is None:
        assert time.monotonic() < deadline, "the run did not end"
        with suppress(psutil.Error):
            for proc in cli.children(recursive=True):
                with suppress(psutil.Error):
                    if any("secantus" in part for part in proc.cmdline()[:3]):
                        seen.setdefault(proc.pid, proc.create_time())
        time.sleep(0.05)
    return seen


def _flow_run_began(log_folder: Path, flow: str) -> float:
    """When the newest command log says the flow's run began (its lines carry local time, to the ms)."""
    [log] = sorted(log_folder.glob("vamosjuntos-logs-*/run-*.log"), key=lambda f: f.stat().st_mtime)[-1:]
    for line in log.read_text().splitlines():
        if line.endswith(f"for flow '{flow}'") and "Beginning flow run" in line:
            return dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    raise AssertionError(f"no flow run of {flow} in {log}")


def test_a_port_another_process_took_is_not_taken_for_the_server(tmp_path: Path) -> None:
    """Between free_port() and the start another process may listen on the port: answering there is not
    SecantusDB answering (it exits, unable to bind), and no data may go to that other server."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(SourceUnavailable, match=r"exited with code 1 on start.*Address already in use"):
            SecantusProcess(tmp_path / "mongo", port=port, log_path=tmp_path / "secantusd.log").start()
