"""What a `vamosjuntos run` starts ends with it, even when the run is killed (SIGKILL, OOM, a closed laptop).

A run starts processes that would otherwise outlive it, holding the embedded MongoDB's data folder and
Prefect's database: the embedded SecantusDB, Prefect's temporary API server (`python -m uvicorn …
flows.temporary_api:create_app`, started when PREFECT_API_URL is unset: flows/server_launch.py), Spark's
JVM and its Python workers. The run marks its environment (`VAMOSJUNTOS_RUN_MARK`: its pid and start time),
so every process it starts, and theirs, carries the mark, whoever starts them (Jenkins marks a build's
processes the same way). A watchdog in its own session (a signal to the run's process group does not reach it)
reads a pipe from the run: the kernel closes the pipe when the run ends, however it ends, and the watchdog
then stops every process that carries the run's mark.

Linux's PR_SET_PDEATHSIG would not do: it fires when the *thread* that started the child ends, and Spark's JVM
starts on a warm-up thread, as a flow run may on one of Prefect's worker threads. If the watchdog was killed
too, the next run stops what is left (`stop_orphans`): a process whose mark names a run that is gone is an
orphan.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import suppress

import psutil

log = logging.getLogger(__name__)

MARK = "VAMOSJUNTOS_RUN_MARK"
# Older versions marked their runs here: most with the owner's wall-clock start, the few commits just before
# MARK with its start since boot, as MARK holds it. They read only this variable, so they never judge (and
# stop) a run of this version; this one still reads their marks (`mark_in`).
OLD_MARK = "VAMOSJUNTOS_RUN_OWNER"
# Start times since boot stay far below this (31 years); wall-clock ones (since 1970) are above it.
_WALL_CLOCK_S = 1e9
_LINUX = sys.platform.startswith("linux")
# Two reads of one process's start: on Linux the same clock tick, apart only by the mark's two decimals
# (under a tick at 100 ticks a second; a finer tick is rounded by up to 0.005 s); elsewhere psutil's
# wall-clock time, as before.
_SAME_START_S = 0.006 if _LINUX else 0.05
WATCHDOG = "flows.orphans"  # the watchdog's module: `python -m flows.orphans <mark>`
# A watchdog stops its run's processes with `stop` (SIGTERM, then SIGKILL 10 s later), in up to 3 rounds
# for what they start meanwhile. One round and some margin: a watchdog slower than that is stuck, and the
# next command stops them itself.
WATCHDOG_WAIT_S = 20.0
_watchdog: list[subprocess.Popen[bytes]] = []  # its stdin is the pipe: kept open while this process lives


def mark_of(proc: psutil.Process) -> str:
    """`pid:start time`: a pid alone could name another process once the run is gone."""
    return f"{proc.pid}:{_started(proc):.2f}"


def owner_alive(mark: str) -> bool:
    pid, _, started = mark.partition(":")
    try:
        proc, started_s = psutil.Process(int(pid)), float(started)
        if _LINUX and started_s > _WALL_CLOCK_S:  # an older version's wall-clock mark (OLD_MARK)
            return abs(proc.create_time() - started_s) < 2.0
        return abs(_started(proc) - started_s) < _SAME_START_S
    except (ValueError, IndexError, OSError, psutil.Error):
        return False


def mark_in(environ: Mapping[str, str]) -> str | None:
    """The run's mark a process's environment carries, an older version's included, or None."""
    return environ.get(MARK) or environ.get(OLD_MARK)  # owner_alive() tells their two kinds of time apart


def _started(proc: psutil.Process) -> float:
    """When the process started: on Linux in seconds since boot, which no clock change moves.

    psutil's create_time() is that plus the boot time in /proc/stat, which the kernel derives from the wall
    clock: it moves by whole seconds when the clock is stepped (NTP, a VM restored), and a live run's mark
    then no longer matched its process (a CI run saw a run's own embedded MongoDB stopped as an orphan's).
    Elsewhere, psutil's wall-clock time.
    """
    if not _LINUX:
        return proc.create_time()
    with open(f"{psutil.PROCFS_PATH}/{proc.pid}/stat", "rb") as stat:
        data = stat.read()
    # proc(5): starttime, in clock ticks since boot, is the 22nd field; the 2nd, the command's name in
    # parentheses, may itself hold spaces and parentheses.
    ticks = int(data[data.rfind(b")") + 2 :].split()[19])
    return ticks / os.sysconf("SC_CLK_TCK")


def owner_mark() -> str:
    """The mark of the run this process belongs to, or this process's own when it is no run's."""
    return os.environ.get(MARK) or mark_of(psutil.Process())


def marked() -> list[tuple[psutil.Process, str]]:
    """This user's processes that carry a run's mark, with it (others' environments cannot be read)."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            mark = mark_in(proc.environ())
        except psutil.Error:
            continue
        if mark:
            found.append((proc, mark))
    return found


def describe(proc: psutil.Process) -> str:
    try:
        command = " ".join(" ".join(proc.cmdline()).split())  # one line, whatever its arguments hold
    except psutil.Error:
        return f"pid {proc.pid}"
    return f"pid {proc.pid} ({command[:200]})"


def _running(proc: psutil.Process) -> bool:
    with suppress(psutil.Error):
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    return False


def stop(procs: list[psutil.Process], timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL what is still there after `timeout_s` (psutil checks each pid is still the
    process it was, so a reused pid is never signalled)."""
    for proc in procs:
        with suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    for proc in alive:
        with suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)


def _watchdogs() -> dict[str, psutil.Process]:
    """The watchdogs running now, by the mark of the run each watches (its last argument)."""
    found = {}
    for proc in psutil.process_iter():
        with suppress(psutil.Error):
            command = proc.cmdline()
            if command[-3:-1] == ["-m", WATCHDOG]:
                found[command[-1]] = proc
    return found


def stop_orphans(*, say: bool = True) -> list[str]:
    """Stop the processes left by runs that are gone (their watchdog was killed with them); say which
    (in the log, unless `say` is false: the caller says it later), and return them.

    A run that has just ended leaves its processes to its watchdog, which stops them within a second or
    so (Spark's JVM outlives the run by that much): a command started right after it waits for that
    watchdog, up to WATCHDOG_WAIT_S, instead of stopping them itself and saying a run was killed."""
    gone = [(proc, mark) for proc, mark in marked() if not owner_alive(mark)]
    if gone:
        watching = _watchdogs()
        watchers = [watching[m] for m in {m for _, m in gone} if m in watching]
        deadline = time.monotonic() + WATCHDOG_WAIT_S
        # Until what they stop has ended (a watchdog that has exited may linger unreaped, as a zombie)
        while any(map(_running, watchers)) and any(_running(p) for p, _ in gone):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    orphans = [proc for proc, _ in gone if _running(proc)]
    names = [describe(proc) for proc in orphans]
    if orphans:
        if say:
            log.warning("Stopping what a killed run left behind: %s", "; ".join(names))
        stop(orphans)
    return names


def guard_this_run() -> None:
    """Mark this process as a run and start the watchdog that stops its processes once it has ended."""
    mark = mark_of(psutil.Process())
    if _watchdog and os.environ.get(MARK) == mark:
        return  # guarded already (two commands in one process, as tests run them)
    # The watchdog is not one of the run's processes.
    env = {k: v for k, v in os.environ.items() if k not in (MARK, OLD_MARK)}
    _watchdog.append(
        subprocess.Popen(
            [sys.executable, "-m", WATCHDOG, mark],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    )
    os.environ[MARK] = mark


_stopped_unsaid: list[str] = []  # stopped before the command's log existed (`before_logging`)


def start_guarded(*, before_logging: bool = False) -> None:
    """For a command that starts processes (a run, a rollback): first stop what a killed run left (its
    watchdog was killed too) before it blocks this one, then make what this one starts end with it.

    `before_logging`: called before the command's log exists (flows/server_launch.py launches Prefect's
    server then): what it stopped is said by the next call, once the log records it."""
    stopped = stop_orphans(say=not before_logging)
    if before_logging:
        _stopped_unsaid.extend(stopped)
    elif _stopped_unsaid:
        log.warning("Stopped what a killed run left behind: %s", "; ".join(_stopped_unsaid))
        _stopped_unsaid.clear()
    guard_this_run()


def watch(mark: str) -> None:
    """The watchdog: wait for the run's end (end of file on stdin), then stop what carries its mark."""
    while sys.stdin.buffer.read(65536):
        pass
    for _ in range(3):  # a process being stopped may have started another meanwhile
        left = [proc for proc, found in marked() if found == mark]
        if not left:
            return
        stop(left)


if __name__ == "__main__":
    watch(sys.argv[1])
