"""What a run reads, as `_id` ranges: the increment after the last watermark, and the `_id`s of other types.

Incremental by default: a run starts after the highest `_id` committed by an earlier ingestion date (its
`watermark_to`). A document inserted later with a *lower* `_id` than that is never picked up by an
incremental run (ObjectIds are assigned by clients, so this can happen): `--full-refresh` re-reads all.

The keyset pages only documents whose `_id` is an ObjectId (MongoDB compares values of one type at a
time, so `$gt` an ObjectId never reaches a string or a date). Every other `_id` is matched by
`NOT_OBJECTID`, read by full extractions only.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from flows.lake import Lake
from flows.layout import PNADC, raw_pnadc
from flows.settings import Settings

log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter[Any]

# The lowest ObjectId: `$gte` it selects every ObjectId `_id` (and nothing else), through the `_id` index.
EVERY_OBJECTID = ObjectId("0" * 24)
# Every `_id` that is not an ObjectId, named positively: MongoDB cannot build index bounds for `$not` over
# `$type` (a full index scan and a fetch of every document), but gets one tight range per listed type. No
# "array": `_id` cannot be one, and `$type: "array"` would make the planner scan the whole index.
NOT_OBJECTID_TYPES = [
    "double", "string", "object", "binData", "undefined", "bool", "date", "null", "regex", "dbPointer",
    "javascript", "symbol", "javascriptWithScope", "int", "timestamp", "long", "decimal", "minKey", "maxKey",
]  # fmt: skip
NOT_OBJECTID: dict[str, Any] = {"_id": {"$type": NOT_OBJECTID_TYPES}}


def previous_watermark(lake: Lake, ingestion_date: str) -> str | None:
    """The highest `_id` committed by an earlier ingestion date: where an incremental run starts."""
    marks = []
    for date in lake.partitions("raw", PNADC):
        if date < ingestion_date:
            manifest = lake.manifest("raw", raw_pnadc(date)) or {}
            if manifest.get("watermark_to"):
                marks.append(manifest["watermark_to"])
    return max(marks, key=ObjectId) if marks else None


def objectid_query(watermark: str | None) -> dict[str, Any]:
    """The ObjectId `_id`s after `watermark` (exclusive), or all of them."""
    return {"_id": {"$gt": ObjectId(watermark)} if watermark else {"$gte": EVERY_OBJECTID}}


def up_to(query: dict[str, Any], watermark_to: str | None) -> dict[str, Any]:
    """`query` closed at `watermark_to` (inclusive): the range a finished stream covered."""
    bounds: dict[str, Any] = dict(query["_id"])
    if watermark_to:
        bounds["$lte"] = ObjectId(watermark_to)
    return {"_id": bounds}


@dataclass(frozen=True)
class Plan:
    """What this run reads: the ObjectId range after `watermark`, and the odd `_id`s when `full`."""

    unit: str
    watermark: str | None  # exclusive lower bound; None: from the first `_id`
    full: bool
    query: dict[str, Any]
    query_key: str  # a checkpoint is trusted only by a run with the same one


def plan_range(
    settings: Settings, lake: Lake, ingestion_date: str, full_refresh: bool, logger: Logger = log
) -> Plan:
    """What a run of `ingestion_date` reads: the whole collection (a first or `--full-refresh` run, or a rerun
    of a full one), else the increment after the previous dates' watermark."""
    unit = raw_pnadc(ingestion_date)
    if not full_refresh and (lake.manifest("raw", unit) or {}).get("mode") == "full":
        # A rerun replaces the date's batch: an increment would replace a whole snapshot by a few documents.
        logger.info("raw/%s holds a full extraction: rerunning it as one", unit)
        full_refresh = True
    watermark = None if full_refresh else previous_watermark(lake, ingestion_date)
    query_key = json.dumps(
        {
            "database": settings.mongo_database,
            "collection": settings.mongo_collection,
            "watermark_from": watermark,
            "batch_size": settings.mongo_batch_size,
        },
        sort_keys=True,
    )
    return Plan(unit, watermark, full_refresh or not watermark, objectid_query(watermark), query_key)
