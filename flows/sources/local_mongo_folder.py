"""The embedded SecantusDB's data folder (flows/sources/local_mongo.py): who holds WiredTiger's lock on it,
and freeing it from a server a killed run left behind."""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import sys
from pathlib import Path

import psutil

from flows.errors import SourceUnavailable
from flows.orphans import describe, mark_in, owner_alive, stop

log = logging.getLogger(__name__)


# struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid.
_FLOCK = "hhqqi"


def lock_holder(storage: Path) -> int | None:
    """The pid holding WiredTiger's lock on a data folder (a POSIX record lock: F_GETLK names its owner);
    None when it is free or unknown (the query is Linux-only; elsewhere the start's own error tells).

    Closing a file drops every POSIX lock its process holds on it: never call this from a process that
    runs SecantusDB in-process on that folder.
    """
    lock = storage / "WiredTiger.lock"
    if not sys.platform.startswith("linux") or not lock.exists():
        return None
    fd = os.open(lock, os.O_RDWR)
    try:
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        kind, _, _, _, pid = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, query))
    finally:
        os.close(fd)
    return None if kind == fcntl.F_UNLCK else pid


def free_data_folder(storage: Path) -> None:
    """Before a start: a SecantusDB left on this data folder by a process that is gone (a killed run) is
    stopped; any other holder of the folder is named in a SourceUnavailable."""
    pid = lock_holder(storage)
    if pid is None:
        return
    try:
        proc = psutil.Process(pid)
        mark = mark_in(proc.environ())
        secantus = any("secantus" in part for part in proc.cmdline()[:3])
    except psutil.NoSuchProcess:
        return  # it ended meanwhile
    except psutil.Error:
        mark, secantus = None, False  # another user's: not ours to stop
    if secantus and mark and not owner_alive(mark):
        log.warning("Stopping SecantusDB %s: left on %s by a run that is gone", describe(proc), storage)
        stop([proc])
        return
    if secantus and mark:
        cause = f"SecantusDB pid {pid}, started by pid {mark.split(':')[0]}, which is still running"
        todo = "wait until that run ends (or stop it), then run again"
    else:
        cause = describe(proc)
        todo = "stop that process, or set VAMOSJUNTOS_LAKE_ROOT to another lake"
    raise SourceUnavailable(f"the embedded MongoDB's data folder {storage} is locked by {cause}: {todo}")
