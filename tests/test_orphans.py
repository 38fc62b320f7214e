"""A run's mark (flows/orphans.py) names its owner for as long as the owner lives, whatever the clock does."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from flows import orphans
from flows.orphans import (
    MARK,
    OLD_MARK,
    _running,
    _watchdogs,
    mark_in,
    mark_of,
    marked,
    owner_alive,
    stop_orphans,
)

LINUX = sys.platform.startswith("linux")


def test_the_mark_of_a_live_process_says_alive_and_of_an_ended_one_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    mark = mark_of(psutil.Process(child.pid))
    assert owner_alive(mark)
    child.communicate(b"")
    assert not owner_alive(mark)


def test_a_pid_taken_by_another_process_is_not_the_owner() -> None:
    pid, _, started = mark_of(psutil.Process()).partition(":")
    assert not owner_alive(f"{pid}:{float(started) - 1:.2f}")
    assert not owner_alive(f"{pid}:{float(started) + 0.02:.2f}")
    assert not owner_alive(f"{pid}:not a time")
    assert not owner_alive("")


@pytest.mark.skipif(not LINUX, reason="/proc/<pid>/stat and psutil's Linux boot time")
def test_a_process_whose_name_holds_spaces_and_parentheses_is_read() -> None:
    """/proc/<pid>/stat gives the name in parentheses: the start time is read after the last one."""
    child = subprocess.Popen(
        [sys.executable, "-c", "open('/proc/self/comm', 'w').write('a) b (c'); import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    try:
        proc = psutil.Process(child.pid)
        for _ in range(100):
            if proc.name() == "a) b (c":
                break
            time.sleep(0.05)
        assert proc.name() == "a) b (c"
        assert owner_alive(mark_of(proc))
    finally:
        child.communicate(b"")


@pytest.mark.skipif(not LINUX, reason="the boot time psutil adds moves with the clock on Linux")
def test_a_live_owner_stays_alive_when_the_wall_clock_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's boot time in /proc/stat is the wall clock less the uptime: a step of the clock moves it
    by whole seconds, and psutil's create_time() with it (a CI run stopped a live run's SecantusDB as an
    orphan's). The clock cannot be set here; its effect on psutil can."""
    import psutil._pslinux as pslinux

    mark, created = mark_of(psutil.Process()), psutil.Process().create_time()
    booted = pslinux.boot_time()
    monkeypatch.setattr(pslinux, "boot_time", lambda: booted + 1.0)
    assert psutil.Process().create_time() == pytest.approx(created + 1.0)  # what a step of the clock does
    assert owner_alive(mark)
    assert mark_of(psutil.Process()) == mark


def test_a_mark_from_a_version_that_wrote_the_wall_clock_time_is_still_read() -> None:
    """A run started by an older version may be live when this one starts: its processes are not orphans,
    and those of a run of it that is gone are."""
    me = psutil.Process()
    assert owner_alive(mark_in({OLD_MARK: f"{me.pid}:{me.create_time():.2f}"}) or "")
    assert not owner_alive(mark_in({OLD_MARK: f"{me.pid}:{me.create_time() - 60:.2f}"}) or "")
    assert mark_in({MARK: "1:2.00", OLD_MARK: "1:1700000000.00"}) == "1:2.00"
    assert mark_in({}) is None


def test_a_mark_since_boot_in_the_older_variable_is_read_as_such() -> None:
    """The commits just before VAMOSJUNTOS_RUN_MARK wrote the start since boot in the older variable."""
    mine = mark_of(psutil.Process())
    assert mark_in({OLD_MARK: mine}) == mine
    assert owner_alive(mark_in({OLD_MARK: mine}) or "")
    assert not owner_alive(mark_in({OLD_MARK: "12:soon"}) or "")


def test_processes_of_an_older_versions_run_are_found_by_its_mark() -> None:
    """`marked()` (what stop_orphans and the watchdog read) sees an older version's mark too."""
    old = f"{os.getpid()}:{psutil.Process().create_time():.2f}"
    env = {k: v for k, v in os.environ.items() if k not in (MARK, OLD_MARK)} | {OLD_MARK: old}
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
        env=env,
    )
    try:
        found = dict((proc.pid, mark) for proc, mark in marked())
        assert child.pid in found
        assert owner_alive(found[child.pid])  # its owner, this process, lives
    finally:
        child.communicate(b"")


# A process of the run slow to stop, as a JVM finishing its shutdown: SIGTERM ends it 3 s later (time
# enough for the test to find it still there on a loaded machine).
SLOW_TO_STOP = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *a: (time.sleep(3), sys.exit(0)))\n"
    "print('ready', flush=True)\n"
    "time.sleep(120)\n"
)
# A run: guarded (its watchdog started), it starts that process, says its pid, and ends.
RUN = (
    "import subprocess, sys\n"
    "from flows.orphans import guard_this_run\n"
    "guard_this_run()\n"
    f"child = subprocess.Popen([sys.executable, '-c', {SLOW_TO_STOP!r}],\n"
    "    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)\n"
    "child.stdout.readline()\n"
    "print(child.pid, flush=True)\n"
)


def test_a_run_that_has_just_ended_is_left_to_its_watchdog_not_called_killed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Commands run back to back: the next one's start found the last one's processes still there (Spark's
    JVM outlives its run by up to a second, until the run's watchdog stops it), stopped them itself and
    warned "Stopping what a killed run left behind" of a run that ended well. It waits for the watchdog."""
    ran = subprocess.run([sys.executable, "-c", RUN], capture_output=True, text=True, timeout=60, check=True)
    child = psutil.Process(int(ran.stdout))
    assert any(mark_in(child.environ()) == mark for mark in _watchdogs())  # being stopped by its watchdog
    with caplog.at_level(logging.WARNING, logger="flows.orphans"):
        assert stop_orphans() == []
    assert caplog.records == []
    assert not _running(child)  # ended (reaped, or a zombie nobody reaps), by its watchdog


# A watchdog that has stopped its run's process and exited, left a zombie: its parent (here a process
# that started it and never waits) is alive, so nobody reaps it.
UNREAPED_WATCHDOG = (
    "import os, subprocess, sys, time\n"
    "code = 'import os, signal, time; time.sleep(1); os.kill(int(os.environ[\"LEFT\"]), signal.SIGKILL)'\n"
    "env = dict(os.environ, LEFT=sys.argv[2])\n"
    "watchdog = subprocess.Popen([sys.executable, '-c', code, '-m', 'flows.orphans', sys.argv[1]], env=env)\n"
    "print(watchdog.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def test_a_watchdog_that_exited_unreaped_does_not_hold_the_next_command(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """What the next command waits for is the run's processes: a watchdog that stopped them and exited
    lingers as a zombie where nothing reaps it (a container's PID 1), and waiting on it took all of
    WATCHDOG_WAIT_S."""
    monkeypatch.setattr(orphans, "WATCHDOG_WAIT_S", 60.0)
    gone_owner = subprocess.Popen([sys.executable, "-c", "pass"])
    gone_owner.wait()  # a run that has ended
    mark = f"{gone_owner.pid}:0.00"
    env = {k: v for k, v in os.environ.items() if k not in (MARK, OLD_MARK)} | {MARK: mark}
    left = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)  # its JVM, say
    parent = subprocess.Popen(
        [sys.executable, "-c", UNREAPED_WATCHDOG, mark, str(left.pid)],
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k not in (MARK, OLD_MARK)},
    )
    try:
        watchdog = psutil.Process(int(parent.stdout.readline()))  # type: ignore[union-attr]
        assert mark in _watchdogs()
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="flows.orphans"):
            assert stop_orphans() == []
        assert time.monotonic() - started < 30  # the process's end, ~1 s; not the wait's 60 s
        assert caplog.records == []
        assert left.wait(timeout=5) == -signal.SIGKILL  # the watchdog stopped it
        assert watchdog.status() == psutil.STATUS_ZOMBIE  # and lingers
    finally:
        for proc in (left, parent):
            proc.kill()
            proc.wait()
