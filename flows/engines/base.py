"""The one query-engine protocol: what the answers, the report's charts and the quality gate ask of an engine.

DuckDB (`duckdb_engine.DuckDBEngine`, locally) and Athena (`athena.AthenaEngine`, in the cloud) both satisfy
it; callers take a `QueryEngine` and never know which one runs their SQL. The SQL is always Athena's
(Trino) dialect: an engine that speaks another one translates it.
"""

from __future__ import annotations

from typing import Any, Protocol, TypedDict, runtime_checkable

Rows = tuple[list[str], list[tuple[Any, ...]]]


class QueryCost(TypedDict):
    """What one query cost, as the engine reports it (None where it reports nothing)."""

    engine: str
    query_id: str | None
    bytes_scanned: int | None
    engine_ms: int | None
    total_ms: int | None


@runtime_checkable
class QueryEngine(Protocol):
    """Runs Athena-dialect SQL; records each query's cost in `stats`, keyed by the SQL text."""

    stats: dict[str, QueryCost]

    def prefetch(self, athena_sqls: list[str]) -> None:
        """Start these queries ahead (an engine that cannot run them concurrently does nothing)."""
        ...

    def query(self, athena_sql: str) -> Rows:
        """(column names, rows) of one statement."""
        ...

    def close(self) -> None:
        """Release the engine (cancel what was started and never collected)."""
        ...
