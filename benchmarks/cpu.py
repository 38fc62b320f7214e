"""Whose CPU a contestant's run took: each process's user + system time, summed by what the process is.

On two cores a run cannot take less time than its CPU ÷ 2, whatever overlaps what; the report weighs the
CPU of a run (and of the running servers it used) against what the cores give in the time a target
allows. Read at each of the sampler's reads (benchmarks/sampler.py), never from a process's exit status:
the processes of a run are not all reaped by their parents (a JVM whose Python driver has exited).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import psutil

# What a process of a contestant's tree is, by the module it runs (`python -m MODULE`).
MODULE_KINDS = {
    "uvicorn": "prefect_api",  # the ephemeral run's temporary API server (flows/server_launch.py)
    "flows.sources.mongo.encoder_pool": "encoders",  # the extraction's encoder workers
}


def kind_of(words: list[str]) -> str:
    """`jvm` for Spark's JVM (PySpark's launcher runs `bash spark-class`, which then becomes java), a
    MODULE_KINDS value, else `other` (the orphan guard's watchdog, short helpers). By program and module,
    never by paths: a checkout may be named anything."""
    if not words:
        return "other"
    if Path(words[0]).name == "java" or any(Path(w).name == "spark-class" for w in words[:2]):
        return "jvm"
    module = words[words.index("-m") + 1] if "-m" in words[:-1] else ""
    return MODULE_KINDS.get(module, "other")


class CpuLedger:
    """CPU seconds of every process seen in a tree, summed by kind (`kind_of`; `python` for the root).

    A fresh tree (a contestant, read from its start) counts each process's CPU whole. A running one (a
    server) counts from the ledger's first read that found it: the processes listed then count from that
    reading, any process first seen later, whole (it was created since). Processes are told apart by pid
    and start (a pid can be reused). A process is read at each read of the tree, so what a process spends
    after its last read before it ends is missed: at most the sampler's interval plus one read of the tree,
    times the cores it kept busy (~0.5 s for a JVM shutting down on two), and a process that lives less
    than that may be missed whole (PySpark's launcher JVM, ~0.1 s of CPU). Nothing is counted twice.
    """

    def __init__(self, root_pid: int, *, fresh: bool) -> None:
        self.root_pid = root_pid
        self._listed = fresh  # True once the processes running before the ledger are known
        self._seen: dict[tuple[int, float], tuple[str, float, float]] = {}  # -> (kind, baseline, last)
        # The sampler's thread reads, the harness may read too (a server's last read) and sums: one at a time.
        self._lock = threading.Lock()

    def read(self, procs: list[psutil.Process]) -> None:
        with self._lock:
            self._read(procs)

    def _read(self, procs: list[psutil.Process]) -> None:
        first = not self._listed
        for p in procs:
            with contextlib.suppress(psutil.Error):  # ended since the listing
                key = (p.pid, _started(p))
                t = p.cpu_times()
                used = t.user + t.system
                kind, base, _ = self._seen.get(key) or ("", None, 0.0)
                if base is None:  # first seen: running before the ledger counts from now on
                    base = used if first else 0.0
                # Read again each time: a child caught between its fork and its exec shows its parent's
                # command line; a process that has ended (empty line) keeps what it was.
                words = _cmdline(p)
                if p.pid == self.root_pid:
                    kind = "python"
                elif words or not kind:
                    kind = kind_of(words)
                self._seen[key] = (kind, base, used)
        self._listed = self._listed or bool(procs)

    def by_kind(self) -> dict[str, float]:
        out: dict[str, float] = {}
        with self._lock:
            seen = list(self._seen.values())
        for kind, base, last in seen:
            out[kind] = out.get(kind, 0.0) + max(0.0, last - base)
        return out


def _started(p: psutil.Process) -> float:
    """When a process started, in clock ticks since boot as the kernel keeps it (/proc/PID/stat): unlike
    psutil's `create_time`, which adds the boot time read anew (it moves when the wall clock is stepped),
    the same process always gives the same value. Elsewhere, `create_time`."""
    try:
        stat = Path(f"/proc/{p.pid}/stat").read_text()
        return float(stat[stat.rindex(")") + 2 :].split()[19])  # field 22: starttime
    except (OSError, ValueError, IndexError):
        return p.create_time()


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []
