"""Both engines satisfy the one query-engine protocol (flows/engines/base.py) that every caller takes."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from flows.engines.athena import AthenaEngine
from flows.engines.base import QueryCost, QueryEngine
from flows.engines.duckdb_engine import DuckDBEngine
from flows.lake import Lake
from flows.settings import Settings
from tests.support.cloud_lake import cloud_settings, commit_parquet, make_bucket


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


def test_on_s3_a_view_streams_its_table_instead_of_holding_it(moto: str) -> None:
    """The quality gate declares the processing pnadc table in a flow-run pod: on S3 that must not load it."""
    make_bucket(moto)
    lake = Lake(cloud_settings(moto))
    n = 300_000
    table = pa.table(
        {"_id": pa.array([f"id-{i:09d}" for i in range(n)]), "idade": pa.array([i % 90 for i in range(n)])}
    )
    commit_parquet(lake, "publico_alvo", table)
    engine = DuckDBEngine(lake)
    try:
        before = pa.total_allocated_bytes()
        assert engine.register("pessoas", "consumer", "publico_alvo") == n
        held = pa.total_allocated_bytes() - before
        assert held < table.nbytes / 10, f"registering held {held:,} bytes of a {table.nbytes:,}-byte table"
        assert engine.query("SELECT count(*) - count(DISTINCT _id), max(idade) FROM pessoas")[1] == [(0, 89)]
    finally:
        engine.close()
