"""Declaring the consumer tables for the query engine: Glue tables for Athena, a DuckDB file locally."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flows import catalog
from flows.engines.duckdb_engine import DuckDBEngine
from flows.lake import Lake
from flows.layout import DUCKDB_FILE
from flows.settings import Settings


@dataclass(frozen=True)
class Published:
    """Rows per published table; with Glue, what was done to each table (created, repointed, unchanged)."""

    records: dict[str, int]
    glue_tables: list[dict[str, Any]] = field(default_factory=list)


def publish(settings: Settings, lake: Lake) -> Published:
    if settings.engine == "athena":
        tables = catalog.publish_glue(lake, settings)
        return Published({t["table"].split(".", 1)[1]: t["records"] for t in tables}, tables)
    engine = DuckDBEngine(lake, _catalog_path(settings, lake))
    try:
        return Published(engine.register_consumer())
    finally:
        engine.close()


def _catalog_path(settings: Settings, lake: Lake) -> str:
    """A DuckDB database file beside a local consumer zone (a person can open it); in memory on S3."""
    if "://" in settings.lake_root:
        return ":memory:"
    return str(lake.path("consumer", DUCKDB_FILE))
