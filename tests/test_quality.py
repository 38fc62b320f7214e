"""The gate's expectations read the processing data itself: a breach written there is caught."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.errors import QualityGateFailed
from flows.lake import Lake
from flows.quality import Check, enforce, expectations

DATE = "2026-11-25"


def commit_parquet(lake: Lake, unit: str, rows: list[dict[str, Any]]) -> None:
    staging = lake.stage("processing", unit)
    with staging.open("part-0.parquet") as fh:
        pq.write_table(pa.Table.from_pylist(rows), fh)
    staging.add_file("part-0.parquet")
    lake.commit(staging, records=len(rows))


def person(_id: str, **changes: Any) -> dict[str, Any]:
    row = {"_id": _id, "uf": "Paraná", "sexo": "Mulher", "idade": 30, "cor": "Parda",
           "graduacao": None, "trab": None, "ocup": None, "renda": 1500.0, "horastrab": 40.0,
           "anosesco": 12.0}  # fmt: skip
    row.update(changes)
    return row


@pytest.fixture
def lake(settings_for: Any) -> Lake:
    lake = Lake(settings_for())
    commit_parquet(lake, f"ufs/ingestion_date={DATE}", [{"uf_nome": "Paraná"}, {"uf_nome": "Pará"}])
    commit_parquet(lake, f"quarantine/pnadc/ingestion_date={DATE}", [{"record_id": "q"}])
    return lake


def failed(checks: list[Check]) -> dict[str, Any]:
    return {c.name: c.observed for c in checks if not c.passed}


def test_clean_processing_data_passes(lake: Lake) -> None:
    commit_parquet(lake, f"pnadc/ingestion_date={DATE}", [person(str(i)) for i in range(200)])
    checks = expectations(lake, DATE, max_quarantine_share=0.01)
    assert failed(checks) == {}
    enforce(checks)


def test_each_breach_in_processing_is_named_with_its_count(lake: Lake) -> None:
    rows = [
        person("a"),
        person("a"),
        person("b", uf="Atlântida"),
        person("c", idade=131),
        person("d", sexo="X"),
        person("e", renda=1.7e308),
    ]
    rows += [person(f"ok{i}") for i in range(5)]
    commit_parquet(lake, f"pnadc/ingestion_date={DATE}", rows)
    checks = expectations(lake, DATE, max_quarantine_share=0.5)
    assert failed(checks) == {
        "pnadc: _id unique": 1,
        "pnadc: every uf is an IBGE state": 1,
        "pnadc: idade within range": 1,
        "pnadc: sexo within its domain": 1,
        "pnadc: renda within range": 1,
    }
    with pytest.raises(QualityGateFailed, match="5 of 12 checks failed"):
        enforce(checks)


def test_quarantine_share_above_the_threshold_fails(lake: Lake) -> None:
    commit_parquet(lake, f"pnadc/ingestion_date={DATE}", [person(str(i)) for i in range(9)])
    share = next(c for c in expectations(lake, DATE, max_quarantine_share=0.05) if "share" in c.name)
    assert not share.passed and share.observed.startswith("10.0000%")
