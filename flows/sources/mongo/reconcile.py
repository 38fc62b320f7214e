"""The reconciling count: the check that a batch holds as many documents as the range it extracted.

Not a second pass over the collection after the stream. A full extraction's range is the whole
collection, so the collection's own count, asked when the stream has ended, settles it when it equals the
documents written by a stream that read the whole `_id` order in one cursor and dropped nothing: an insert
or a delete behind the cursor makes them differ. When the stream dropped documents of another `_id` type
(or was resumed or reopened, which skips what sorts before its bound) equal counts prove nothing, since
deletes behind the cursor can offset what was left out: the sweep and the exact count below decide. A
count before the stream as well adds nothing: the one change it alone reveals, a document inserted ahead
of the cursor and streamed, leaves the batch right. No count catches changes that cancel out (an insert
and a delete behind the cursor): a count, unlike a snapshot, checks numbers, not identities. That count is
`count` with no filter: MongoDB answers it from the collection's metadata without reading a document;
SecantusDB walks its stored documents without decoding them.

Whenever that does not settle it (the collection changed during the run; documents of other `_id` types
are there; an incremental run, whose range is not the whole collection), the exact count of the range
decides: `count_documents` over `(watermark_from, watermark_to]`, hinted to the `_id` index, plus the
documents whose `_id` is not an ObjectId for a full extraction. MongoDB answers both from the `_id`
index alone (an index-only count over the `_id` range, and one over the type brackets); SecantusDB,
whose `_id` index serves point lookups only, scans the collection for each.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from pymongo.collection import Collection
from pymongo.errors import ConnectionFailure

from flows.errors import ReconciliationError
from flows.lake import Lake, Staging
from flows.sources.mongo.connection import reconnect_wait
from flows.sources.mongo.ranges import NOT_OBJECTID, up_to

log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter[Any]

COLLECTION_COUNT = "collection count after the stream"
RANGE_COUNT = "count of the range"
_ID_INDEX = [("_id", 1)]


@dataclass(frozen=True)
class SourceCount:
    documents: int
    method: str  # COLLECTION_COUNT or RANGE_COUNT


def written(staging: Staging) -> int:
    """The documents in the run's parts so far."""
    return sum(f.records or 0 for f in staging.files)


def collection_count(collection: Collection[Any]) -> int:
    """Every document of the collection, as the server counts them cheapest (`count`, no filter)."""
    return collection.estimated_document_count()


@dataclass
class CountAfterStream:
    """The collection's count, asked once the server has sent the stream's last batch (the cursor's reader
    thread calls `start`, `pages(then=...)`), from a thread of its own: the encoding and writing of the
    batches still waiting go on meanwhile, and `result` then waits for whatever is left of it."""

    collection: Collection[Any]
    documents: int | None = None
    seconds: float = 0.0  # the count's own time, every attempt's (not the waits between them)
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._take, name="mongo-count", daemon=True)
            self._thread.start()

    def _take(self) -> None:
        started = time.perf_counter()
        try:
            self.documents = collection_count(self.collection)
        except BaseException as exc:  # raised by `result`, in the extraction's thread
            self._error = exc
        self.seconds += time.perf_counter() - started

    def result(self, reconnects: int = 0, backoff_s: float = 0.0, logger: Logger = log) -> int:
        """The count: the one started (waiting for what is left of it), else one taken now.

        A dropped connection is asked again here, still after the stream, at most `reconnects` times, the
        waits doubling (as the stream's cursor is reopened; pymongo has already retried once)."""
        if self._thread is None:
            self._take()
        else:
            self._thread.join()
        failures = 0
        while isinstance(self._error, ConnectionFailure) and failures < reconnects:
            failures += 1
            wait = reconnect_wait(backoff_s, failures)
            logger.warning(
                "MongoDB connection dropped while counting the collection (%s); counting again in %.1f s "
                "(%d of %d)",
                self._error, wait, failures, reconnects,
            )  # fmt: skip
            time.sleep(wait)
            self._error = None
            self._take()
        if self._error is not None:
            raise self._error
        assert self.documents is not None
        return self.documents


def settled_by_collection_count(after: int, written: int) -> bool:
    """Whether a full extraction's batch is proven complete by the collection's count after the stream."""
    return after == written


def range_count(
    collection: Collection[Any], query: dict[str, Any], watermark_to: str | None, *, full: bool
) -> SourceCount:
    """The exact count of the extracted range (and, for a full extraction, of the other `_id` types)."""
    documents = collection.count_documents(up_to(query, watermark_to), hint=_ID_INDEX)
    if full:
        documents += collection.count_documents(NOT_OBJECTID, hint=_ID_INDEX)
    return SourceCount(documents, RANGE_COUNT)


def reconcile(
    lake: Lake,
    staging: Staging,
    date: str,
    watermark_from: str | None,
    watermark_to: str | None,
    source_count: int,
) -> int:
    """The records written, if the source holds exactly as many in the range; else the run is removed."""
    done = written(staging)
    if source_count != done:
        # Resuming could never fix this (the missing documents sit before the resume point): start over.
        lake.abort(staging)
        raise ReconciliationError(
            f"pnadc {date}: the source holds {source_count} documents with _id in "
            f"({watermark_from or '-inf'}, {watermark_to}] but {done} were written (the collection "
            "changed during the run?); the batch was not committed and its run was removed: rerun to start "
            "over."
        )
    return done
