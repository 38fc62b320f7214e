"""Both engines satisfy the one query-engine protocol (flows/engines/base.py) that every caller takes."""

from __future__ import annotations

from pathlib import Path

from flows.engines.athena import AthenaEngine
from flows.engines.base import QueryCost, QueryEngine
from flows.engines.duckdb_engine import DuckDBEngine
from flows.lake import Lake
from flows.settings import Settings
from tests.publish.conftest import cloud_settings


def test_duckdb_is_a_query_engine_and_records_what_each_query_cost(tmp_path: Path) -> None:
    engine = DuckDBEngine(Lake(Settings(lake_root=str(tmp_path / "lake"))))
    try:
        assert isinstance(engine, QueryEngine)
        sql = "SELECT 1.5 AS answer, 1 AS row_count"
        assert engine.query(sql) == (["answer", "row_count"], [(1.5, 1)])
        assert set(engine.stats[sql]) == set(QueryCost.__annotations__)
    finally:
        engine.close()


def test_athena_is_a_query_engine(moto: str) -> None:
    engine = AthenaEngine(cloud_settings(moto))
    try:
        assert isinstance(engine, QueryEngine)
    finally:
        engine.close()
