"""DuckDB in Athena's place: the consumer tables as views, the Athena SQL translated by sqlglot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import sqlglot

from flows.errors import LakeError
from flows.lake import Lake
from flows.settings import Zone

CONSUMER_TABLES = ("publico_alvo", "regioes", "ufs", "mesorregioes", "microrregioes")


def athena_to_duckdb(sql: str) -> str:
    """Translate one Athena (Trino) statement; raise if sqlglot cannot do it without loss."""
    return sqlglot.transpile(sql, read="athena", write="duckdb", unsupported_level=sqlglot.ErrorLevel.RAISE)[
        0
    ]


def _sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


class DuckDBEngine:
    """Views over the committed consumer files (by their manifests), in memory or in a database file."""

    def __init__(self, lake: Lake, database: str | Path = ":memory:") -> None:
        self.lake = lake
        self.con = duckdb.connect(str(database))

    def register(self, view: str, zone: Zone, unit: str) -> int:
        """Declare `view` over a committed unit's files; returns the rows its manifest records."""
        manifest = self.lake.manifest(zone, unit)
        if manifest is None:
            raise LakeError(f"{zone}/{unit} is not committed: run the step that writes it first.")
        files = self.lake.committed_files(zone, unit)
        if self.lake.root(zone).startswith("s3://"):
            # DuckDB's httpfs is downloaded at run time; read S3 through pyarrow (fsspec) instead.
            import pyarrow.dataset as ds

            paths = [f.split("://", 1)[1] for f in files]
            table = ds.dataset(
                paths, filesystem=self.lake.fs(zone), format="parquet", partitioning="hive"
            ).to_table()
            self.con.register(f"{view}__arrow", table)
            self.con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {view}__arrow")
        elif files:
            self.con.execute(
                f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM read_parquet("
                f"{_sql_list(files)}, hive_partitioning = true, hive_types_autocast = false)"
            )
        return int(manifest["records"])

    def register_consumer(self) -> dict[str, int]:
        """(Re)declare every consumer table as a view; returns the rows each manifest records."""
        return {table: self.register(table, "consumer", table) for table in CONSUMER_TABLES}

    def query(self, athena_sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        cursor = self.con.execute(athena_to_duckdb(athena_sql))
        columns = [d[0] for d in cursor.description]
        return columns, cursor.fetchall()

    def close(self) -> None:
        self.con.close()
