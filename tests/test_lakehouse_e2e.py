"""The whole lakehouse against real servers, checked against an independent pandas computation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pymongo import MongoClient

from flows.lake import Lake
from flows.pipeline import lakehouse
from flows.sources.local_mongo import seed
from flows.spark.warmup import latest_warm_up
from tests.support import reference

ROWS = 20_000
DATE = "2026-11-25"


def _assert_answers_match(got: list[dict[str, Any]], expected: dict[int, tuple[Any, int]]) -> None:
    assert [a["id"] for a in got] == list(range(1, 11))
    for a in got:
        want_value, want_rows = expected[a["id"]]
        assert a["rows"] == want_rows, f"Q{a['id']} rows"
        if isinstance(want_value, float):
            assert a["answer"] == pytest.approx(want_value, rel=1e-9), f"Q{a['id']}"
        else:
            assert a["answer"] == want_value, f"Q{a['id']}"


@pytest.mark.integration
def test_lakehouse_answers_match_pandas_and_rerun_is_idempotent(
    prefect_harness: None, mongo_server: Any, ibge_server: Any, settings_for: Any
) -> None:
    seed(mongo_server.uri, "ibge", "pnadc20203", ROWS, 7)
    docs = list(MongoClient(mongo_server.uri)["ibge"]["pnadc20203"].find({}))
    expected = reference.answers(docs)
    settings = settings_for(
        mongo_uri=mongo_server.uri, ibge_base_url=ibge_server.base_url, mongo_batch_size=6_000
    )

    first = lakehouse(ingestion_date=DATE, settings=settings).answer_rows
    _assert_answers_match(first, expected)
    assert expected[6] == (None, 0)  # the consumer zone holds no men: "no data", not 0

    lake = Lake(settings)
    raw = lake.manifest("raw", f"pnadc/ingestion_date={DATE}")
    assert raw["records"] == ROWS and raw["source_count"] == ROWS
    # Local mode: Spark's JVM was asked for before MongoDB streamed, and the first step took that session.
    warm = latest_warm_up()
    assert warm is not None and warm.taken and warm.future.exception() is None
    assert warm.requested_at < dt.datetime.fromisoformat(raw["started_at"]).timestamp()
    assert {lake.manifest("raw", f"ibge/{e}/ingestion_date={DATE}")["source"] for e in ("regioes",)} == {
        "api"
    }
    consumer_rows = lake.manifest("consumer", "publico_alvo")["records"]
    assert consumer_rows == expected[1][1]

    second = lakehouse(ingestion_date=DATE, settings=settings).answer_rows
    assert second == first
    assert lake.manifest("raw", f"pnadc/ingestion_date={DATE}")["records"] == ROWS
    assert lake.manifest("consumer", "publico_alvo")["records"] == consumer_rows
    assert lake.partitions("raw", "pnadc") == [DATE]
