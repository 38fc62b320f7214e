"""Documents whose `_id` is not an ObjectId: extracted, counted and reconciled, never a broken run.

A string `_id` used to fail reconciliation on every run ("collection changed during the run?"), a date
`_id` to crash with InvalidId. Now every run reads them after the ObjectId stream; Spark quarantines them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from bson import ObjectId
from pymongo import MongoClient

from flows.lake import Lake
from flows.settings import Settings
from flows.sources.local_mongo import SecantusProcess
from flows.sources.mongo import extract_pnadc
from tests.ingestion.conftest import DATE, raw_docs, source_ids

ODD_IDS: list[Any] = ["not-an-objectid", dt.datetime(2020, 9, 30, 12, 0), 42, {"nested": 1}, 3.5]


def test_documents_with_other_ids_are_extracted_counted_and_reread_by_every_run(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(1_000)
    collection = MongoClient(server.uri)["ibge"]["pnadc20203"]
    collection.insert_many([{"_id": odd, "uf": "Pará", "idade": 30} for odd in ODD_IDS])
    settings = fast(mongo_uri=server.uri, mongo_batch_size=300)
    lake = Lake(settings)

    first = extract_pnadc(settings, lake, DATE).manifest
    assert first["records"] == first["source_count"] == 1_005 and first["not_objectid"] == len(ODD_IDS)
    oids = [i for i in source_ids(server.uri) if isinstance(i, ObjectId)]
    assert first["watermark_to"] == str(max(oids))  # the watermark is an ObjectId, whatever else is there
    got = [d["_id"] for d in raw_docs(lake)]
    assert sorted(map(str, got)) == sorted(map(str, oids + ODD_IDS)) and len(got) == len(set(map(str, got)))

    # An incremental run: the new ObjectId documents, and the odd ones again (no watermark can place them).
    collection.insert_many([{"uf": "Pará", "idade": 31} for _ in range(10)])
    later = "2026-11-26"
    second = extract_pnadc(settings, lake, later).manifest
    assert second["mode"] == "incremental" and second["watermark_from"] == first["watermark_to"]
    assert second["records"] == second["source_count"] == 10 + len(ODD_IDS)
    assert second["not_objectid"] == len(ODD_IDS)
    assert sorted(
        map(str, (d["_id"] for d in raw_docs(lake, later) if not isinstance(d["_id"], ObjectId)))
    ) == (sorted(map(str, ODD_IDS)))
    # and the same date again (a rerun) replaces, never duplicates
    assert extract_pnadc(settings, lake, later).manifest["records"] == 10 + len(ODD_IDS)


def test_a_collection_of_only_odd_ids_is_extracted(
    fast: Callable[..., Settings], mongo_server: SecantusProcess
) -> None:
    MongoClient(mongo_server.uri)["ibge"]["pnadc20203"].insert_many([{"_id": o} for o in ODD_IDS])
    settings = fast(mongo_uri=mongo_server.uri, mongo_batch_size=2)
    m = extract_pnadc(settings, Lake(settings), DATE).manifest
    assert m["records"] == m["source_count"] == m["not_objectid"] == len(ODD_IDS)
    assert m["watermark_to"] is None and [f["records"] for f in m["files"]] == [2, 2, 1]
