"""PNAD Contínua from MongoDB into the raw zone: streamed, keyset-paged, resumable, reconciled.

Each page of `batch_size` documents (keyset on `_id`, never skip/limit) becomes one gzipped part file of
relaxed extended JSON (ObjectId, NaN and every type survive the trip), followed by a checkpoint. A run
that dies resumes after its last checkpoint, in the same run folder; the batch becomes visible only when
its manifest is written, after the count of the extracted `_id` range in the source matched the records
written.

Incremental by default: a run starts after the highest `_id` committed by an earlier ingestion date (its
`watermark_to`). A document inserted later with a *lower* `_id` than that is never picked up by an
incremental run (ObjectIds are assigned by clients, so this can happen): `--full-refresh` re-reads all.

The keyset pages only documents whose `_id` is an ObjectId (MongoDB compares values of one type at a
time, so `$gt` an ObjectId never reaches a string or a date). A document whose `_id` is anything else
cannot be placed by a watermark: a full extraction (the collection's first run, `--full-refresh`) reads
all of them, after the ObjectId stream, as the batch's last parts (no checkpoint: a resumed run reads them
again); an incremental run leaves them out, so each is accounted once per full snapshot, not once per day.
They are counted like the rest, and the Spark step quarantines them ("_id missing or not an ObjectId"), so
raw = processing + quarantine still holds.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import posixpath
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bson import ObjectId, decode_all
from bson.json_util import RELAXED_JSON_OPTIONS, dumps
from pymongo import MongoClient
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from flows.errors import ReconciliationError, SourceError, SourceUnavailable
from flows.lake import Lake, Staging
from flows.settings import Settings
from flows.sources.mongo_uri import redact, redacted_uri, server_of

log = logging.getLogger(__name__)
SOURCE = "pnadc"
CHECKPOINTS = "_checkpoints"
# The lowest ObjectId: `$gte` it selects every ObjectId `_id` (and nothing else), through the `_id` index.
_EVERY_OBJECTID = ObjectId("0" * 24)
# Every `_id` that is not an ObjectId, named positively: MongoDB cannot build index bounds for `$not` over
# `$type` (a full index scan and a fetch of every document), but gets one tight range per listed type. No
# "array": `_id` cannot be one, and `$type: "array"` would make the planner scan the whole index.
NOT_OBJECTID_TYPES = [
    "double", "string", "object", "binData", "undefined", "bool", "date", "null", "regex", "dbPointer",
    "javascript", "symbol", "javascriptWithScope", "int", "timestamp", "long", "decimal", "minKey", "maxKey",
]  # fmt: skip
NOT_OBJECTID: dict[str, Any] = {"_id": {"$type": NOT_OBJECTID_TYPES}}


def unit_for(ingestion_date: str) -> str:
    return f"{SOURCE}/ingestion_date={ingestion_date}"


@dataclass
class Extraction:
    manifest: dict[str, Any]
    resumed_from: str | None
    stream_s: float = 0.0  # reading the cursor and writing the parts
    count_s: float = 0.0  # the reconciling count: an index count on MongoDB, a full scan on some servers


def connect(settings: Settings) -> MongoClient[Any]:
    """A client that has proven it can reach and authenticate, or a clear, fast, redacted error."""
    if settings.mongo_uri is None:
        raise SourceError("VAMOSJUNTOS_MONGO_URI is not set and no embedded server was started.")
    uri = settings.mongo_uri.get_secret_value()
    where = redacted_uri(uri)
    timeout_ms = settings.mongo_server_selection_timeout_ms
    try:
        client: MongoClient[Any] = MongoClient(
            uri,
            serverSelectionTimeoutMS=timeout_ms,  # an unreachable server still fails this fast
            # Also the heartbeat's timeout: too short, and a server slow to answer one while it builds a
            # large answer gets the running cursor cancelled ("operation cancelled") and re-read.
            connectTimeoutMS=settings.mongo_connect_timeout_ms,
            appname="vamosjuntos-lakehouse",
        )
        client.admin.command("ping")
        # With auth on, ping is allowed unauthenticated on some servers: ask for something that needs it.
        client[settings.mongo_database].command("listCollections", nameOnly=True)
        return client
    except ServerSelectionTimeoutError as exc:
        raise SourceUnavailable(
            f"MongoDB at {where} cannot be reached within {timeout_ms} ms "
            f"(VAMOSJUNTOS_MONGO_SERVER_SELECTION_TIMEOUT_MS): {redact(str(exc), uri)[:300]}"
        ) from None
    except OperationFailure as exc:
        if exc.code in (13, 18):
            raise SourceError(
                f"MongoDB at {where} refused the credentials (code {exc.code}): check the user "
                "and password in VAMOSJUNTOS_MONGO_URI."
            ) from None
        raise SourceError(f"MongoDB at {where}: {redact(str(exc), uri)[:300]}") from None
    except (PyMongoError, ValueError, TypeError, OSError) as exc:  # a malformed URI, option, TLS file
        raise SourceError(f"MongoDB at {where}: {redact(str(exc), uri)[:300]}") from None


def _previous_watermark(lake: Lake, ingestion_date: str) -> str | None:
    """The highest `_id` committed by an earlier ingestion date: where an incremental run starts."""
    marks = []
    for date in lake.partitions("raw", SOURCE):
        if date < ingestion_date:
            manifest = lake.manifest("raw", unit_for(date)) or {}
            if manifest.get("watermark_to"):
                marks.append(manifest["watermark_to"])
    return max(marks, key=ObjectId) if marks else None


# The server sends at most this many documents per batch; the reader keeps at most _READ_AHEAD batches.
_SERVER_BATCH = 10_000
_READ_AHEAD = 2
_STOP_POLL_S = 0.5


def _read_ahead(batches: Iterator[bytes], depth: int = _READ_AHEAD) -> Iterator[bytes]:
    """`batches`, read by a background thread up to `depth` batches ahead of the caller.

    A synchronous cursor makes the server and the client take turns: while we encode and gzip a page the
    server idles, and while it answers we wait. The thread spends its time in the socket (the GIL is
    released there), so the server streams while this thread works. An error in the thread is re-raised
    here, in order, after the batches read before it; closing this iterator stops the thread.
    """
    done = object()
    box: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: Any) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=_STOP_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for batch in batches:
                if not offer(batch):
                    return
            offer(done)
        except BaseException as exc:  # handed to the caller, who decides (reconnect or fail)
            offer(exc)

    thread = threading.Thread(target=read, name="mongo-read-ahead", daemon=True)
    thread.start()
    try:
        while (item := box.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=_STOP_POLL_S * 2)


@dataclass
class Page:
    """`records` documents as relaxed extended JSON lines, held as text: a page of decoded documents is
    ~15× larger, and only one of its server batches is decoded at a time."""

    lines: list[str]  # one block of lines per decoded batch (or slice of one)
    records: int
    first_id: Any
    last_id: Any


def _pages(
    collection: Any,
    query: dict[str, Any],
    after: ObjectId | None,
    page_size: int,
    reconnects: int = 3,
    backoff_s: float = 2.0,
    logger: logging.Logger | logging.LoggerAdapter[Any] = log,
) -> Iterator[Page]:
    """Pages of `page_size` documents in `_id` order, encoded, from one streaming cursor.

    One cursor, not one query per page: servers without an index-backed range scan (SecantusDB) would
    rescan the collection for every page. The cursor is hinted to the `_id` index: MongoDB picks it for an
    `_id` sort anyway, but SecantusDB would otherwise sort the whole collection in memory before its first
    batch (it was OOM-killed at 2M documents). Batches arrive as raw BSON through `_read_ahead` and are
    decoded and encoded here, one at a time, so the reader thread barely needs the GIL.

    The keyset on `_id` is still what resumes: when the connection drops, the cursor is reopened after the
    last page handed out, and the half-read page is read again. At most `reconnects` reopenings in a row
    (a page handed out resets the count), waits doubling. Memory holds one page's text, one decoded
    batch and a few raw batches, never the collection.
    """
    last = after
    failures = 0
    options = collection.codec_options
    while True:
        bound = {"_id": {"$gt": last}} if last is not None else {}
        cursor = collection.find_raw_batches(
            {**query, **bound},
            sort=[("_id", 1)],
            hint=[("_id", 1)],
            batch_size=min(page_size, _SERVER_BATCH),
        )
        batches = _read_ahead(cursor)
        lines: list[str] = []
        records, first_id, last_id = 0, None, None
        try:
            for raw in batches:
                docs = decode_all(raw, options)
                start = 0
                while start < len(docs):
                    take = docs[start : start + page_size - records]
                    start += len(take)
                    lines.append(relaxed_lines(take))
                    records += len(take)
                    first_id = take[0]["_id"] if first_id is None else first_id
                    last_id = take[-1]["_id"]
                    if records == page_size:
                        yield Page(lines, records, first_id, last_id)
                        last, failures = last_id, 0
                        lines, records, first_id = [], 0, None
                del docs
            if records:
                yield Page(lines, records, first_id, last_id)
            return
        except (AutoReconnect, ConnectionFailure) as exc:
            failures += 1
            if failures > reconnects:
                raise
            wait = min(backoff_s * 2 ** (failures - 1), 30.0)
            logger.warning(
                "MongoDB connection dropped (%s); reopening the cursor after _id %s in %.1f s (%d of %d)",
                exc, last, wait, failures, reconnects,
            )  # fmt: skip
            time.sleep(wait)
        finally:
            batches.close()
            cursor.close()


def _checkpoint_name(staging_unit: str, run_id: str, index: int) -> str:
    return posixpath.join(staging_unit, f"run={run_id}", CHECKPOINTS, f"{index:05d}.json")


def _valid_checkpoints(lake: Lake, unit: str, run_id: str, query_key: str) -> list[dict[str, Any]]:
    """The run's checkpoints 0, 1, 2… whose part file is there with its checksum, up to the first gap.

    A checkpoint is written (atomically) after its part, so a run killed at any instant leaves a prefix of
    good checkpoints; anything after a gap or a mismatch is ignored and rewritten by the resumed run.
    """
    fs = lake.fs("raw")
    run_path = lake.path("raw", unit, f"run={run_id}")
    good: list[dict[str, Any]] = []
    while True:
        index = len(good)
        try:
            cp = lake.read_json("raw", _checkpoint_name(unit, run_id, index))
        except ValueError:  # not JSON: cannot be trusted
            return good
        if cp is None or cp.get("query_key") != query_key or cp.get("file") != f"part-{index:05d}.jsonl.gz":
            return good
        try:
            with fs.open(posixpath.join(run_path, cp["file"]), "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
        except FileNotFoundError:
            return good
        if digest != cp.get("sha256"):
            return good
        good.append(cp)


def _find_resumable(lake: Lake, unit: str, query_key: str) -> tuple[str, list[dict[str, Any]]] | None:
    """The newest uncommitted run of this unit, started after the committed one, with the same query."""
    committed = (lake.manifest("raw", unit) or {}).get("run_id")
    for run_id in reversed(lake.runs("raw", unit)):
        if committed is not None and run_id <= committed:
            return None  # older runs were superseded by the commit; never resurrect them
        try:
            checkpoints = _valid_checkpoints(lake, unit, run_id, query_key)
        except (ValueError, KeyError, OSError) as exc:  # an unreadable checkpoint: not resumable
            log.warning(
                "Run %s of raw/%s has unreadable checkpoints (%s): not resuming it", run_id, unit, exc
            )
            continue
        if checkpoints:
            return run_id, checkpoints
    return None


def extract_pnadc(
    settings: Settings,
    lake: Lake,
    ingestion_date: str,
    *,
    full_refresh: bool = False,
    client: MongoClient[Any] | None = None,
    logger: logging.Logger | logging.LoggerAdapter[Any] = log,
) -> Extraction:
    """Extract the collection (or its increment) into `raw/pnadc/ingestion_date=…` and commit it."""
    client = client or connect(settings)
    collection = client[settings.mongo_database][settings.mongo_collection]
    unit = unit_for(ingestion_date)
    if not full_refresh and (lake.manifest("raw", unit) or {}).get("mode") == "full":
        # A rerun replaces the date's batch: an increment would replace a whole snapshot by a few documents.
        logger.info("raw/%s holds a full extraction: rerunning it as one", unit)
        full_refresh = True
    watermark = None if full_refresh else _previous_watermark(lake, ingestion_date)
    full = full_refresh or not watermark
    query: dict[str, Any] = {"_id": {"$gt": ObjectId(watermark)} if watermark else {"$gte": _EVERY_OBJECTID}}
    query_key = json.dumps(
        {
            "database": settings.mongo_database,
            "collection": settings.mongo_collection,
            "watermark_from": watermark,
            "batch_size": settings.mongo_batch_size,
        },
        sort_keys=True,
    )

    resumable = _find_resumable(lake, unit, query_key)
    resumed_from = None
    if resumable:
        run_id, checkpoints = resumable
        staging = lake.stage("raw", unit, run_id=run_id)
        for cp in checkpoints:
            staging.add_file(cp["file"], records=cp["records"], sha256=cp["sha256"])
        after: ObjectId | None = ObjectId(checkpoints[-1]["last_id"])
        resumed_from = checkpoints[-1]["last_id"]
        staging.started_at = checkpoints[0]["started_at"]
        logger.info("Resuming run %s after %d committed parts (last _id %s)", run_id, len(checkpoints), after)
    else:
        staging = lake.stage("raw", unit)
        after = ObjectId(watermark) if watermark else None

    first_part = len(staging.files)
    last_id = str(after) if after is not None else None
    pages = _pages(
        collection,
        query,
        after,
        settings.mongo_batch_size,
        reconnects=settings.mongo_reconnects,
        backoff_s=settings.mongo_reconnect_backoff_s,
        logger=logger,
    )
    started = time.perf_counter()
    try:
        for index, page in enumerate(pages, first_part):
            _write_part(lake, staging, index, page, query_key)
            last_id = str(page.last_id)
            logger.info("pnadc part %05d: %d documents (up to _id %s)", index, page.records, last_id)
        watermark_to = last_id
        # Not ObjectIds: read whole by every full extraction, with no reconnect (its keyset could not resume
        # them); an incremental run leaves them out (and out of its count), or they would be quarantined again
        # every day and a quiet day's quarantine share would fail the quality gate.
        odd = 0
        sweep = (
            _pages(collection, NOT_OBJECTID, None, settings.mongo_batch_size, reconnects=0, logger=logger)
            if full
            else iter(())
        )
        for index, page in enumerate(sweep, len(staging.files)):
            _write_part(lake, staging, index, page, query_key, checkpoint=False)
            odd += page.records
            logger.warning(
                "pnadc part %05d: %d documents whose _id is not an ObjectId (to be quarantined)",
                index, page.records,
            )  # fmt: skip
        written = sum(f.records or 0 for f in staging.files)
        range_query: dict[str, Any] = dict(query["_id"])
        if watermark_to:
            range_query["$lte"] = ObjectId(watermark_to)
        counting = time.perf_counter()
        source_count = collection.count_documents({"_id": range_query}) + odd
        counted = time.perf_counter()
    except PyMongoError as exc:
        kind = SourceUnavailable if isinstance(exc, ConnectionFailure) else SourceError
        done = sum(f.records or 0 for f in staging.files)
        uri = settings.mongo_uri.get_secret_value() if settings.mongo_uri else None
        raise kind(
            f"MongoDB {settings.mongo_database}.{settings.mongo_collection} at "
            f"{server_of(uri) if uri else '?'}: the stream "
            f"broke after {done} documents in {len(staging.files)} checkpointed parts: "
            f"{redact(str(exc), uri)[:300]} — rerun the same ingestion date to resume after "
            "the last checkpointed part."
        ) from None

    if source_count != written:
        # Resuming could never fix this (the missing documents sit before the resume point): start over.
        lake.abort(staging)
        raise ReconciliationError(
            f"pnadc {ingestion_date}: the source holds {source_count} documents with _id in "
            f"({watermark or '-inf'}, {watermark_to}] but {written} were written (the collection changed "
            "during the run?); the batch was not committed and its run was removed: rerun to start over."
        )
    _drop_strays(lake, staging)
    manifest = lake.commit(
        staging,
        source="mongodb",
        server=server_of(settings.mongo_uri.get_secret_value()) if settings.mongo_uri else None,
        database=settings.mongo_database,
        collection=settings.mongo_collection,
        query=json.loads(dumps(query, json_options=RELAXED_JSON_OPTIONS)),
        sort={"_id": 1},
        mode="full" if full else "incremental",
        watermark_from=watermark,
        watermark_to=watermark_to,
        source_count=source_count,
        records=written,
        batch_size=settings.mongo_batch_size,
        resumed_after=resumed_from,
        not_objectid=odd,
        format="jsonl.gz (relaxed extended JSON, one document per line)",
    )
    _clear_checkpoints(lake, staging)
    logger.info(
        "pnadc %s: %d documents read and written in %.1f s, reconciled by a count in %.1f s",
        ingestion_date, written, counting - started, counted - counting,
    )  # fmt: skip
    return Extraction(manifest, resumed_from, stream_s=counting - started, count_s=counted - counting)


# --- relaxed extended JSON, fast -------------------------------------------------------------
# `json_util.dumps(doc, json_options=RELAXED_JSON_OPTIONS)` is `json.dumps(_json_convert(doc))`: a
# Python-level conversion of every value, then the C encoder. In relaxed mode str, int (any size), bool,
# None and finite floats convert to themselves; only ObjectId ({"$oid": ...}) and NaN/±Infinity
# ({"$numberDouble": ...}) change. A flat document of exactly those types (`type(v) is`, so subclasses
# such as Int64 or Code are excluded) is encoded here by the same C encoder with json.dumps' defaults
# (", " / ": ", ensure_ascii), ObjectId through its `default` hook and non-finite floats wrapped: the same
# bytes, ~1.8x faster on PNAD pages. Anything else goes to json_util. tests/ingestion/test_raw_encoding.py
# checks the equality.
_SIMPLE_TYPES = frozenset({str, int, float, bool, type(None), ObjectId})
_NAN = {"$numberDouble": "NaN"}
_INFINITY = {"$numberDouble": "Infinity"}
_MINUS_INFINITY = {"$numberDouble": "-Infinity"}


def _objectid(value: Any) -> Any:
    if type(value) is ObjectId:
        return {"$oid": str(value)}
    raise TypeError(f"{value!r} is not a simple raw value")  # unreachable: documents are checked first


# json.dumps' defaults but the hook; check_circular is moot for flat documents of scalars.
_ENCODER = json.JSONEncoder(default=_objectid, check_circular=False)


def _is_simple(doc: Any) -> bool:
    return type(doc) is dict and _SIMPLE_TYPES.issuperset(map(type, doc.values()))


def _wrap_nonfinite(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` itself, or a copy with NaN and infinities as json_util writes them in relaxed mode."""
    out = doc
    for key, value in doc.items():
        if type(value) is float and value - value:  # nan for NaN and ±inf, 0.0 (falsy) otherwise
            if out is doc:
                out = dict(doc)
            out[key] = _NAN if value != value else _INFINITY if value > 0 else _MINUS_INFINITY
    return out


def relaxed_line(doc: Any) -> str:
    """`json_util.dumps(doc, json_options=RELAXED_JSON_OPTIONS)`, byte for byte, faster for flat docs."""
    if _is_simple(doc):
        return _ENCODER.encode(_wrap_nonfinite(doc))
    return dumps(doc, json_options=RELAXED_JSON_OPTIONS)


def relaxed_lines(page: list[Any]) -> str:
    """The page as JSON lines (one `relaxed_line` per document, each ending in a newline).

    A page of simple documents is encoded in one call, as a list: "[d1, d2, ...]". Every boundary between
    documents is then "}, {"; outside a string nothing else is (flat documents: a wrapped value is followed
    by ', "'), so when the text holds exactly len(page) - 1 of them they are the boundaries. A string
    holding "}, {" makes the count higher: that page is encoded document by document.
    """
    if page and all(map(_is_simple, page)):
        text = _ENCODER.encode(list(map(_wrap_nonfinite, page)))
        if text.count("}, {") == len(page) - 1:
            return text[1:-1].replace("}, {", "}\n{") + "\n"
    return "\n".join(map(relaxed_line, page)) + "\n"


def _write_part(
    lake: Lake, staging: Staging, index: int, page: Page, query_key: str, *, checkpoint: bool = True
) -> None:
    """One page as a gzipped part file, then its checkpoint (so a resumed run can trust the file)."""
    name = f"part-{index:05d}.jsonl.gz"
    # Level 1: raw is read once by Spark; the CPU is better spent keeping up with the cursor.
    body = gzip.compress("".join(page.lines).encode(), compresslevel=1, mtime=0)
    with staging.open(name) as fh:
        fh.write(body)
    entry = staging.add_file(name, records=page.records, sha256=hashlib.sha256(body).hexdigest())
    if not checkpoint:
        return
    saved = {
        "file": name,
        "records": page.records,
        "bytes": len(body),
        "sha256": entry.sha256,
        "first_id": str(page.first_id),
        "last_id": str(page.last_id),
        "query_key": query_key,
        "started_at": staging.started_at,
    }
    lake.write_json("raw", _checkpoint_name(staging.unit, staging.run_id, index), saved)


def _drop_strays(lake: Lake, staging: Staging) -> None:
    """Remove part files of a resumed run that no checkpoint vouches for (a kill mid-write)."""
    fs = lake.fs("raw")
    listed = {posixpath.basename(f.name) for f in staging.files}
    for entry in fs.ls(staging.path, detail=False):
        name = posixpath.basename(entry.rstrip("/"))
        if name.startswith("part-") and name not in listed:
            fs.rm(entry)


def _clear_checkpoints(lake: Lake, staging: Staging) -> None:
    fs = lake.fs("raw")
    cp_dir = posixpath.join(staging.path, CHECKPOINTS)
    if fs.exists(cp_dir):
        fs.rm(cp_dir, recursive=True)
