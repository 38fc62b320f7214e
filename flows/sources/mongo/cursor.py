"""The `_id`-ordered cursor, read ahead by a thread, cut into pages of encoded documents.

One cursor, not one query per page: servers without an index-backed range scan (SecantusDB) would rescan
the collection for every page. The keyset on `_id` is still what resumes: when the connection drops, the
cursor is reopened after the last page handed out.
"""

from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol

from bson import ObjectId
from pymongo.errors import AutoReconnect, ConnectionFailure

from flows.sources.mongo.batches import Encoded, ascending_objectids, encode_batch
from flows.sources.mongo.encoder_pool import EncoderPool
from flows.sources.mongo.part_body import PartBody

log = logging.getLogger(__name__)

# The server sends at most this many documents per batch; the reader keeps at most READ_AHEAD of them in
# memory, and the batches it reads beyond those wait on disk (`read_ahead`).
SERVER_BATCH = 10_000
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
    here after the batches read before it; closing this iterator stops the thread and closes its files.

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


@dataclass
class Seen:
    """What a stream met that its pages do not show: whether it read the whole `_id` order in one go."""

    dropped: int = 0  # documents of another `_id` type left out (`objectids_only`)
    reopened: int = 0  # cursors reopened after a dropped connection (each skips what sorts before `last`)


@dataclass
class Page:
    """`records` documents as relaxed extended JSON lines, gzipped as their batches were decoded and
    encoded (part_body.py): only the batches being encoded are ever held decoded or as text."""

    body: bytes  # the part file's bytes
    sha256: str
    records: int
    first_id: Any
    last_id: Any
    # Every `_id` an ObjectId, each greater than the one before it, the first greater than the last `_id`
    # of the page before (or than the cursor's lower bound): by induction, no `_id` repeats in the stream.
    ascending: bool = False


def _follows(before: Any, first: Any) -> bool:
    """Whether ascending ObjectIds from `first` may follow `before` (None: nothing) without a repeat."""
    return before is None or ascending_objectids([before, first])


class RawBatches(Protocol):
    """A cursor's raw BSON batches: pymongo's `find_raw_batches`, or a query sent ahead (ahead.py)."""

    def __iter__(self) -> Iterator[bytes]: ...
    def close(self) -> None: ...


def open_cursor(collection: Any, query: dict[str, Any], after: ObjectId | None, page_size: int) -> Any:
    """The stream's cursor: `query`'s documents after `after` in `_id` order, in raw batches (`pages`)."""
    bound = {"_id": {"$gt": after}} if after is not None else {}
    return collection.find_raw_batches(
        {**query, **bound}, sort=[("_id", 1)], hint=[("_id", 1)], batch_size=min(page_size, SERVER_BATCH)
    )


def pages(
    collection: Any,
    query: dict[str, Any],
    after: ObjectId | None,
    page_size: int,
    reconnects: int = 3,
    backoff_s: float = 2.0,
    logger: logging.Logger | logging.LoggerAdapter[Any] = log,
    *,
    objectids_only: bool = False,
    then: Callable[[], object] | None = None,
    seen: Seen | None = None,
    encoder: EncoderPool | None = None,
    sent: RawBatches | None = None,
) -> Generator[Page, None, None]:
    """Pages of `page_size` documents in `_id` order, encoded, from one streaming cursor.
    `objectids_only`: keep the documents whose `_id` is an ObjectId, dropping the others here rather than
    asking the server to (`_id: {$gte: <lowest ObjectId>}`): MongoDB turns such a filter into index bounds
    for free, but SecantusDB evaluates it in Python for every document, +30-60% of a drain (batches.py).

    `encoder`: worker processes that decode and encode the batches (encoder_pool.py); without it they
    are encoded here, one after the other.

    `seen`: counts the documents dropped and the cursors reopened, for the caller's reconciliation.

    `sent`: the first cursor, when its query (`open_cursor`'s) was sent ahead (ahead.py).

    `then`: called once the server has sent the last batch (by the reader thread, see `read_ahead`), e.g.
    the reconciling count, which then overlaps the encoding of the last batches.

    The cursor is hinted to the `_id` index: MongoDB picks it for an `_id` sort anyway, but SecantusDB
    would otherwise sort the whole collection in memory before its first batch (it was OOM-killed at 2M
    documents). Batches arrive as raw BSON through `read_ahead` and are decoded and encoded here or by the
    `encoder`'s workers, so the reader thread barely needs the GIL.

    When the connection drops the cursor is reopened after the last page handed out, and the half-read
    page is read again. At most `reconnects` reopenings in a row (a page handed out resets the count),
    waits doubling. Memory holds one gzipped page, the batches being encoded (one here, or `IN_FLIGHT` per
    worker there) and their text, and `READ_AHEAD` raw batches, never the collection.
    """
    last = after
    failures = 0
    options = collection.codec_options
    while True:
        cursor: RawBatches = sent if sent is not None else open_cursor(collection, query, last, page_size)
        sent = None  # a reopened cursor is this run's own
        batches = read_ahead(cursor, then=then)
        encoded: Generator[Encoded, None, None] = (
            encoder.map(batches, objectids_only)
            if encoder is not None
            else (encode_batch(raw, options, objectids_only) for raw in batches)
        )
        body = PartBody()
        records, first_id, last_id = 0, None, None
        before, ascending = last, True  # the `_id` the next one must exceed; whether all did so far
        try:
            for batch in encoded:
                if seen is not None:
                    seen.dropped += batch.dropped
                rest: Encoded | None = batch if batch.records else None
                while rest is not None:
                    room = page_size - records
                    take, rest = (rest, None) if rest.records <= room else rest.split(room)
                    body.write(take.lines)
                    records += take.records
                    first_id = take.first_id if first_id is None else first_id
                    ascending = ascending and take.ascending and _follows(before, take.first_id)
                    before = take.last_id
                    if records == page_size:
                        yield Page(*body.finish(), records, first_id, take.last_id, ascending)
                        last, failures = take.last_id, 0
                        body, records, first_id, ascending = PartBody(), 0, None, True
                    last_id = take.last_id
            if records:
                yield Page(*body.finish(), records, first_id, last_id, ascending)
            return
        except (AutoReconnect, ConnectionFailure) as exc:
            failures += 1
            if failures > reconnects:
                raise
            if seen is not None:
                seen.reopened += 1
            wait = min(backoff_s * 2 ** (failures - 1), 30.0)
            logger.warning(
                "MongoDB connection dropped (%s); reopening the cursor after _id %s in %.1f s (%d of %d)",
                exc, last, wait, failures, reconnects,
            )  # fmt: skip
            time.sleep(wait)
        finally:
            encoded.close()  # before the batches it reads: a pool waits for the ones in flight
            batches.close()
            cursor.close()
