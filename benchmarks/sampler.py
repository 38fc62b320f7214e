"""Sampling the memory of a contestant's process tree (and, apart, the server's) while it runs.

PSS, not RSS: PSS splits each shared page between the processes sharing it, so the sum over a tree counts
every page once, and a JVM forking a helper does not show its whole RSS twice for an instant.
"""

from __future__ import annotations

import contextlib
import threading
import time

import psutil

INTERVAL_S = 0.3  # the least time between two samples: a read of a Spark JVM costs ~30 ms of CPU, ~0.1-0.5 s
SERVER_EVERY = 10  # samples between two reads of the server's PSS (a large server's read costs more)


def tree_pss(proc: psutil.Process) -> tuple[int, int]:
    """(PSS of a process and all its live descendants, PSS of the process alone), in bytes.

    PSS (proportional set size) splits each shared page between the processes sharing it, so the sum over
    a tree counts every page once: a JVM forking a helper (posix_spawn of `chmod`) does not show its whole
    RSS twice for an instant, as summed RSS does. psutil reads it from /proc/PID/smaps_rollup, which walks
    the process's page tables: ~30 ms of CPU for a Spark JVM here, more wall time on a loaded machine.
    """
    try:
        children = proc.children(recursive=True)
        own = proc.memory_full_info().pss
    except psutil.Error:
        return 0, 0
    total = own
    for p in children:
        with contextlib.suppress(psutil.Error):  # exited between the listing and the read
            total += p.memory_full_info().pss
    return total, own


Sample = tuple[float, int, int, int]  # (time, PSS of the tree, of its root process, of the server)


class Sampler(threading.Thread):
    """Samples (time, PSS of the contestant's tree, of its root process alone, of the server) until stopped.

    A sample's time is when its read began; reads follow each other with at least INTERVAL_S between starts.
    """

    def __init__(self, pid: int, server_pid: int | None = None, interval: float = INTERVAL_S) -> None:
        super().__init__(daemon=True, name=f"pss-sampler-{pid}")
        self.proc = psutil.Process(pid)
        self.server = psutil.Process(server_pid) if server_pid else None
        self.interval = interval
        self.samples: list[tuple[float, int, int, int]] = []
        self.read_s: list[float] = []  # how long each read of the tree took
        self._stop_event = threading.Event()

    def run(self) -> None:
        server = 0
        while not self._stop_event.is_set():
            now = time.time()
            if self.server is not None and len(self.samples) % SERVER_EVERY == 0:
                server = tree_pss(self.server)[0]
            t0 = time.perf_counter()
            tree, own = tree_pss(self.proc)
            took = time.perf_counter() - t0
            if tree:  # 0: the contestant is gone (or not yet readable)
                self.samples.append((now, tree, own, server))
                self.read_s.append(took)
            self._stop_event.wait(max(0.0, self.interval - (time.time() - now)))

    def stop(self) -> list[tuple[float, int, int, int]]:
        self._stop_event.set()
        self.join(timeout=10)
        return self.samples


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
