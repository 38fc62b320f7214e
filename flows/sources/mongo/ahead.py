"""The stream's query sent ahead: `vamosjuntos run` sends it while Prefect starts (`send_ahead`), and the
extraction takes it only if it is the very query it would send itself (`take`).

SecantusDB, the embedded default, builds a find's whole answer before it sends the first batch (about 70%
of a drain: ~5 s at 368,210 documents, docs/ingestion.md), and Prefect's temporary server takes ~4 s to
answer before a flow run can start (docs/operations.md). The two came one after the other, on two cores of
which one idled. Sent ahead, the server builds its answer while Prefect starts. A real MongoDB answers at
once: there it saves the connection and the first batch's round trip.

The query only reads: nothing is written and no lock is taken. The command plans it as the run will
(`plan_range`, and a resumable run's last checkpoint), but the run plans again under the date's lock and
takes what was sent only if its own query is the same (server, database, collection, the `_id` it starts
after, batch size); anything else is closed, and the run sends its own. The collection may change in
between: any stream meets that, and the count after the stream settles it (reconcile.py). An embedded
server is queried ahead only once it holds its seeded documents: the run seeds an empty one first, which a
query sent before would not see.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from flows.settings import Settings

log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter[Any]

# The command's planning says nothing: the run plans again, and says what it decided (an unreadable
# checkpoint, say, once).
_UNHEARD = logging.Logger("vamosjuntos-query-ahead-plan", logging.CRITICAL)

# A query sent longer ago than this before the stream asks for it (a run that waited for the date's lock)
# is sent again: a server drops a cursor left idle (MongoDB after 10 minutes), and the stream would fail.
MAX_AGE_S = 120.0


@dataclass(frozen=True)
class Query:
    """What identifies the stream's first query (cursor.open_cursor: no filter, `_id` order)."""

    uri: str = field(repr=False)  # a secret: never in a log or an error
    database: str
    collection: str
    after: str | None  # the stream starts after this `_id`
    batch_size: int

    @classmethod
    def of(cls, settings: Settings, after: Any) -> Query:
        uri = settings.mongo_uri.get_secret_value() if settings.mongo_uri is not None else ""
        after = str(after) if after is not None else None
        return cls(uri, settings.mongo_database, settings.mongo_collection, after, settings.mongo_batch_size)


class Sent:
    """A query sent by a thread of its own, its first batch awaited there; its batches once `wait` returns,
    `close` to kill its cursor and close its client."""

    def __init__(self, settings: Settings, ingestion_date: str, full_refresh: bool, embedded: bool) -> None:
        self.settings, self.embedded = settings, embedded
        self.query: Query | None = None
        self.sent_at: float | None = None  # when the query went out (epoch seconds)
        self.answered_at: float | None = None  # when its first batch came back
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._client: Any = None
        self._cursor: Any = None
        self._first: list[bytes] = []
        self._closed = False
        self._done = False  # the thread has finished: what it opened is `close`'s to release
        self._thread = threading.Thread(
            target=self._send, args=(ingestion_date, full_refresh), name="mongo-query-ahead", daemon=True
        )
        self._thread.start()

    def _send(self, ingestion_date: str, full_refresh: bool) -> None:
        try:
            from bson import ObjectId

            from flows.lake import Lake
            from flows.sources.local_mongo_seed import SEEDED_WITH
            from flows.sources.mongo.checkpoints import find_resumable, stream_start
            from flows.sources.mongo.connection import connect
            from flows.sources.mongo.cursor import open_cursor
            from flows.sources.mongo.ranges import plan_range

            lake = Lake(self.settings)
            plan = plan_range(self.settings, lake, ingestion_date, full_refresh, _UNHEARD)
            after = stream_start(find_resumable(lake, plan.unit, plan.query_key, _UNHEARD), plan.watermark)
            self._client = connect(self.settings)  # an embedded server just launched: waits until it answers
            database = self._client[self.settings.mongo_database]
            if (
                self.embedded
                and database[SEEDED_WITH].find_one({"_id": self.settings.mongo_collection}) is None
            ):
                return  # not seeded yet: the run seeds it before its stream
            if self._closed:
                return
            self.query = Query.of(self.settings, after)
            self.sent_at = time.time()
            collection = database[self.settings.mongo_collection]
            start = ObjectId(after) if after else None
            self._cursor = open_cursor(collection, {}, start, self.settings.mongo_batch_size)
            self._first = list(itertools.islice(self._cursor, 1))  # the server's answer, built meanwhile
            self.answered_at = time.time()
        except Exception as exc:  # the run then sends its own query, and meets the cause itself
            self.error = exc
        finally:
            with self._lock:
                self._done = True
                closed = self._closed
            if closed:  # closed while this thread held the cursor: it is this thread's to release
                self._release()

    def times(self) -> dict[str, str]:
        """When it went out and when its first batch came back, for the raw manifest (`query_sent_ahead`):
        known once `take` handed it to the stream."""
        assert self.sent_at is not None and self.answered_at is not None
        return {"sent_at": _utc(self.sent_at), "answered_at": _utc(self.answered_at)}

    def wait(self) -> None:
        self._thread.join()

    def __iter__(self) -> Iterator[bytes]:
        """Its batches (cursor.RawBatches), once `wait` returned: the first, then the rest of the cursor's."""
        return itertools.chain(self._first, self._cursor)

    def close(self) -> None:
        """Kill its cursor on the server and close its client; if the thread still waits for its first
        answer (a cursor has no id to kill until then), the thread does so once the answer comes."""
        with self._lock:
            self._closed = True
            if not self._done:
                return
        self._release()

    def _release(self) -> None:
        cursor, client, self._cursor, self._client = self._cursor, self._client, None, None
        if cursor is not None:
            cursor.close()  # killed on the server, which would otherwise hold its whole answer
        if client is not None:
            client.close()


_sent: Sent | None = None
_sent_lock = threading.Lock()


def send_ahead(settings: Settings, ingestion_date: str, full_refresh: bool, embedded_uri: str | None) -> None:
    """Send the stream's query now, from a thread (the module docstring); `embedded_uri`: the embedded
    server launched ahead (settings then name no server)."""
    global _sent
    if embedded_uri is not None:
        settings = settings.model_copy(update={"mongo_uri": SecretStr(embedded_uri)})
    elif settings.mongo_uri is None:
        return
    discard()  # one left by an earlier command in this process, if any
    with _sent_lock:
        _sent = Sent(settings, ingestion_date, full_refresh, embedded_uri is not None)


def _utc(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds")


def take(settings: Settings, after: Any, logger: Logger = log) -> Sent | None:
    """The query sent ahead, if it is the query this stream would send (`after`: the `_id` it starts after);
    else None, and whatever was sent is closed."""
    global _sent
    with _sent_lock:
        sent, _sent = _sent, None
    if sent is None:
        return None
    asked = time.time()
    try:
        sent.wait()  # its first answer: the wait the stream's own query would have had, begun earlier
    except BaseException:  # a signal meanwhile: nothing else would close it now
        sent.close()
        raise
    when, answered = sent.sent_at, sent.answered_at
    if (
        when is None
        or answered is None
        or sent.error is not None
        or sent.query != Query.of(settings, after)
        or asked - when > MAX_AGE_S
    ):
        why = repr(sent.error) if sent.error is not None else "not the stream's query, or too old"
        logger.debug("The query sent ahead is not used (%s): the stream sends its own", why)
        sent.close()
        return None
    logger.info("The stream's query was sent ahead, %.1f s before the stream began", asked - when)
    return sent


def discard() -> None:
    """Close a query sent ahead that no stream took (the command ends)."""
    global _sent
    with _sent_lock:
        sent, _sent = _sent, None
    if sent is not None:
        sent.close()
