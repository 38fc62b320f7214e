"""The `_id`-ordered cursor, read ahead by a thread, cut into pages of encoded documents.

One cursor, not one query per page: servers without an index-backed range scan (SecantusDB) would rescan
the collection for every page. The keyset on `_id` is still what resumes: when the connection drops, the
cursor is reopened after the last page handed out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from bson import ObjectId
from pymongo.cursor import RawBatchCursor
from pymongo.errors import AutoReconnect, ConnectionFailure

from flows.sources.mongo.batches import Encoded, ascending_objectids, encode_batch
from flows.sources.mongo.connection import reconnect_wait
from flows.sources.mongo.encoder_pool import EncoderPool
from flows.sources.mongo.part_body import PartBody
from flows.sources.mongo.prefetch import read_ahead

log = logging.getLogger(__name__)

# The server sends at most this many documents per batch.
SERVER_BATCH = 10_000


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


def open_cursor(
    collection: Any, query: dict[str, Any], after: ObjectId | None, page_size: int
) -> RawBatchCursor[Any]:
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
    to start the reconciling count, which then overlaps the encoding of the last batches: it must not
    block, or those batches wait for it.

    The cursor is hinted to the `_id` index: MongoDB picks it for an `_id` sort anyway, but SecantusDB
    would otherwise sort the whole collection in memory before its first batch (it was OOM-killed at 2M
    documents). Batches arrive as raw BSON through `read_ahead` and are decoded and encoded here or by the
    `encoder`'s workers, so the reader thread barely needs the GIL.

    When the connection drops the cursor is reopened after the last page handed out, and the half-read
    page is read again. At most `reconnects` reopenings in a row (a page handed out resets the count),
    waits doubling. Memory holds one gzipped page, the batches being encoded (one here, or `IN_FLIGHT` per
    worker there) and their text, and `prefetch.READ_AHEAD` raw batches, never the collection.
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
            wait = reconnect_wait(backoff_s, failures)
            logger.warning(
                "MongoDB connection dropped (%s); reopening the cursor after _id %s in %.1f s (%d of %d)",
                exc, last, wait, failures, reconnects,
            )  # fmt: skip
            time.sleep(wait)
        finally:
            encoded.close()  # before the batches it reads: a pool waits for the ones in flight
            batches.close()
            cursor.close()
