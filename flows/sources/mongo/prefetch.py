"""A cursor's batches read ahead by a thread, as fast as the server sends them, the backlog on disk.

`cursor.pages` reads its cursor through it: the server streams while the caller decodes, encodes and
writes, and the count that must follow the stream overlaps the caller's last batches.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

# The reader keeps at most READ_AHEAD batches in memory, and the batches it reads beyond those wait on disk.
READ_AHEAD = 2
_SPILL_PREFIX = "vamosjuntos-read-ahead-"
_SEGMENT_BYTES = 64 << 20  # a new spill file past this size, so the consumed ones can be closed
# At most this much backlog on disk (then the reader waits for the caller, as it did for memory before):
# a fast server would otherwise spill the whole collection, and the flow pod's /tmp is a 2 GiB emptyDir.
SPILL_MAX_BYTES = 1 << 30
_WAIT_S = 0.5
_JOIN_S = 1.0


@dataclass(frozen=True)
class _Spilled:
    """A batch the reader wrote to disk (the memory held stays READ_AHEAD batches): where it is."""

    file: IO[bytes]
    offset: int
    size: int


class _Spill:
    """Where the reader's backlog waits: anonymous files (no name: a process killed mid-stream leaves
    nothing on disk), a new one every `_SEGMENT_BYTES`, each closed once its last batch is taken."""

    def __init__(self) -> None:
        self.file: IO[bytes] | None = None
        self.size = 0

    def put(self, batch: bytes) -> _Spilled:
        if self.file is None or self.size >= _SEGMENT_BYTES:
            # Closed by read_ahead once taken (or when it is left), not by a with block here.
            self.file = tempfile.TemporaryFile(prefix=_SPILL_PREFIX)  # noqa: SIM115
            self.size = 0
        self.file.write(batch)  # the write releases the GIL
        self.file.flush()
        spilled = _Spilled(self.file, self.size, len(batch))
        self.size += len(batch)
        return spilled


def _take(item: _Spilled) -> bytes:
    parts: list[bytes] = []
    done = 0
    while done < item.size:  # pread may return less than asked
        part = os.pread(item.file.fileno(), item.size - done, item.offset + done)
        if not part:
            raise OSError(f"read-ahead spill file ended at {done} of {item.size} bytes")
        parts.append(part)
        done += len(part)
    return b"".join(parts)


def read_ahead(
    batches: Iterator[bytes], depth: int = READ_AHEAD, then: Callable[[], object] | None = None
) -> Iterator[bytes]:
    """`batches`, read by a background thread as fast as the source sends them, in order.

    A synchronous cursor makes the server and the client take turns: while we encode and gzip a page the
    server idles, and while it answers we wait. The thread spends its time in the socket (the GIL is
    released there), so the server streams while this thread works. It does not wait for the caller: at
    most `depth` batches wait in memory, the ones after them in anonymous files under `TMPDIR` (`_Spill`),
    up to `SPILL_MAX_BYTES` (only then does it wait). So the server sends its last batch as soon as it
    can, and the count that must follow the stream (`then`) overlaps the encoding of the batches still
    waiting, while memory stays `depth` batches whatever the backlog. An error in the thread is re-raised
    here, in order, after the batches read before it; closing this iterator stops the thread and closes
    its files.

    `then` runs in the thread once the last batch is read, while the caller still works on the batches
    ahead of it (an error in it comes after them, like a read error).
    """
    done = object()
    box: queue.Queue[Any] = queue.Queue()  # unbounded in items; bounded in memory by spilling to disk
    stop = threading.Event()
    spill = _Spill()
    room = threading.Condition()
    backlog = [0]  # bytes spilled and not taken yet

    def spilled(batch: bytes) -> _Spilled | None:
        with room:
            while backlog[0] and backlog[0] + len(batch) > SPILL_MAX_BYTES and not stop.is_set():
                room.wait(_WAIT_S)
            if stop.is_set():
                return None
            backlog[0] += len(batch)
        return spill.put(batch)

    def read() -> None:
        try:
            for batch in batches:
                if stop.is_set():
                    return
                item = batch if box.qsize() < depth else spilled(batch)
                if item is None:
                    return
                box.put(item)
            if then is not None and not stop.is_set():  # not for a cursor the caller already left
                then()
            box.put(done)
        except BaseException as exc:  # handed to the caller, who decides (reconnect or fail)
            box.put(exc)

    thread = threading.Thread(target=read, name="mongo-read-ahead", daemon=True)
    thread.start()
    reading: IO[bytes] | None = None  # the spill file of the last batch taken from disk
    try:
        while (item := box.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, _Spilled):
                if reading is not None and reading is not item.file:
                    reading.close()  # in order: every batch of the previous file was taken
                reading = item.file
                batch = _take(item)
                with room:
                    backlog[0] -= item.size
                    room.notify()
                yield batch
            else:
                yield item
    finally:
        stop.set()
        thread.join(timeout=_JOIN_S)
        # Full segments still queued would otherwise keep their disk space until they are collected.
        files = [reading, spill.file]
        while True:
            try:
                item = box.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Spilled):
                files.append(item.file)
        for file in files:
            if file is not None:
                file.close()  # closing twice is harmless
