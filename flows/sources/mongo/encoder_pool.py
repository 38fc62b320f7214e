"""Server batches encoded by worker processes and handed back in order: the extraction's other cores.

Decoding BSON and encoding JSON hold the GIL, so in the extraction's process one batch is encoded only
after the one before it, about 10 µs per PNAD document, while the server streams and a core idles. Each
worker here is a small Python process (`python -m flows.sources.mongo.encoder_pool`: bson and the
encoder, nothing of Prefect or Spark) that reads raw batches on its stdin and writes `Encoded` batches on
its stdout, framed by `multiprocessing.connection`. Batches go to the workers in turn and come back in
the order they were sent; the extraction's process is left the socket, gzip, the part files and the
checkpoints. The bytes written are those of an encoding in process (batches.py is the one encoder).

Plain processes rather than a `ProcessPoolExecutor`: its spawned workers import the parent's `__main__`
again (for `vamosjuntos`, the whole CLI with Prefect, seconds per worker), and fork is unsafe in a
process running Prefect's and the Spark warm-up's threads. A worker ignores Ctrl-C (it reaches the whole
process group; the extraction decides) and exits when its stdin closes, so a parent that dies, however
it dies, takes its workers with it.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import traceback
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import cycle
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any

from bson.codec_options import CodecOptions

from flows.errors import WorkerFailed
from flows.sources.mongo.batches import Encoded, encode_batch

# Batches in flight per worker: one being encoded, one waiting in its inbox, so it never waits for us.
IN_FLIGHT = 2
_EXIT_S = 5.0


# The CPU quota of this process's cgroup: v2 ("max 100000", or "200000 100000" for 2 CPUs), or v1's two
# files (-1: no quota), as older Kubernetes nodes have it.
CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CFS_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CFS_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def _quota() -> float | None:
    """CPUs' worth of time the cgroup may use, or None: no quota (or no cgroup to ask)."""
    try:
        quota, period = CPU_MAX.read_text().split()
    except (OSError, ValueError):
        try:
            quota, period = CFS_QUOTA.read_text().strip(), CFS_PERIOD.read_text().strip()
        except OSError:
            return None
    try:
        return int(quota) / int(period) if int(quota) > 0 else None
    except ValueError:  # "max"
        return None


def usable_cpus() -> int:
    """The CPUs this process may run on, within its cgroup's quota (a Kubernetes pod's CPU limit)."""
    # No affinity on macOS: every CPU, then.
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _quota()
    return cpus if quota is None else max(1, min(cpus, int(quota)))


def default_workers() -> int:
    """Two workers given two CPUs or more, none on one (a flow pod limited to one CPU: they would only
    take turns with the stream). Two even on two CPUs: the workers' encoding is most of the client's work,
    and at 368,210 documents on two cores (beside the local SecantusDB) two were at least as fast as one;
    past two the server, not the encoding, is what the stream waits for."""
    return 2 if usable_cpus() >= 2 else 0


class _Worker:
    def __init__(self, options: CodecOptions[Any]) -> None:
        to_child, self._inbox = os.pipe()  # pipes are not inherited: only the child's own ends go over
        self._outbox, from_child = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", __name__], stdin=to_child, stdout=from_child, close_fds=True
            )
        except BaseException:
            for fd in (self._inbox, self._outbox):
                os.close(fd)
            raise
        finally:
            os.close(to_child)
            os.close(from_child)
        self.send = Connection(self._inbox, readable=False)
        self.recv = Connection(self._outbox, writable=False)
        self.send.send_bytes(pickle.dumps(options))

    def submit(self, raw: bytes, objectids_only: bool) -> None:
        try:
            self.send.send_bytes(b"\x01" + raw if objectids_only else b"\x00" + raw)
        except OSError:
            raise self._failed() from None

    def ready(self) -> bool:
        return self.recv.poll(0)

    def result(self) -> Encoded:
        try:
            status, value = pickle.loads(self.recv.recv_bytes())
        except (EOFError, OSError):
            raise self._failed() from None
        if status != "ok":
            raise WorkerFailed(f"encoding a MongoDB batch failed in worker {self.proc.pid}:\n{value}")
        return value  # type: ignore[no-any-return]

    def _failed(self) -> WorkerFailed:
        try:
            code = self.proc.wait(_EXIT_S)
        except subprocess.TimeoutExpired:
            code = None
        return WorkerFailed(
            f"the encoder worker (pid {self.proc.pid}) of the MongoDB extraction exited"
            f"{f' with code {code}' if code is not None else ''}: out of memory, or killed? "
            "Rerun the same ingestion date to resume after the last checkpointed part."
        )

    def close(self) -> None:
        self.send.close()  # its stdin ends: the worker leaves its loop
        try:
            self.proc.wait(_EXIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.recv.close()


class EncoderPool:
    """`workers` encoder processes, started at once (their start overlaps the server's first answer)."""

    def __init__(self, workers: int, options: CodecOptions[Any]) -> None:
        if workers < 1:
            raise ValueError(f"an encoder pool needs at least one worker, not {workers}")
        self._workers: list[_Worker] = []
        try:
            for _ in range(workers):
                self._workers.append(_Worker(options))
        except BaseException:
            self.close()
            raise
        self._turn = cycle(self._workers)
        self._broken: WorkerFailed | None = None

    def map(self, batches: Iterable[bytes], objectids_only: bool) -> Iterator[Encoded]:
        """`encode_batch` of each batch, in order, `IN_FLIGHT` per worker at most.

        An error reading `batches` comes after the batches read before it. Leaving early (the caller
        stops reading) waits for the batches in flight and drops them, so the next `map` starts clean.
        """
        if self._broken is not None:
            raise self._broken
        pending: deque[_Worker] = deque()
        limit = IN_FLIGHT * len(self._workers)
        source = iter(batches)
        try:
            while True:
                try:
                    raw = next(source)
                except StopIteration:
                    break
                except Exception:  # a read error comes after the batches read before it, as in process
                    while pending:
                        yield pending.popleft().result()
                    raise
                worker = next(self._turn)
                worker.submit(raw, objectids_only)
                pending.append(worker)
                while pending and (len(pending) >= limit or pending[0].ready()):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except WorkerFailed as exc:
            self._broken = exc
            raise
        finally:
            while pending:
                try:
                    pending.popleft().result()
                except WorkerFailed as exc:
                    self._broken = exc

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
        self._workers = []

    def __enter__(self) -> EncoderPool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _serve() -> None:
    """The worker's loop: batches in on stdin, `("ok", Encoded)` or `("error", traceback)` out on stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inbox = Connection(os.dup(0), writable=False)
    outbox = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # a stray print goes to stderr, not into the frames
    options = pickle.loads(inbox.recv_bytes())
    # Read ahead in a thread, so a parent writing the next batch never waits for this one's encoding
    # while we wait for it to take our answer.
    batches: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def read() -> None:
        try:
            while True:
                batches.put(inbox.recv_bytes())
        except (EOFError, OSError):
            batches.put(None)

    threading.Thread(target=read, name="encoder-inbox", daemon=True).start()
    while (message := batches.get()) is not None:
        try:
            answer: tuple[str, Any] = ("ok", encode_batch(memoryview(message)[1:], options, message[0] == 1))
        except Exception as exc:  # handed to the parent, which raises it
            answer = ("error", "".join(traceback.format_exception(exc)))
        try:
            outbox.send_bytes(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:  # the parent is gone (or closed us): nobody to answer
            return


if __name__ == "__main__":
    _serve()
