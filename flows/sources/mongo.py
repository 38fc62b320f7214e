"""PNAD Contínua from MongoDB into the raw zone: streamed, keyset-paged, resumable, reconciled.

Each page of `batch_size` documents (keyset on `_id`, never skip/limit) becomes one gzipped part file of
relaxed extended JSON (ObjectId, NaN and every type survive the trip), followed by a checkpoint. A run
that dies resumes after its last checkpoint; the batch becomes visible only when its manifest is written.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import posixpath
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
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

log = logging.getLogger(__name__)
SOURCE = "pnadc"
CHECKPOINTS = "_checkpoints"
_PASSWORD = re.compile(r"(mongodb(?:\+srv)?://[^:/@]+:)([^@]+)(@)")


def redact(text: str, secret: str | None = None) -> str:
    """Hide a URI's password (and the password itself wherever it appears)."""
    text = _PASSWORD.sub(r"\1***\3", text)
    return text.replace(secret, "***") if secret else text


def _password(uri: str) -> str | None:
    match = _PASSWORD.search(uri)
    return match.group(2) if match else None


def unit_for(ingestion_date: str) -> str:
    return f"{SOURCE}/ingestion_date={ingestion_date}"


@dataclass
class Extraction:
    manifest: dict[str, Any]
    resumed_from: str | None


def connect(settings: Settings) -> MongoClient[Any]:
    """A client that has proven it can reach and authenticate, or a clear, fast, redacted error."""
    if settings.mongo_uri is None:
        raise SourceError("VAMOSJUNTOS_MONGO_URI is not set and no embedded server was started.")
    uri = settings.mongo_uri.get_secret_value()
    secret = _password(uri)
    try:
        client: MongoClient[Any] = MongoClient(
            uri,
            serverSelectionTimeoutMS=settings.mongo_server_selection_timeout_ms,
            connectTimeoutMS=settings.mongo_server_selection_timeout_ms,
            appname="vamosjuntos-lakehouse",
        )
        client.admin.command("ping")
        # With auth on, ping is allowed unauthenticated on some servers: ask for something that needs it.
        client[settings.mongo_database].command("listCollections", nameOnly=True)
        return client
    except ServerSelectionTimeoutError as exc:
        raise SourceUnavailable(
            f"MongoDB at {redact(uri, secret)} cannot be reached within "
            f"{settings.mongo_server_selection_timeout_ms} ms: {redact(str(exc), secret)[:300]}"
        ) from None
    except OperationFailure as exc:
        if exc.code in (13, 18):
            raise SourceError(
                f"MongoDB at {redact(uri, secret)} refused the credentials (code {exc.code}): check the user "
                "and password in VAMOSJUNTOS_MONGO_URI."
            ) from None
        raise SourceError(f"MongoDB at {redact(uri, secret)}: {redact(str(exc), secret)}") from None


def _previous_watermark(lake: Lake, ingestion_date: str) -> str | None:
    """The highest `_id` committed by an earlier ingestion date: where an incremental run starts."""
    marks = []
    for date in lake.partitions("raw", SOURCE):
        if date < ingestion_date:
            manifest = lake.manifest("raw", unit_for(date)) or {}
            if manifest.get("watermark_to"):
                marks.append(manifest["watermark_to"])
    return max(marks) if marks else None


def _pages(
    collection: Any, query: dict[str, Any], after: ObjectId | None, page_size: int, reconnects: int = 3
) -> Iterator[list[Any]]:
    """Pages of `page_size` documents in `_id` order, from one streaming cursor.

    One cursor, not one query per page: servers without an index-backed range scan (SecantusDB) would
    rescan the collection for every page. The keyset on `_id` is still what resumes: when the connection
    drops, the cursor is reopened after the last page handed out, and the half-read page is read again.
    """
    last = after
    attempt = 0
    while True:
        bound = {"_id": {"$gt": last}} if last is not None else {}
        cursor = collection.find({**query, **bound}).sort("_id", 1).batch_size(min(page_size, 10_000))
        page: list[Any] = []
        try:
            for doc in cursor:
                page.append(doc)
                if len(page) == page_size:
                    yield page
                    last, page = page[-1]["_id"], []
            if page:
                yield page
            return
        except (AutoReconnect, ConnectionFailure) as exc:
            attempt += 1
            if attempt > reconnects:
                raise
            log.warning("MongoDB connection dropped (%s); reopening the cursor after _id %s", exc, last)
            time.sleep(min(2.0**attempt, 10.0))
        finally:
            cursor.close()


def _find_resumable(lake: Lake, unit: str, query_key: str) -> tuple[str, list[dict[str, Any]]] | None:
    """An uncommitted run of this unit with the same query, and its checkpoints in order."""
    fs = lake.fs("raw")
    unit_path = lake.path("raw", unit)
    if not fs.exists(unit_path):
        return None
    committed = (lake.manifest("raw", unit) or {}).get("run_id")
    candidates = []
    for entry in fs.ls(unit_path, detail=False):
        name = posixpath.basename(entry.rstrip("/"))
        if not name.startswith("run=") or name[4:] == committed:
            continue
        cp_dir = posixpath.join(entry, CHECKPOINTS)
        checkpoints = (
            [json.loads(fs.cat_file(p)) for p in sorted(fs.ls(cp_dir, detail=False))]
            if fs.exists(cp_dir)
            else []
        )
        if checkpoints and checkpoints[0].get("query_key") == query_key:
            candidates.append((name[4:], checkpoints))
    return max(candidates) if candidates else None


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
    watermark = None if full_refresh else _previous_watermark(lake, ingestion_date)
    query: dict[str, Any] = {"_id": {"$gt": ObjectId(watermark)}} if watermark else {}
    query_key = json.dumps({"watermark_from": watermark, "batch_size": settings.mongo_batch_size})

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
    try:
        for index, page in enumerate(_pages(collection, query, after, settings.mongo_batch_size), first_part):
            _write_part(staging, index, page, query_key)
            last_id = str(page[-1]["_id"])
            logger.info("pnadc part %05d: %d documents (up to _id %s)", index, len(page), last_id)
    except PyMongoError as exc:
        secret = _password(settings.mongo_uri.get_secret_value()) if settings.mongo_uri else None
        raise SourceUnavailable(
            f"MongoDB stream broke after {sum(f.records or 0 for f in staging.files)} committed documents: "
            f"{redact(str(exc), secret)[:300]} — rerun to resume after the last committed part."
        ) from None

    written = sum(f.records or 0 for f in staging.files)
    watermark_to = last_id
    range_query: dict[str, Any] = {}
    if watermark:
        range_query["$gt"] = ObjectId(watermark)
    if watermark_to:
        range_query["$lte"] = ObjectId(watermark_to)
    source_count = collection.count_documents({"_id": range_query} if range_query else {})
    if source_count != written:
        raise ReconciliationError(
            f"pnadc {ingestion_date}: the source holds {source_count} documents in "
            f"({watermark}, {watermark_to}] but {written} were written; the batch was not committed."
        )
    manifest = lake.commit(
        staging,
        source="mongodb",
        database=settings.mongo_database,
        collection=settings.mongo_collection,
        query=json.loads(dumps(query, json_options=RELAXED_JSON_OPTIONS)),
        mode="full" if full_refresh or not watermark else "incremental",
        watermark_from=watermark,
        watermark_to=watermark_to,
        source_count=source_count,
        records=written,
        format="jsonl.gz (relaxed extended JSON)",
    )
    _clear_checkpoints(lake, staging)
    return Extraction(manifest, resumed_from)


def _write_part(staging: Staging, index: int, page: list[Any], query_key: str) -> None:
    """One page as a gzipped part file, then its checkpoint (so a resumed run can trust the file)."""
    name = f"part-{index:05d}.jsonl.gz"
    lines = "\n".join(dumps(doc, json_options=RELAXED_JSON_OPTIONS) for doc in page) + "\n"
    # Level 1: raw is read once by Spark; the CPU is better spent keeping up with the cursor.
    body = gzip.compress(lines.encode(), compresslevel=1, mtime=0)
    with staging.open(name) as fh:
        fh.write(body)
    entry = staging.add_file(name, records=len(page), sha256=hashlib.sha256(body).hexdigest())
    checkpoint = {
        "file": name,
        "records": len(page),
        "sha256": entry.sha256,
        "first_id": str(page[0]["_id"]),
        "last_id": str(page[-1]["_id"]),
        "query_key": query_key,
        "started_at": staging.started_at,
    }
    with staging.open(f"{CHECKPOINTS}/{index:05d}.json") as fh:
        fh.write(json.dumps(checkpoint).encode())


def _clear_checkpoints(lake: Lake, staging: Staging) -> None:
    fs = lake.fs("raw")
    cp_dir = posixpath.join(staging.path, CHECKPOINTS)
    if fs.exists(cp_dir):
        fs.rm(cp_dir, recursive=True)
