"""`extract_pnadc`: the collection (or its increment) into one raw batch, in order, step by step.

Plan the range (incremental or full), open the run (fresh, or resumed after its last good checkpoint),
stream the ObjectId `_id`s page by page, sweep the other `_id`s (full extractions, when the count says
there may be some), reconcile with the source's count of the same range (reconcile.py), and commit. The
batch becomes visible only when its manifest is written, after the count matched the records written.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId
from bson.json_util import RELAXED_JSON_OPTIONS, dumps
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from flows.lake import Lake, Staging
from flows.settings import Settings
from flows.sources.mongo import ahead
from flows.sources.mongo.checkpoints import (
    checkpoints_ascending,
    clear_checkpoints,
    drop_strays,
    find_resumable,
    stream_start,
    write_part,
)
from flows.sources.mongo.connection import broken_stream, connect, server_name
from flows.sources.mongo.cursor import Seen, pages
from flows.sources.mongo.encoder_pool import EncoderPool, default_workers, encoder_pool
from flows.sources.mongo.ranges import NOT_OBJECTID, Plan, plan_range
from flows.sources.mongo.reconcile import (
    COLLECTION_COUNT,
    CountAfterStream,
    SourceCount,
    range_count,
    reconcile,
    settled_by_collection_count,
    written,
)

log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter[Any]


@dataclass
class Extraction:
    manifest: dict[str, Any]
    resumed_from: str | None
    stream_s: float = 0.0  # reading the cursors and writing the parts
    count_s: float = 0.0  # what the reconciling counts added after the stream (reconcile.py)
    overlapped_count_s: float = 0.0  # the collection count's own time (every attempt), the first asked as
    # the last batch arrived
    encoder_workers: int = 0  # the processes that encoded the batches (0: this one)


@dataclass
class _Run:
    staging: Staging
    after: ObjectId | None  # the stream starts after this `_id`
    resumed_from: str | None
    seen: Seen = field(default_factory=Seen)  # what the ObjectId stream dropped or reopened
    # Whether the parts so far hold ascending ObjectIds (cursor.Page.ascending; resumed: their checkpoints)
    ascending: bool = True
    sent_ahead: dict[str, str] | None = None  # its query's times, if `vamosjuntos run` sent it (ahead.py)

    def read_whole_collection(self) -> bool:
        """Whether the stream read every `_id` in one cursor and kept them all: not resumed, never
        reopened (both skip what sorts before their bound), no other `_id` type dropped."""
        return self.after is None and self.seen.reopened == 0 and self.seen.dropped == 0


def _open_run(lake: Lake, plan: Plan, logger: Logger) -> _Run:
    """A new run of the unit, or the newest interrupted one with the same query, after its checkpoints."""
    resumable = find_resumable(lake, plan.unit, plan.query_key, logger)
    after = stream_start(resumable, plan.watermark)
    start = ObjectId(after) if after else None
    if not resumable:
        return _Run(lake.stage("raw", plan.unit), start, None)
    run_id, checkpoints = resumable
    staging = lake.stage("raw", plan.unit, run_id=run_id)
    for cp in checkpoints:
        staging.add_file(cp["file"], records=cp["records"], sha256=cp["sha256"])
    staging.started_at = checkpoints[0]["started_at"]
    logger.info("Resuming run %s after %d committed parts (last _id %s)", run_id, len(checkpoints), after)
    return _Run(staging, start, after, ascending=checkpoints_ascending(checkpoints))


def _stream(
    collection: Collection[Any],
    lake: Lake,
    run: _Run,
    plan: Plan,
    settings: Settings,
    count: CountAfterStream,
    encoder: EncoderPool | None,
    logger: Logger,
) -> str | None:
    """The ObjectId `_id`s after `run.after`, one checkpointed part per page; the last `_id` written."""
    last_id = str(run.after) if run.after is not None else None
    sent = ahead.take(settings, run.after, logger)  # the query `vamosjuntos run` sent, if it is this one
    run.sent_ahead = sent.times() if sent is not None else None
    # No filter on the server: `run.after` (the watermark, or a resumed run's last `_id`) bounds the
    # cursor, and a fresh full extraction reads the collection as the bare drain does, its other `_id`
    # types dropped client-side (cursor.py says why).
    stream = pages(
        collection,
        {},
        run.after,
        settings.mongo_batch_size,
        reconnects=settings.mongo_reconnects,
        backoff_s=settings.mongo_reconnect_backoff_s,
        logger=logger,
        objectids_only=True,
        then=count.start if plan.full else None,  # the full extraction's count, overlapping the last pages
        seen=run.seen,
        encoder=encoder,
        sent=sent,
    )
    # Closed on the way out, whatever happens: the batches still in flight in the encoder workers are
    # taken back before the pool is closed (a failed part write would otherwise keep the generator open).
    with closing(stream):
        for index, page in enumerate(stream, len(run.staging.files)):
            write_part(lake, run.staging, index, page, plan.query_key)
            run.ascending = run.ascending and page.ascending
            last_id = str(page.last_id)
            logger.info("pnadc part %05d: %d documents (up to _id %s)", index, page.records, last_id)
    return last_id


def _sweep_odd_ids(
    collection: Collection[Any],
    lake: Lake,
    staging: Staging,
    plan: Plan,
    settings: Settings,
    encoder: EncoderPool | None,
    logger: Logger,
) -> int:
    """The documents whose `_id` is not an ObjectId, as the batch's last parts; how many.

    Full extractions only, with no reconnect (its keyset could not resume them) and no checkpoint (a
    resumed run reads them again). An incremental run leaves them out (and out of its count), or they
    would be quarantined again every day and a quiet day's quarantine share would fail the quality gate:
    each is accounted once per full snapshot.
    """
    odd = 0
    size = settings.mongo_batch_size
    sweep = pages(collection, NOT_OBJECTID, None, size, reconnects=0, logger=logger, encoder=encoder)
    with closing(sweep):  # as in _stream
        for index, page in enumerate(sweep, len(staging.files)):
            write_part(lake, staging, index, page, plan.query_key, checkpoint=False)
            odd += page.records
            logger.warning(
                "pnadc part %05d: %d documents whose _id is not an ObjectId (to be quarantined)",
                index, page.records,
            )  # fmt: skip
    return odd


@dataclass
class _Reconciled:
    count: SourceCount
    odd: int  # documents whose `_id` is not an ObjectId, swept into the batch
    seconds: float  # spent counting (the sweep is reading, not counting)


def _sweep_and_count(
    collection: Collection[Any],
    lake: Lake,
    run: _Run,
    plan: Plan,
    settings: Settings,
    watermark_to: str | None,
    count_after: CountAfterStream,
    encoder: EncoderPool | None,
    logger: Logger,
) -> _Reconciled:
    """After the ObjectId stream: the other `_id`s when there may be some, and the source's count.

    A full extraction whose stream read the whole collection in one cursor, dropping nothing, and whose
    collection counts, after the stream, the documents written: no sweep, no second count. Otherwise
    the sweep reads the other `_id`s and the counts are compared again; when they still disagree, the
    exact count of the range decides. (Equal counts alone prove nothing when `_id`s of another type
    were dropped: deletes behind the cursor can offset them.)
    """
    spent = 0.0
    odd = 0
    if plan.full:
        counting = time.perf_counter()  # what is left of the count (started as the last batch arrived)
        after = count_after.result(settings.mongo_reconnects, settings.mongo_reconnect_backoff_s, logger)
        spent += time.perf_counter() - counting
        if run.read_whole_collection() and settled_by_collection_count(after, written(run.staging)):
            return _Reconciled(SourceCount(after, COLLECTION_COUNT), odd, spent)
        odd = _sweep_odd_ids(collection, lake, run.staging, plan, settings, encoder, logger)
        if settled_by_collection_count(after, written(run.staging)):
            return _Reconciled(SourceCount(after, COLLECTION_COUNT), odd, spent)
    counting = time.perf_counter()
    count = range_count(collection, plan.query, watermark_to, full=plan.full)
    return _Reconciled(count, odd, spent + time.perf_counter() - counting)


def extract_pnadc(
    settings: Settings,
    lake: Lake,
    ingestion_date: str,
    *,
    full_refresh: bool = False,
    client: MongoClient[Any] | None = None,
    logger: Logger = log,
) -> Extraction:
    """Extract the collection (or its increment) into its raw unit (`layout.raw_pnadc`) and commit it."""
    client = client or connect(settings)
    collection = client[settings.mongo_database][settings.mongo_collection]
    plan = plan_range(settings, lake, ingestion_date, full_refresh, logger)
    run = _open_run(lake, plan, logger)
    workers = default_workers() if settings.mongo_encoder_workers is None else settings.mongo_encoder_workers
    started = time.perf_counter()
    try:
        with encoder_pool(workers, collection.codec_options) as encoder:
            count_after = CountAfterStream(collection)
            watermark_to = _stream(collection, lake, run, plan, settings, count_after, encoder, logger)
            reconciled = _sweep_and_count(
                collection, lake, run, plan, settings, watermark_to, count_after, encoder, logger
            )
    except PyMongoError as exc:
        raise broken_stream(settings, written(run.staging), len(run.staging.files), exc) from None
    count_s = reconciled.seconds
    stream_s = time.perf_counter() - started - count_s
    records = reconcile(
        lake, run.staging, ingestion_date, plan.watermark, watermark_to, reconciled.count.documents
    )
    drop_strays(lake, run.staging)
    manifest = lake.commit(
        run.staging,
        source="mongodb",
        server=server_name(settings),
        database=settings.mongo_database,
        collection=settings.mongo_collection,
        query=json.loads(dumps(plan.query, json_options=RELAXED_JSON_OPTIONS)),
        sort={"_id": 1},
        mode="full" if plan.full else "incremental",
        watermark_from=plan.watermark,
        watermark_to=watermark_to,
        source_count=reconciled.count.documents,
        reconciled_by=reconciled.count.method,
        records=records,
        batch_size=settings.mongo_batch_size,
        query_sent_ahead=run.sent_ahead,
        resumed_after=run.resumed_from,
        not_objectid=reconciled.odd,
        # Ascending ObjectIds in every part, no other type swept: the PNAD step trusts it (docs/ingestion.md)
        ids_ascending=run.ascending and reconciled.odd == 0,
        format="jsonl.gz (relaxed extended JSON, one document per line)",
    )
    clear_checkpoints(lake, run.staging)
    logger.info(
        "pnadc %s: %d documents read and written in %.1f s, reconciled by the %s (%.1f s more)",
        ingestion_date, records, stream_s, reconciled.count.method, count_s,
    )  # fmt: skip
    return Extraction(
        manifest,
        run.resumed_from,
        stream_s=stream_s,
        count_s=count_s,
        overlapped_count_s=count_after.seconds,
        encoder_workers=workers,
    )
