"""A run's mark (flows/orphans.py) names its owner for as long as the owner lives, whatever the clock does."""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest

from flows.orphans import mark_of, owner_alive


def test_the_mark_of_a_live_process_says_alive_and_of_an_ended_one_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    mark = mark_of(psutil.Process(child.pid))
    assert owner_alive(mark)
    child.communicate(b"")
    assert not owner_alive(mark)


def test_a_pid_taken_by_another_process_is_not_the_owner() -> None:
    pid, _, started = mark_of(psutil.Process()).partition(":")
    assert not owner_alive(f"{pid}:{float(started) - 1:.2f}")
    assert not owner_alive(f"{pid}:not a time")


def test_a_live_owner_stays_alive_when_the_wall_clock_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's boot time in /proc/stat is the wall clock less the uptime: NTP moves it by whole
    seconds, and psutil's create_time() with it (ci40 stopped a live run's SecantusDB as an orphan's).
    The clock cannot be set here; its effect on psutil can."""
    import psutil._pslinux as pslinux

    mark, created = mark_of(psutil.Process()), psutil.Process().create_time()
    booted = pslinux.boot_time()
    monkeypatch.setattr(pslinux, "boot_time", lambda: booted + 1.0)
    assert psutil.Process().create_time() == pytest.approx(created + 1.0)  # what NTP's step does
    assert owner_alive(mark)
    assert mark_of(psutil.Process()) == mark


def test_a_mark_from_a_version_that_wrote_the_wall_clock_time_is_still_read() -> None:
    """A run started by the previous version may be live when this one starts: its processes are not
    orphans."""
    me = psutil.Process()
    assert owner_alive(f"{me.pid}:{me.create_time():.2f}")
    assert not owner_alive(f"{me.pid}:{me.create_time() - 60:.2f}")
