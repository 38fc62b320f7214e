"""Hostile documents through the whole lakehouse: each is quarantined with its reason, every answer stays a
finite number, the report builds, and raw = processing + quarantine (issue 15, items 1, 4 and 9)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pyarrow.parquet as pq
import pytest
from bson import ObjectId
from pymongo import MongoClient

from flows.answers import as_json, load_latest
from flows.lake import Lake
from flows.pipeline import lakehouse
from flows.report.store import existing_location
from flows.sources.local_mongo_seed import seed

ROWS = 3_000
DATE = "2026-11-25"


def _woman(**changes: Any) -> dict[str, Any]:
    """Someone of the target public in Pará, but for `changes`."""
    doc = {"_id": ObjectId(), "ano": 2020, "trimestre": 3, "uf": "Pará", "sexo": "Mulher", "idade": 30,
           "cor": "Parda", "trab": "Pessoas na força de trabalho", "ocup": "Pessoas ocupadas",
           "renda": 2000.0, "horastrab": 40.0, "anosesco": 12.0}  # fmt: skip
    doc.update(changes)
    return doc


HOSTILE: list[tuple[dict[str, Any], str]] = [
    (_woman(renda=1.7e308), "renda outside 0-10000000"),
    (_woman(renda=1.7e308), "renda outside 0-10000000"),
    (_woman(renda=-500.0), "renda outside 0-10000000"),
    (_woman(idade="30d"), "idade: not a lossless integer"),
    (_woman(renda="0x1p10"), "renda: not a lossless number"),
    (_woman(_id="not-an-objectid"), "_id missing or not an ObjectId"),
    (_woman(_id=dt.datetime(2020, 9, 30)), "_id missing or not an ObjectId"),
    (_woman(uf="<script>alert(1)</script>"), "uf not an IBGE state: <script>alert(1)</script>"),
]


@pytest.mark.integration
def test_hostile_documents_are_quarantined_and_every_answer_stays_finite(
    prefect_harness: None, mongo_server: Any, ibge_server: Any, settings_for: Any
) -> None:
    seed(mongo_server.uri, "ibge", "pnadc20203", ROWS, 7)
    MongoClient(mongo_server.uri)["ibge"]["pnadc20203"].insert_many([doc for doc, _ in HOSTILE])
    settings = settings_for(mongo_uri=mongo_server.uri, ibge_base_url=ibge_server.base_url)

    answers = lakehouse(ingestion_date=DATE, settings=settings).answer_rows

    for a in answers:
        assert a["answer"] is None or isinstance(a["answer"], str) or abs(a["answer"]) < 1e7, a
    lake = Lake(settings)
    stored = load_latest(lake)["answers"]
    assert json.loads(as_json(stored)) == stored  # strict JSON: no Infinity, no NaN
    assert existing_location(lake)  # the report was built

    raw = lake.manifest("raw", f"pnadc/ingestion_date={DATE}")
    assert raw["records"] == ROWS + len(HOSTILE) and raw["not_objectid"] == 2
    assert raw["ids_ascending"] is False  # so the PNAD step looked for duplicates
    processing = lake.manifest("processing", f"pnadc/ingestion_date={DATE}")
    quarantine_unit = f"quarantine/pnadc/ingestion_date={DATE}"
    rows = [
        r
        for path in lake.committed_files("processing", quarantine_unit)
        for r in pq.read_table(path).to_pylist()
    ]
    assert processing["records"] + len(rows) == raw["records"]
    reasons = sorted(reason for r in rows for reason in r["reason"].split("; "))
    for _, reason in HOSTILE:
        assert reason in reasons, (reason, reasons)
    assert len(rows) == len(HOSTILE)


@pytest.mark.integration
def test_a_source_with_no_one_of_the_target_public_answers_no_data(
    prefect_harness: None, mongo_server: Any, ibge_server: Any, settings_for: Any
) -> None:
    """Only men and older women: every record is valid, none is of the target public. The consumer table
    is committed empty, and the run answers each question with no data (it failed on the missing columns)."""
    people = [_woman(sexo="Homem") for _ in range(40)] + [_woman(idade=55) for _ in range(20)]
    MongoClient(mongo_server.uri)["ibge"]["pnadc20203"].insert_many(people)
    settings = settings_for(mongo_uri=mongo_server.uri, ibge_base_url=ibge_server.base_url)

    summary = lakehouse(ingestion_date=DATE, settings=settings)

    assert [(a["id"], a["answer"], a["rows"]) for a in summary.answer_rows] == [
        (qid, None, 0) for qid in range(1, 11)
    ]
    lake = Lake(settings)
    assert lake.manifest("processing", f"pnadc/ingestion_date={DATE}")["records"] == len(people)
    assert lake.manifest("consumer", "publico_alvo")["records"] == 0
    assert load_latest(lake)["answers"] == summary.answer_rows
    assert existing_location(lake)  # the report was built
