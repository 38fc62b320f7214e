"""A full extraction is authoritative: what it no longer holds leaves the consumer (issue 15, item 1).

Before, the consumer combined every processing date: documents deleted at the source never left it, and a
bad record of an old date poisoned every later run."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId
from pymongo import MongoClient

from flows.errors import LakeError
from flows.lake import Lake
from flows.sources.local_mongo_seed import seed
from flows.sources.mongo import extract_pnadc
from flows.spark.jobs import ibge_to_processing, pnadc_to_processing, processing_to_consumer
from tests.spark.test_steps import DATE, land_ibge_snapshot

LATER, LAST = "2026-11-26", "2026-11-27"


def _consumer_ids(spark: Any, lake: Lake, uf: str) -> set[str]:
    df = spark.read.parquet(*lake.committed_files("consumer", "publico_alvo"))
    return {r._id for r in df.where(f"uf = '{uf}'").select("_id").collect()}


def test_documents_deleted_at_the_source_leave_the_consumer_at_the_next_full_refresh(
    spark: Any, mongo_server: Any, settings_for: Any
) -> None:
    seed(mongo_server.uri, "ibge", "pnadc20203", 3_000, 11)
    coll = MongoClient(mongo_server.uri)["ibge"]["pnadc20203"]
    settings = settings_for(mongo_uri=mongo_server.uri, mongo_batch_size=1_000)
    lake = Lake(settings)
    land_ibge_snapshot(lake)
    ibge_to_processing.run(settings, DATE)

    def process(date: str, **flags: Any) -> dict[str, Any]:
        extract_pnadc(settings, lake, date, **flags)
        pnadc_to_processing.run(settings, date)
        processing_to_consumer.run(settings, date)
        return lake.manifest("consumer", "publico_alvo")

    process(DATE)
    para = _consumer_ids(spark, lake, "Pará")
    assert para  # the target public in Pará is there

    coll.delete_many({"uf": "Pará"})  # deleted at the source
    incremental = process(LATER)  # an increment cannot see deletions: they stay
    assert incremental["processing_dates"] == [DATE, LATER] and _consumer_ids(spark, lake, "Pará") == para

    full = process(LATER, full_refresh=True)  # the snapshot is authoritative
    assert full["processing_dates"] == [LATER] and _consumer_ids(spark, lake, "Pará") == set()

    template = coll.find_one({"sexo": "Mulher", "idade": 30}, {"_id": 0})
    new = coll.insert_many([{**template, "uf": "Pará"} for _ in range(3)]).inserted_ids
    after = process(LAST)  # increments after the snapshot add to it
    assert after["processing_dates"] == [LATER, LAST]
    assert _consumer_ids(spark, lake, "Pará") == {str(i) for i in new if isinstance(i, ObjectId)}
    assert after["records"] == full["records"] + 3


def test_a_full_raw_batch_not_yet_transformed_is_not_taken_as_a_snapshot(
    spark: Any, mongo_server: Any, settings_for: Any
) -> None:
    """Raw LATER is rerun as a full extraction but its transform has not run: LATER's processing partition
    is still the old increment. Taken as a snapshot it would drop every record of DATE: the consumer fails
    instead, naming the date to transform."""
    seed(mongo_server.uri, "ibge", "pnadc20203", 2_000, 13)
    settings = settings_for(mongo_uri=mongo_server.uri, mongo_batch_size=1_000)
    lake = Lake(settings)
    land_ibge_snapshot(lake)
    ibge_to_processing.run(settings, DATE)
    for date in (DATE, LATER):
        extract_pnadc(settings, lake, date)
        pnadc_to_processing.run(settings, date)
    before = processing_to_consumer.run(settings, LATER)
    committed = lake.manifest("consumer", "publico_alvo")
    assert committed["processing_dates"] == [DATE, LATER]

    extract_pnadc(settings, lake, LATER, full_refresh=True)  # committed as full; no transform (yet)
    assert lake.manifest("raw", f"pnadc/ingestion_date={LATER}")["mode"] == "full"
    extract_pnadc(settings, lake, LAST)
    pnadc_to_processing.run(settings, LAST)
    for date in (LATER, LAST):  # the date itself, and another date built meanwhile
        with pytest.raises(LakeError, match=f"processing for {LATER} is older than its raw batch"):
            processing_to_consumer.run(settings, date)
    assert lake.manifest("consumer", "publico_alvo")["run_id"] == committed["run_id"]  # untouched

    pnadc_to_processing.run(settings, LATER)  # now LATER's partition is the snapshot
    after = processing_to_consumer.run(settings, LAST)
    assert lake.manifest("consumer", "publico_alvo")["processing_dates"] == [LATER, LAST]
    assert after["publico_alvo"] == before["publico_alvo"]  # DATE's records are in LATER's snapshot
