"""pnadc extraction against a real SecantusDB server: types, memory, increments, reconciliation, faults."""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import math
import re
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bson import (
    Binary,
    Code,
    Decimal128,
    Int64,
    MaxKey,
    MinKey,
    ObjectId,
    Regex,
    Timestamp,
    encode,
)
from pymongo import MongoClient

from flows.errors import ReconciliationError, SourceError, SourceUnavailable
from flows.generator import generate
from flows.lake import MANIFEST, Lake
from flows.settings import Settings
from flows.sources.local_mongo import SecantusProcess, free_port
from flows.sources.mongo import CHECKPOINTS, connect, extract_pnadc, unit_for
from tests.ingestion.conftest import (
    DATE,
    PASSWORD,
    USER,
    OnMessage,
    hooked_logger,
    raw_docs,
    source_ids,
)

ROOT = Path(__file__).resolve().parents[2]


def _settings(fast: Callable[..., Settings], server: SecantusProcess, **overrides: Any) -> Settings:
    return fast(mongo_uri=server.uri, **overrides)


def _assert_exactly_the_source(lake: Lake, uri: str, date: str = DATE) -> None:
    got = [d["_id"] for d in raw_docs(lake, date)]
    assert len(got) == len(set(got)), "duplicated documents in the raw batch"
    assert got == source_ids(uri), "the raw batch is not exactly the source, in _id order"


# --- what lands -------------------------------------------------------------------------------
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
    settings = _settings(fast, mongo_server, mongo_batch_size=3)
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
    settings = _settings(fast, server, mongo_batch_size=500)
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
    settings = _settings(fast, server, mongo_batch_size=500)
    lake = Lake(settings)
    m = extract_pnadc(settings, lake, DATE).manifest
    assert m["source"] == "mongodb" and m["server"] == f"mongodb://127.0.0.1:{server.port}"
    every_objectid = {"_id": {"$gte": {"$oid": "0" * 24}}}
    assert (m["database"], m["collection"], m["query"], m["sort"]) == (
        "ibge", "pnadc20203", every_objectid, {"_id": 1}
    )  # fmt: skip
    assert m["not_objectid"] == 0
    assert m["mode"] == "full" and m["watermark_from"] is None
    assert m["watermark_to"] == str(source_ids(server.uri)[-1])
    assert m["records"] == m["source_count"] == 1_200
    assert [f["records"] for f in m["files"]] == [500, 500, 200]
    assert m["version"] and m["started_at"] <= m["finished_at"]
    for entry, path in zip(m["files"], lake.committed_files("raw", unit_for(DATE)), strict=True):
        body = Path(path).read_bytes()
        assert hashlib.sha256(body).hexdigest() == entry["sha256"] and len(body) == entry["bytes"]
        assert len(gzip.decompress(body).splitlines()) == entry["records"]
    assert not Path(lake.committed_run_path("raw", unit_for(DATE)), CHECKPOINTS).exists()


def test_incremental_by_default_full_refresh_on_request(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(3_000)
    settings = _settings(fast, server, mongo_batch_size=700)
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
    _assert_exactly_the_source(lake, server.uri, "2026-11-04")


def test_a_rerun_of_the_same_date_replaces_it(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(2_000)
    settings = _settings(fast, server, mongo_batch_size=600)
    lake = Lake(settings)
    first = extract_pnadc(settings, lake, DATE).manifest
    second = extract_pnadc(settings, lake, DATE).manifest
    assert second["run_id"] != first["run_id"] and second["previous_run_id"] == first["run_id"]
    assert second["records"] == 2_000 and lake.partitions("raw", "pnadc") == [DATE]
    _assert_exactly_the_source(lake, server.uri)
    third = extract_pnadc(settings, lake, DATE).manifest
    assert lake.runs("raw", unit_for(DATE)) == [second["run_id"], third["run_id"]]


def test_rerunning_a_full_refresh_date_without_the_flag_keeps_it_whole(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    """Issue 15, item 7: the rerun used to replace the date's 1,007-document snapshot by the 7-document
    increment after the earlier date."""
    server = seeded(1_000)
    settings = _settings(fast, server, mongo_batch_size=400)
    lake = Lake(settings)
    extract_pnadc(settings, lake, "2026-11-24")
    MongoClient(server.uri)["ibge"]["pnadc20203"].insert_many([{"uf": "Pará"} for _ in range(7)])
    full = extract_pnadc(settings, lake, DATE, full_refresh=True).manifest
    assert full["mode"] == "full" and full["records"] == 1_007
    rerun = extract_pnadc(settings, lake, DATE).manifest  # no flag
    assert (
        rerun["mode"] == "full" and rerun["records"] == 1_007 and rerun["previous_run_id"] == full["run_id"]
    )
    _assert_exactly_the_source(lake, server.uri)


# --- reconciliation ---------------------------------------------------------------------------
def test_a_document_the_cursor_could_not_see_fails_reconciliation(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(3_000)
    settings = _settings(fast, server, mongo_batch_size=500)
    lake = Lake(settings)
    writer: MongoClient[Any] = MongoClient(server.uri)
    # Mid-run, another client inserts a document whose _id sorts before the cursor's position: a real
    # change of the source the stream cannot see, which only the count reveals.
    early = ObjectId("000000000000000000000001")
    hook = OnMessage(
        "pnadc part 00002:", lambda: writer["ibge"]["pnadc20203"].insert_one({"_id": early, "uf": "Pará"})
    )
    with pytest.raises(ReconciliationError) as err:
        extract_pnadc(settings, lake, DATE, logger=hooked_logger("reconcile", hook))
    assert hook.fired
    assert "holds 3001 documents" in str(err.value) and "but 3000 were written" in str(err.value)
    assert lake.manifest("raw", unit_for(DATE)) is None and lake.partitions("raw", "pnadc") == []
    assert lake.runs("raw", unit_for(DATE)) == []  # removed: resuming could never fix it

    result = extract_pnadc(settings, lake, DATE)  # the rerun starts over and catches the document
    assert result.resumed_from is None and result.manifest["records"] == 3_001
    _assert_exactly_the_source(lake, server.uri)


# --- credentials and reachability -------------------------------------------------------------
def test_a_wrong_password_fails_fast_and_the_password_never_leaks(
    fast: Callable[..., Settings], auth_mongo: SecantusProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-Pa55word"
    uri = f"mongodb://{USER}:{wrong}@127.0.0.1:{auth_mongo.port}/?directConnection=true&authSource=admin"
    settings = fast(mongo_uri=uri)
    started = time.monotonic()
    with pytest.raises(SourceError) as err:
        extract_pnadc(settings, Lake(settings), DATE)
    assert time.monotonic() - started < 3.0
    message = str(err.value)
    assert "refused the credentials (code 18)" in message and f"{USER}:***@" in message
    assert wrong not in message and wrong not in caplog.text
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no chained driver error

    good = f"mongodb://{USER}:{PASSWORD}@127.0.0.1:{auth_mongo.port}/?directConnection=true&authSource=admin"
    settings = fast(mongo_uri=good, mongo_batch_size=300)
    lake = Lake(settings)
    manifest = extract_pnadc(settings, lake, DATE, logger=logging.getLogger("tests.ingestion.auth")).manifest
    assert manifest["records"] == 1_000
    assert PASSWORD not in Path(lake.path("raw", unit_for(DATE), MANIFEST)).read_text()
    assert USER not in manifest["server"]
    assert PASSWORD not in caplog.text and PASSWORD not in repr(settings)
    assert any(r.name.startswith("pymongo") for r in caplog.records)  # the driver's own logs were seen too


def test_an_unreachable_server_fails_fast_and_clearly(fast: Callable[..., Settings]) -> None:
    port = free_port()
    settings = fast(mongo_uri=f"mongodb://{USER}:{PASSWORD}@127.0.0.1:{port}/?directConnection=true")
    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as err:
        extract_pnadc(settings, Lake(settings), DATE)
    assert time.monotonic() - started < 3.0
    assert f"@127.0.0.1:{port}/?directConnection=true cannot be reached within 800 ms" in str(err.value)
    assert PASSWORD not in str(err.value)


# --- dropped connections and crashes -----------------------------------------------------------
def test_a_connection_closed_on_getmore_is_survived_within_the_run(
    fast: Callable[..., Settings],
    seeded: Callable[[int], SecantusProcess],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = seeded(3_000)
    MongoClient(server.uri).admin.command(
        "configureFailPoint",
        "failCommand",
        mode={"times": 1},
        data={"failCommands": ["getMore"], "closeConnection": True},
    )
    settings = _settings(fast, server, mongo_batch_size=400)
    lake = Lake(settings)
    with caplog.at_level(logging.WARNING):
        result = extract_pnadc(settings, lake, DATE, logger=logging.getLogger("tests.ingestion.failpoint"))
    assert "MongoDB connection dropped" in caplog.text and "reopening the cursor" in caplog.text
    assert result.manifest["records"] == result.manifest["source_count"] == 3_000
    _assert_exactly_the_source(lake, server.uri)


def test_server_killed_mid_stream_then_restarted_resumes_without_loss_or_duplicates(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(5_000)
    settings = _settings(fast, server, mongo_batch_size=500, mongo_reconnects=1)
    lake = Lake(settings)
    hook = OnMessage("pnadc part 00003:", lambda: server.stop(kill=True))
    broke = r"broke after (\d+) documents in (\d+) checkpointed parts.*resume"
    with pytest.raises(SourceUnavailable, match=broke) as failure:
        extract_pnadc(settings, lake, DATE, logger=hooked_logger("kill-server", hook))
    # Batches read ahead before the kill are still written: at least the 4 parts before the hook.
    done, parts = map(int, re.search(broke, str(failure.value)).groups())  # type: ignore[union-attr]
    assert 2_000 <= done < 5_000 and parts * 500 == done
    assert lake.manifest("raw", unit_for(DATE)) is None  # nothing visible
    [crashed_run] = lake.runs("raw", unit_for(DATE))

    server.start()  # same port, same data
    result = extract_pnadc(settings, lake, DATE)
    ids = source_ids(server.uri)
    assert result.resumed_from == str(ids[done - 1])
    assert result.manifest["run_id"] == crashed_run  # the same run folder, completed
    assert result.manifest["resumed_after"] == str(ids[done - 1])
    assert result.manifest["records"] == 5_000 and len(result.manifest["files"]) == 10
    _assert_exactly_the_source(lake, server.uri)


def _run_worker(settings: Settings, kill_after_part: int | None = None) -> subprocess.Popen[bytes]:
    cfg = {
        "settings": {
            "lake_root": settings.lake_root,
            "mongo_uri": settings.mongo_uri.get_secret_value() if settings.mongo_uri else None,
            "mongo_batch_size": settings.mongo_batch_size,
        },
        "date": DATE,
        "kill_after_part": kill_after_part,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.ingestion._extract_worker", json.dumps(cfg)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_a_process_killed_after_its_last_part_and_before_its_manifest_is_invisible_then_committed(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(2_500)
    settings = _settings(fast, server, mongo_batch_size=500)
    lake = Lake(settings)
    worker = _run_worker(settings, kill_after_part=4)  # part 4 is the last of 5
    assert worker.wait(timeout=60) == -9, worker.stderr.read() if worker.stderr else ""

    unit = unit_for(DATE)
    [run_id] = lake.runs("raw", unit)
    run = Path(lake.path("raw", unit, f"run={run_id}"))
    assert sorted(p.name for p in run.glob("part-*")) == [f"part-{i:05d}.jsonl.gz" for i in range(5)]
    assert lake.manifest("raw", unit) is None and lake.partitions("raw", "pnadc") == []  # invisible

    result = extract_pnadc(settings, lake, DATE)
    assert result.resumed_from == str(source_ids(server.uri)[-1])  # nothing left to read: just commit
    assert result.manifest["run_id"] == run_id and result.manifest["records"] == 2_500
    _assert_exactly_the_source(lake, server.uri)


def test_a_process_killed_at_any_moment_resumes_exactly_once(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(30_000)
    settings = _settings(fast, server, mongo_batch_size=500)
    lake = Lake(settings)
    worker = _run_worker(settings)
    unit_path = Path(lake.path("raw", unit_for(DATE)))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and worker.poll() is None:
        if len(list(unit_path.glob(f"run=*/{CHECKPOINTS}/*.json"))) >= 8:
            worker.kill()  # SIGKILL wherever it is: mid-page, mid-write, mid-checkpoint
            break
        time.sleep(0.005)
    assert worker.wait(timeout=30) == -9, "the worker finished before it could be killed"
    assert lake.manifest("raw", unit_for(DATE)) is None

    result = extract_pnadc(settings, lake, DATE)
    assert result.resumed_from is not None
    assert result.manifest["records"] == result.manifest["source_count"] == 30_000
    _assert_exactly_the_source(lake, server.uri)
    run = Path(lake.committed_run_path("raw", unit_for(DATE)))
    assert len(list(run.glob("part-*"))) == len(result.manifest["files"]) == 60  # no stray part left


@pytest.mark.parametrize(
    ("damage", "trusted_parts"),
    [
        ({"part-00002.jsonl.gz": b"garbage"}, 2),  # a part its checkpoint vouched for, changed since
        ({f"{CHECKPOINTS}/00001.json": b'{"file": "part-0'}, 1),  # a torn checkpoint
        ({f"{CHECKPOINTS}/00000.json": b"{}"}, 0),  # a checkpoint that names no part: start over
    ],
    ids=["damaged-part", "torn-checkpoint", "empty-checkpoint"],
)
def test_damaged_parts_or_checkpoints_are_not_trusted_on_resume(
    fast: Callable[..., Settings],
    seeded: Callable[[int], SecantusProcess],
    damage: dict[str, bytes],
    trusted_parts: int,
) -> None:
    server = seeded(2_500)
    settings = _settings(fast, server, mongo_batch_size=500)
    lake = Lake(settings)
    assert _run_worker(settings, kill_after_part=2).wait(timeout=60) == -9
    [run_id] = lake.runs("raw", unit_for(DATE))
    run = Path(lake.path("raw", unit_for(DATE), f"run={run_id}"))
    for name, body in damage.items():
        (run / name).write_bytes(body)

    result = extract_pnadc(settings, lake, DATE)
    ids = source_ids(server.uri)
    expected = str(ids[trusted_parts * 500 - 1]) if trusted_parts else None
    assert result.resumed_from == expected
    assert result.manifest["run_id"] == run_id if trusted_parts else result.manifest["run_id"] != run_id
    assert result.manifest["records"] == 2_500
    _assert_exactly_the_source(lake, server.uri)


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
    from flows.settings import use_settings

    caplog.set_level(logging.DEBUG)
    base = f"127.0.0.1:{auth_mongo.port}/?directConnection=true&authSource=admin"
    good = fast(mongo_uri=f"mongodb://{USER}:{PASSWORD}@{base}", mongo_batch_size=400)
    with use_settings(good):
        assert ingest_pnadc(DATE) == 1_000
    wrong = "An0ther-Wr0ng-PW"
    with use_settings(fast(mongo_uri=f"mongodb://{USER}:{wrong}@{base}")), pytest.raises(SourceError):
        ingest_pnadc(DATE)

    async def stored() -> str:
        async with get_client() as client:
            logs = await client.read_logs(limit=200)
            runs = await client.read_flow_runs(limit=20)
        return "\n".join([log.message for log in logs] + [str(r.state.message) for r in runs if r.state])

    deadline = time.monotonic() + 20  # logs reach the API in batches, in the background
    while "refused the credentials" not in (text := asyncio.run(stored())) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "pnadc part 00002" in text and "refused the credentials" in text  # the logs are there...
    for secret in (PASSWORD, wrong):  # ...and the passwords are not
        assert secret not in text and secret not in caplog.text
