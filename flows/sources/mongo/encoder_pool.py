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
process running Prefect's and the Spark warm-up's threads. A worker runs in its own process group and
ignores SIGINT (Ctrl-C is the extraction's to handle), and exits when its stdin closes (or its stdout,
while it writes an answer nobody will read), so a parent that dies, however it dies, takes its workers
with it.
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
from collections.abc import Generator, Iterable
from contextlib import AbstractContextManager, nullcontext
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


def usable_cpu_time() -> float:
    """CPUs' worth of time this process may use: the CPUs it may run on, within its cgroup's quota (a
    Kubernetes pod's CPU limit, which may be a fraction: 1.5)."""
    # No affinity on macOS: every CPU, then.
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _quota()
    return float(cpus) if quota is None else min(float(cpus), quota)


def usable_cpus() -> int:
    """Whole CPUs' worth of time this process may use (`usable_cpu_time` rounded down, at least one)."""
    return max(1, int(usable_cpu_time()))


def default_workers() -> int:
    """Two workers given two CPUs or more, none on one (a flow pod limited to one CPU: they would only
    take turns with the stream). Two even on two CPUs: the workers' encoding is most of the client's work,
    and at 368,210 documents on two cores (beside the local SecantusDB) two were at least as fast as one;
    past two the server, not the encoding, is what the stream waits for."""
    return 2 if usable_cpus() >= 2 else 0


class _Worker:
    """One encoder process and the two pipes to it: `send` (its stdin) and `recv` (its stdout)."""

    def __init__(self, options: CodecOptions[Any]) -> None:
        # os.pipe's ends are not inherited: only the child's own two go over (as its stdin and stdout).
        child_stdin, to_worker = os.pipe()
        from_worker, child_stdout = os.pipe()
        try:
            # Its own process group: Ctrl-C at a terminal reaches the extraction, which decides, and not
            # a worker still starting (before it could ignore it).
            self.proc = subprocess.Popen(
                [sys.executable, "-m", __name__],
                stdin=child_stdin,
                stdout=child_stdout,
                close_fds=True,
                process_group=0,
            )
        except BaseException:
            os.close(to_worker)
            os.close(from_worker)
            raise
        finally:
            os.close(child_stdin)
            os.close(child_stdout)
        self.send = Connection(to_worker, readable=False)
        self.recv = Connection(from_worker, writable=False)
        try:
            self.send.send_bytes(pickle.dumps(options))
        except BaseException:
            self.close()
            raise

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
            # The worker's last line says what; the whole traceback goes along as a note, not into the
            # one-line summary an operator reads first.
            error = WorkerFailed(
                f"encoding a MongoDB batch failed in encoder worker {self.proc.pid}: "
                f"{value.strip().splitlines()[-1]}"
            )
            error.add_note(value)
            raise error
        return value  # type: ignore[no-any-return]

    def _failed(self) -> WorkerFailed:
        try:
            code: int | None = self.proc.wait(_EXIT_S)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None and code < 0:
            how = f"was killed by signal {-code} (out of memory?)"
        elif code is not None:
            how = f"exited with code {code} (its error, if any, is on stderr above)"
        else:
            how = "stopped answering"
        return WorkerFailed(
            f"the encoder worker (pid {self.proc.pid}) of the MongoDB extraction {how}. "
            "Rerun the same ingestion date to resume after the last checkpointed part."
        )

    def close(self) -> None:
        self.send.close()  # its stdin ends: the worker leaves its loop...
        self.recv.close()  # ...or, writing an answer nobody will read, gets EPIPE and leaves at once
        try:
            self.proc.wait(_EXIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


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

    def map(self, batches: Iterable[bytes], objectids_only: bool) -> Generator[Encoded, None, None]:
        """`encode_batch` of each batch, in order, `IN_FLIGHT` per worker at most.

        An error reading `batches` comes after the batches read before it, and the pool stays usable.
        Leaving early (the caller closes this generator) waits for the batches in flight and drops them,
        so the next `map` starts clean. Anything else that stops it (a worker's failure, Ctrl-C or a
        SIGTERM while an answer was half read) leaves the pipes mid-message: the pool is done, `close`
        ends its workers.
        """
        if self._broken is not None:
            raise self._broken
        pending: deque[_Worker] = deque()
        limit = IN_FLIGHT * len(self._workers)
        source = iter(batches)
        read_error: Exception | None = None
        try:
            while True:
                try:
                    raw = next(source)
                except StopIteration:
                    break
                except Exception as exc:  # raised below, after the batches read before it
                    read_error = exc
                    break
                worker = next(self._turn)
                worker.submit(raw, objectids_only)
                pending.append(worker)
                while pending and (len(pending) >= limit or pending[0].ready()):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except GeneratorExit:
            self._drop(pending)
            raise
        except BaseException as exc:
            self._broken = (
                exc
                if isinstance(exc, WorkerFailed)
                else WorkerFailed(f"the MongoDB extraction's encoder workers were interrupted ({exc!r})")
            )
            raise
        if read_error is not None:
            raise read_error

    def _drop(self, pending: deque[_Worker]) -> None:
        """Read and drop the answers still in flight (a worker that failed meanwhile breaks the pool)."""
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


def encoder_pool(workers: int, options: CodecOptions[Any]) -> AbstractContextManager[EncoderPool | None]:
    """`workers` encoder processes, or none (0): the caller encodes in its own process."""
    return EncoderPool(workers, options) if workers else nullcontext()


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
