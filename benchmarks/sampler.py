"""Sampling the memory and CPU of a contestant's process tree (and, apart, the server's) while it runs.

PSS, not RSS: PSS splits each shared page between the processes sharing it, so the sum over a tree counts
every page once, and a JVM forking a helper does not show its whole RSS twice for an instant. CPU: each
process's, by what it is (benchmarks/cpu.py), read with the memory.
"""

from __future__ import annotations

import contextlib
import threading
import time

import psutil

from benchmarks.cpu import CpuLedger

INTERVAL_S = 0.3  # the least time between two samples: a read of a Spark JVM costs ~30 ms of CPU, ~0.1-0.5 s
SERVER_EVERY = 10  # samples between two reads of the server's PSS (a large server's read costs more)


def tree(proc: psutil.Process) -> list[psutil.Process]:
    """A process and all its live descendants (empty once it is gone)."""
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def tree_of(pid: int) -> list[psutil.Process]:
    """`tree` of a pid (empty if there is no such process)."""
    try:
        return tree(psutil.Process(pid))
    except psutil.Error:
        return []


def tree_pss(procs: list[psutil.Process]) -> tuple[int, int]:
    """(PSS of a tree's processes, as `tree` lists them, and of its root alone), in bytes.

    PSS (proportional set size) splits each shared page between the processes sharing it, so the sum over
    a tree counts every page once: a JVM forking a helper (posix_spawn of `chmod`) does not show its whole
    RSS twice for an instant, as summed RSS does. psutil reads it from /proc/PID/smaps_rollup, which walks
    the process's page tables: ~30 ms of CPU for a Spark JVM here, more wall time on a loaded machine.
    """
    if not procs:
        return 0, 0
    try:
        own = procs[0].memory_full_info().pss
    except psutil.Error:
        return 0, 0
    total = own
    for p in procs[1:]:
        with contextlib.suppress(psutil.Error):  # exited between the listing and the read
            total += p.memory_full_info().pss
    return total, own


Sample = tuple[float, int, int, int]  # (time, PSS of the tree, of its root process, of the server)


class Sampler(threading.Thread):
    """Samples (time, PSS of the contestant's tree, of its root process alone, of the server) until stopped,
    and reads the CPU of the tree's processes at each sample (the server's with its PSS, every SERVER_EVERY
    samples, and at the start and the end).

    A sample's time is when its read began; reads follow each other with at least INTERVAL_S between starts.
    """

    def __init__(
        self,
        pid: int,
        server_pid: int | None = None,
        interval: float = INTERVAL_S,
        fresh: bool = True,
    ) -> None:
        """`fresh`: the tree was started just now (a contestant), so its CPU counts whole; False for a
        running one (a server), whose CPU counts from the first sample."""
        super().__init__(daemon=True, name=f"sampler-{pid}")
        self.proc = psutil.Process(pid)
        self.server = psutil.Process(server_pid) if server_pid else None
        self.interval = interval
        self.samples: list[tuple[float, int, int, int]] = []
        self.read_s: list[float] = []  # how long each read of the tree took
        self.cpu = CpuLedger(pid, fresh=fresh)
        self.server_cpu = CpuLedger(server_pid or 0, fresh=False)
        self._stop_event = threading.Event()

    def run(self) -> None:
        server = 0
        while not self._stop_event.is_set():
            now = time.time()
            if self.server is not None and len(self.samples) % SERVER_EVERY == 0:
                servers = tree(self.server)
                server = tree_pss(servers)[0]
                self.server_cpu.read(servers)
            t0 = time.perf_counter()
            procs = tree(self.proc)
            total, own = tree_pss(procs)
            took = time.perf_counter() - t0  # the memory's read, as the report gives it
            self.cpu.read(procs)
            if total:  # 0: the contestant is gone (or not yet readable)
                self.samples.append((now, total, own, server))
                self.read_s.append(took)
            self._stop_event.wait(max(0.0, self.interval - (time.time() - now)))

    def stop(self) -> list[tuple[float, int, int, int]]:
        self._stop_event.set()
        self.join(timeout=10)  # a read of a tree in a swapping machine can take seconds; the ledgers lock
        if self.server is not None:  # the server's CPU during the whole run, its last moments included
            self.server_cpu.read(tree(self.server))
        return self.samples

    def cpu_seconds(self) -> dict[str, float]:
        """The tree's CPU seconds by kind, and the server's (`server`) over the same time."""
        out = self.cpu.by_kind()
        if self.server is not None:
            out["server"] = sum(self.server_cpu.by_kind().values())
        return out


def peak_between(samples: list[Sample], start: float, end: float, column: int = 1) -> int:
    inside = [s[column] for s in samples if start <= s[0] <= end]
    if not inside:  # a stage shorter than the interval: the samples around it
        before = [s[column] for s in samples if s[0] <= start][-1:]
        after = [s[column] for s in samples if s[0] >= end][:1]
        inside = before + after
    return max(inside, default=0)


def thin(samples: list[Sample], t0: float, keep: int = 600) -> list[Sample]:
    step = max(1, len(samples) // keep)
    return [(round(t - t0, 3), tree, own, srv) for t, tree, own, srv in samples[::step]]
