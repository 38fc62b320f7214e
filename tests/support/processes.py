"""The SecantusDB servers a test's own process started (and has not reaped)."""

from __future__ import annotations

import psutil


def secantus_children() -> list[psutil.Process]:
    """This process's descendants running SecantusDB; a zombie another test left (it has no command line)
    or a process gone meanwhile is skipped."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if any("secantus" in part for part in proc.cmdline()[:3]):
                found.append(proc)
        except psutil.Error:
            continue
    return found
