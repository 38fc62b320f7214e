"""What a run reads: increments after the watermark, full refreshes, and `_id`s that are not ObjectIds.

Documents whose `_id` is not an ObjectId are extracted, counted and reconciled, never a broken run.

A string `_id` used to fail reconciliation on every run ("collection changed during the run?"), a date
`_id` to crash with InvalidId. Now every full extraction reads them after the ObjectId stream (an
incremental run leaves them out: once per snapshot, not once per day); Spark quarantines them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from bson import ObjectId
from pymongo import MongoClient

from flows.generator import generate
from flows.lake import Lake
from flows.settings import Settings
from flows.sources.local_mongo import SecantusProcess
from flows.sources.mongo import extract_pnadc
from tests.sources.mongo.support import assert_exactly_the_source, mongo_settings
from tests.support.sources import DATE, raw_docs, source_ids

ODD_IDS: list[Any] = ["not-an-objectid", dt.datetime(2020, 9, 30, 12, 0), 42, {"nested": 1}, 3.5]


def test_incremental_by_default_full_refresh_on_request(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(3_000)
    settings = mongo_settings(fast, server, mongo_batch_size=700)
    lake = Lake(settings)
    first = extract_pnadc(settings, lake, "2026-11-01").manifest
    assert (first["mode"], first["records"]) == ("full", 3_000)

    coll = MongoClient(server.uri)["ibge"]["pnadc20203"]
    for chunk in generate(4_000, 7, start=3_000):  # 1,000 newer documents (higher _ids)
        coll.insert_many(chunk)
    second = extract_pnadc(settings, lake, "2026-11-02").manifest
    assert (second["mode"], second["records"], second["source_count"]) == ("incremental", 1_000, 1_000)
    assert second["watermark_from"] == first["watermark_to"]
    assert second["query"] == {"_id": {"$gt": {"$oid": first["watermark_to"]}}}
    new_ids = [d["_id"] for d in raw_docs(lake, "2026-11-02")]
    assert new_ids == source_ids(server.uri)[3_000:]

    nothing_new = extract_pnadc(settings, lake, "2026-11-03").manifest
    assert (nothing_new["records"], nothing_new["files"]) == (0, [])
    assert nothing_new["watermark_to"] == nothing_new["watermark_from"] == second["watermark_to"]

    again = extract_pnadc(settings, lake, "2026-11-02").manifest  # a rerun keeps its own lower bound
    assert (again["watermark_from"], again["records"]) == (first["watermark_to"], 1_000)

    full = extract_pnadc(settings, lake, "2026-11-04", full_refresh=True).manifest
    assert (full["mode"], full["records"], full["watermark_from"]) == ("full", 4_000, None)
    assert_exactly_the_source(lake, server.uri, "2026-11-04")


def test_rerunning_a_full_refresh_date_without_the_flag_keeps_it_whole(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    """Issue 15, item 7: the rerun used to replace the date's 1,007-document snapshot by the 7-document
    increment after the earlier date."""
    server = seeded(1_000)
    settings = mongo_settings(fast, server, mongo_batch_size=400)
    lake = Lake(settings)
    extract_pnadc(settings, lake, "2026-11-24")
    MongoClient(server.uri)["ibge"]["pnadc20203"].insert_many([{"uf": "Pará"} for _ in range(7)])
    full = extract_pnadc(settings, lake, DATE, full_refresh=True).manifest
    assert full["mode"] == "full" and full["records"] == 1_007
    rerun = extract_pnadc(settings, lake, DATE).manifest  # no flag
    assert (
        rerun["mode"] == "full" and rerun["records"] == 1_007 and rerun["previous_run_id"] == full["run_id"]
    )
    assert_exactly_the_source(lake, server.uri)


def test_documents_with_other_ids_are_extracted_and_counted_by_full_runs_only(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(1_000)
    collection = MongoClient(server.uri)["ibge"]["pnadc20203"]
    collection.insert_many([{"_id": odd, "uf": "Pará", "idade": 30} for odd in ODD_IDS])
    settings = fast(mongo_uri=server.uri, mongo_batch_size=300)
    lake = Lake(settings)

    first = extract_pnadc(settings, lake, DATE).manifest
    assert first["mode"] == "full"
    assert first["records"] == first["source_count"] == 1_005 and first["not_objectid"] == len(ODD_IDS)
    # Another type of `_id` could print as an ObjectId does ({"$oid": …}): no claim that ids are distinct.
    assert first["ids_ascending"] is False
    oids = [i for i in source_ids(server.uri) if isinstance(i, ObjectId)]
    assert first["watermark_to"] == str(max(oids))  # the watermark is an ObjectId, whatever else is there
    got = [d["_id"] for d in raw_docs(lake)]
    assert sorted(map(str, got)) == sorted(map(str, oids + ODD_IDS)) and len(got) == len(set(map(str, got)))

    # An incremental run: the new ObjectId documents only. The odd ones were accounted by the full run;
    # read again, Spark would quarantine them every day (a quiet day: 100% quarantine, a failed gate).
    collection.insert_many([{"uf": "Pará", "idade": 31} for _ in range(10)])
    later = "2026-11-26"
    second = extract_pnadc(settings, lake, later).manifest
    assert second["mode"] == "incremental" and second["watermark_from"] == first["watermark_to"]
    assert second["records"] == second["source_count"] == 10 and second["not_objectid"] == 0
    assert second["ids_ascending"] is True  # after the watermark: ObjectIds only
    assert all(isinstance(d["_id"], ObjectId) for d in raw_docs(lake, later))
    # a quiet day: nothing new, nothing re-read
    quiet = extract_pnadc(settings, lake, "2026-11-27").manifest
    assert quiet["records"] == quiet["source_count"] == quiet["not_objectid"] == 0
    # and the same date again (a rerun) replaces, never duplicates
    assert extract_pnadc(settings, lake, later).manifest["records"] == 10

    # --full-refresh is a full snapshot again: the odd documents with it, once.
    refreshed = extract_pnadc(settings, lake, "2026-11-28", full_refresh=True).manifest
    assert refreshed["mode"] == "full" and refreshed["not_objectid"] == len(ODD_IDS)
    assert refreshed["records"] == refreshed["source_count"] == 1_015


def test_a_collection_of_only_odd_ids_is_extracted(
    fast: Callable[..., Settings], mongo_server: SecantusProcess
) -> None:
    MongoClient(mongo_server.uri)["ibge"]["pnadc20203"].insert_many([{"_id": o} for o in ODD_IDS])
    settings = fast(mongo_uri=mongo_server.uri, mongo_batch_size=2)
    m = extract_pnadc(settings, Lake(settings), DATE).manifest
    assert m["records"] == m["source_count"] == m["not_objectid"] == len(ODD_IDS)
    assert m["watermark_to"] is None and [f["records"] for f in m["files"]] == [2, 2, 1]
