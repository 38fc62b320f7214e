"""One extraction against a real SecantusDB server: what lands, memory, manifest, reruns, reconciliation."""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import math
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp, encode
from pymongo import MongoClient

from flows.errors import SourceError
from flows.lake import Lake
from flows.layout import raw_pnadc
from flows.settings import Settings
from flows.sources.local_mongo import SecantusProcess
from flows.sources.mongo import CHECKPOINTS, connect, extract_pnadc
from tests.sources.mongo.support import assert_exactly_the_source, mongo_settings
from tests.support.sources import DATE, PASSWORD, USER, raw_docs, source_ids


def test_every_bson_type_survives_the_trip(
    fast: Callable[..., Settings], mongo_server: SecantusProcess
) -> None:
    docs = [
        {"_id": ObjectId(), "ano": 2020, "renda": 1300.0, "anosesco": float("nan"), "horastrab": None},
        {"_id": ObjectId(), "renda": float("inf"), "neg": float("-inf"), "zero": -0.0, "big": Int64(2**40)},
        {"_id": ObjectId(), "uf": "Paraná", "ok": True, "when": dt.datetime(2020, 9, 30, 12, 0, 0, 123000)},
        {"_id": ObjectId(), "dec": Decimal128("1234.5600"), "bin": Binary(b"\x00\x01")},
        {"_id": ObjectId(), "uuid": Binary(uuid.uuid4().bytes, 4)},
        {"_id": ObjectId(), "ts": Timestamp(1600000000, 1), "re": Regex("^a", "i"), "code": Code("x = 1")},
        {"_id": ObjectId(), "lo": MinKey(), "hi": MaxKey(), "arr": [], "empty": {}},
        {"_id": ObjectId(), "nested": {"a": [1, 2.5, {"x": None, "y": [ObjectId()]}], "b": {"c": {}}}},
        {"_id": ObjectId(), "small_long": Int64(5)},  # relaxed mode's one loss: see below
    ]
    MongoClient(mongo_server.uri)["ibge"]["pnadc20203"].insert_many(docs)
    settings = mongo_settings(fast, mongo_server, mongo_batch_size=3)
    lake = Lake(settings)
    extract_pnadc(settings, lake, DATE)

    source = list(MongoClient(mongo_server.uri)["ibge"]["pnadc20203"].find({}).sort("_id", 1))
    landed = raw_docs(lake)
    assert len(landed) == len(source) == len(docs)
    for got, want in zip(landed[:-1], source[:-1], strict=True):
        # Byte-identical BSON: same keys, order, types (int32 vs double vs int64, NaN, ObjectId, dates...).
        assert encode(got) == encode(want), (got, want)
    assert type(landed[0]["ano"]) is int and type(landed[0]["renda"]) is float
    assert math.isnan(landed[0]["anosesco"]) and landed[0]["horastrab"] is None
    assert isinstance(landed[0]["_id"], ObjectId)
    assert landed[2]["uf"] == "Paraná" and isinstance(landed[2]["when"], dt.datetime)
    # Relaxed extended JSON writes a 64-bit integer as a plain number: the value survives, but one that
    # fits in 32 bits reads back as a 32-bit int (canonical mode would keep the width, at the price of
    # {"$numberLong": ...} objects in every numeric field for Spark to unwrap).
    assert landed[-1]["small_long"] == 5 and type(source[-1]["small_long"]) is Int64


def test_memory_stays_bounded_by_the_page_not_the_collection(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(20_000)
    settings = mongo_settings(fast, server, mongo_batch_size=500)
    client = connect(settings)
    tracemalloc.start()
    try:
        everything = list(client["ibge"]["pnadc20203"].find({}))  # what list(find()) would hold
        _, whole = tracemalloc.get_traced_memory()
        del everything
        gc.collect()
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        result = extract_pnadc(settings, Lake(settings), DATE, client=client)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    extraction = peak - before
    assert result.manifest["records"] == 20_000 and len(result.manifest["files"]) == 40
    assert whole > 20_000_000, whole  # the collection in memory: tens of MB
    assert extraction < whole / 5, (extraction, whole)  # extraction: one page and one server batch


def test_manifest_names_the_source_query_watermark_counts_and_checksums(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    import gzip
    import hashlib

    server = seeded(1_200)
    settings = mongo_settings(fast, server, mongo_batch_size=500)
    lake = Lake(settings)
    m = extract_pnadc(settings, lake, DATE).manifest
    assert m["source"] == "mongodb" and m["server"] == f"mongodb://127.0.0.1:{server.port}"
    every_objectid = {"_id": {"$gte": {"$oid": "0" * 24}}}
    assert (m["database"], m["collection"], m["query"], m["sort"]) == (
        "ibge", "pnadc20203", every_objectid, {"_id": 1}
    )  # fmt: skip
    assert m["not_objectid"] == 0 and m["ids_ascending"] is True
    assert m["mode"] == "full" and m["watermark_from"] is None
    assert m["watermark_to"] == str(source_ids(server.uri)[-1])
    assert m["records"] == m["source_count"] == 1_200
    assert [f["records"] for f in m["files"]] == [500, 500, 200]
    assert m["version"] and m["started_at"] <= m["finished_at"]
    for entry, path in zip(m["files"], lake.committed_files("raw", raw_pnadc(DATE)), strict=True):
        body = Path(path).read_bytes()
        assert hashlib.sha256(body).hexdigest() == entry["sha256"] and len(body) == entry["bytes"]
        assert len(gzip.decompress(body).splitlines()) == entry["records"]
    assert not Path(lake.committed_run_path("raw", raw_pnadc(DATE)), CHECKPOINTS).exists()


def test_a_rerun_of_the_same_date_replaces_it(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(2_000)
    settings = mongo_settings(fast, server, mongo_batch_size=600)
    lake = Lake(settings)
    first = extract_pnadc(settings, lake, DATE).manifest
    second = extract_pnadc(settings, lake, DATE).manifest
    assert second["run_id"] != first["run_id"] and second["previous_run_id"] == first["run_id"]
    assert second["records"] == 2_000 and lake.partitions("raw", "pnadc") == [DATE]
    assert_exactly_the_source(lake, server.uri)
    third = extract_pnadc(settings, lake, DATE).manifest
    assert lake.runs("raw", raw_pnadc(DATE)) == [second["run_id"], third["run_id"]]


@pytest.mark.integration
def test_the_flow_never_logs_the_password_either(
    prefect_harness: None,
    fast: Callable[..., Settings],
    auth_mongo: SecantusProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Through Prefect: its own logs (kept by the API) and the failure it records, on success and failure."""
    import asyncio

    from prefect.client.orchestration import get_client

    from flows.pipeline import ingest_pnadc

    caplog.set_level(logging.DEBUG)
    base = f"127.0.0.1:{auth_mongo.port}/?directConnection=true&authSource=admin"
    good = fast(mongo_uri=f"mongodb://{USER}:{PASSWORD}@{base}", mongo_batch_size=400)
    done = ingest_pnadc(DATE, settings=good, return_state=True)
    assert done.result() == 1_000  # the settings, secret included, reach the flow
    wrong = "An0ther-Wr0ng-PW"
    failed = ingest_pnadc(
        DATE, settings=fast(mongo_uri=f"mongodb://{USER}:{wrong}@{base}"), return_state=True
    )
    with pytest.raises(SourceError):
        failed.result()
    # Only these two runs' logs: the test server is the session's, and holds every earlier test's logs too.
    ids = [done.state_details.flow_run_id, failed.state_details.flow_run_id]

    async def stored() -> str:
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterId,
            LogFilter,
            LogFilterFlowRunId,
        )

        async with get_client() as client:
            logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)), limit=200)
            runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
        parameters = [json.dumps(r.parameters) for r in runs]  # the settings, as the API keeps them
        assert len(runs) == 2
        return "\n".join(
            [log.message for log in logs] + [str(r.state.message) for r in runs if r.state] + parameters
        )

    deadline = time.monotonic() + 120  # logs reach the API in batches, in the background
    wanted = ("pnadc part 00002", "refused the credentials")
    while not all(w in (text := asyncio.run(stored())) for w in wanted) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "pnadc part 00002" in text and "refused the credentials" in text  # the logs are there...
    for secret in (PASSWORD, wrong):  # ...and the passwords are not
        assert secret not in text and secret not in caplog.text
