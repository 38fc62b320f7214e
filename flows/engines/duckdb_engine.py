"""DuckDB in Athena's place: the consumer tables as views, the Athena SQL translated by sqlglot."""

from __future__ import annotations

import time
from contextlib import suppress
from pathlib import Path

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from flows.engines.base import QueryCost, Rows
from flows.errors import LakeError, VamosJuntosError
from flows.lake import Lake
from flows.layout import CONSUMER_TABLES, Zone
from flows.questions import query_label
from flows.table_schemas import CONSUMER_SCHEMAS, Schema


class TranslationError(VamosJuntosError):
    """Athena SQL that cannot be run on DuckDB with the same meaning."""


class DialectDivergence(TranslationError):
    """Athena SQL using a construct whose result differs on DuckDB even after sqlglot's translation."""


# Constructs sqlglot translates by name but whose meaning differs (see docs/cloud-query.md).
_DIVERGENT: dict[type[exp.Expression], str] = {
    exp.DateDiff: "date_diff counts whole units elapsed in Athena but unit boundaries crossed in DuckDB "
    "(2023-12-31 → 2024-01-01 is 0 years in Athena, 1 in DuckDB)",
    exp.DateAdd: "date_add returns a DATE in Athena but a TIMESTAMP in DuckDB",
    exp.DateSub: "date arithmetic returns a DATE in Athena but a TIMESTAMP in DuckDB",
    exp.TsOrDsAdd: "date_add returns a DATE in Athena but a TIMESTAMP in DuckDB",
    exp.TsOrDsDiff: "date_diff counts whole units elapsed in Athena but unit boundaries crossed in DuckDB",
    exp.TimestampAdd: "timestamp arithmetic differs between Athena and DuckDB",
    exp.TimestampDiff: "timestamp differences count differently in Athena and DuckDB",
    exp.DatetimeAdd: "date arithmetic returns a DATE in Athena but a TIMESTAMP in DuckDB",
    exp.DatetimeDiff: "date differences count differently in Athena and DuckDB",
}


def check_portable(tree: exp.Expression, sql: str = "") -> None:
    """Reject constructs whose meaning sqlglot's Athena → DuckDB translation would change."""
    for node in tree.walk():
        reason = _DIVERGENT.get(type(node))
        if (
            reason is None
            and isinstance(node, exp.Add | exp.Sub)
            and (isinstance(node.expression, exp.Interval) or isinstance(node.this, exp.Interval))
        ):
            reason = "date ± INTERVAL returns a DATE in Athena but a TIMESTAMP in DuckDB"
        if reason is not None:
            raise DialectDivergence(
                f"The {query_label(sql)} uses `{node.sql(dialect='athena')}`: {reason}. DuckDB would answer "
                "differently from Athena. Rewrite it without date arithmetic (e.g. compare DATE columns "
                "with DATE literals), or add a construct to flows/engines/duckdb_engine.py only with a "
                "test in tests/engines/test_translation.py proving both engines agree."
            )


def _check_divisions(tree: exp.Expression, sql: str) -> None:
    """`a / b` divides integers in Athena (7 / 2 = 3): only translatable when the operand types are known."""
    for div in tree.find_all(exp.Div):
        types = [div.this.type, div.expression.type]
        if any(t is not None and t.is_type(*exp.DataType.REAL_TYPES) for t in types):
            continue  # a double or decimal operand: not an integer division on either engine
        if any(t is None or t.is_type(exp.DataType.Type.UNKNOWN) for t in types):
            raise DialectDivergence(
                f"The {query_label(sql)} divides `{div.sql(dialect='athena')}` but the operand types are "
                "unknown: Athena divides two integers as integers (7 / 2 = 3), DuckDB does not. CAST one "
                "side AS DOUBLE (or run it on an engine that knows the table schemas)."
            )


def athena_to_duckdb(sql: str, schema: dict[str, dict[str, str]] | None = None) -> str:
    """Translate one Athena (Trino) statement; raise if it cannot be done without changing its meaning.

    With `schema` ({table: {column: DuckDB type}}) columns are typed, so an integer division stays one.
    """
    tree = sqlglot.parse_one(sql, read="athena")
    check_portable(tree, sql)
    if schema:
        mapping = MappingSchema(schema, dialect="duckdb")
        try:
            tree = qualify(tree, schema=mapping, dialect="athena", quote_identifiers=False)
        except OptimizeError as exc:
            raise TranslationError(f"The {query_label(sql)} does not fit the consumer tables: {exc}") from exc
        tree = annotate_types(tree, schema=mapping, dialect="athena")
    else:
        tree = annotate_types(tree, dialect="athena")
    _check_divisions(tree, sql)
    return tree.sql(dialect="duckdb", unsupported_level=sqlglot.ErrorLevel.RAISE)


def _hive_keys(paths: list[str]) -> set[str]:
    return {seg.split("=", 1)[0] for p in paths for seg in p.split("/")[:-1] if "=" in seg}


# Every type of flows/table_schemas.py TYPES (tests/engines/test_questions_duckdb.py checks it).
DUCKDB_TYPES = {"string": "VARCHAR", "int": "INTEGER", "double": "DOUBLE"}


def _empty_select(columns: Schema, partitions: list[str]) -> str:
    """No rows, typed as the files read: the partition columns last and text, by name as read_parquet's
    hive columns come (publico_alvo's folders are in that order too, as the S3 dataset reads them)."""
    types = {c.name: DUCKDB_TYPES[c.type] for c in columns if c.name not in partitions}
    types |= {name: "VARCHAR" for name in sorted(partitions)}
    return (
        "SELECT " + ", ".join(f'CAST(NULL AS {t}) AS "{name}"' for name, t in types.items()) + " WHERE false"
    )


def _sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


class DuckDBEngine:
    """Views over the committed consumer files (by their manifests), in memory or in a database file."""

    def __init__(self, lake: Lake, database: str | Path = ":memory:") -> None:
        self.lake = lake
        self.con = duckdb.connect(str(database))
        self.stats: dict[str, QueryCost] = {}  # per SQL text
        self._schema: dict[str, dict[str, str]] | None = None

    def register(self, view: str, zone: Zone, unit: str, columns: Schema = ()) -> int:
        """Declare `view` over a committed unit's files; returns the rows its manifest records.

        A unit committed with no rows has no files to read a schema from: with `columns`, the view is an
        empty table of those columns (a question over it finds no rows); without, no view is declared.
        """
        manifest = self.lake.manifest(zone, unit)
        if manifest is None:
            raise LakeError(f"{zone}/{unit} is not committed: run the step that writes it first.")
        files = self.lake.committed_files(zone, unit)
        partitions = list(manifest.get("partition_by") or [])
        self._schema = None
        if not files:  # replace what an earlier run declared (a database file keeps it)
            self.con.unregister(f"{view}__arrow")  # an earlier S3 table's dataset, no longer read
            if columns:
                self.con.execute(f"CREATE OR REPLACE VIEW {view} AS {_empty_select(columns, partitions)}")
            else:
                self.con.execute(f"DROP VIEW IF EXISTS {view}")
            return int(manifest["records"])
        if self.lake.root(zone).startswith("s3://"):
            # DuckDB's httpfs is downloaded at run time; read S3 through pyarrow (fsspec) instead. The
            # dataset, not a table: DuckDB scans it per query, batch by batch, reading only the columns
            # (and hive partitions) the query needs, so a flow-run pod never holds a whole table.
            import pyarrow.dataset as ds

            paths = [f.split("://", 1)[1] for f in files]
            dataset = ds.dataset(
                paths,
                filesystem=self.lake.fs(zone),
                format="parquet",
                partitioning="hive" if partitions else None,
            )
            self.con.register(f"{view}__arrow", dataset)
            source = f"{view}__arrow"
        else:
            hive = "true" if partitions else "false"
            source = (
                f"read_parquet({_sql_list(files)}, hive_partitioning = {hive}, hive_types_autocast = false)"
            )
        # Only the table's own partition columns: not the lake's `run=<id>` folder (Athena's table location
        # is that folder, so it has no such column either).
        found = {d[0] for d in self.con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        extra = sorted((found & _hive_keys(files)) - set(partitions))
        exclude = f" EXCLUDE ({', '.join(extra)})" if extra else ""
        self.con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT *{exclude} FROM {source}")
        return int(manifest["records"])

    def register_consumer(self) -> dict[str, int]:
        """(Re)declare every consumer table as a view, all in one transaction; returns the rows each
        manifest records. A publish that fails or is stopped at one table leaves every view as it was:
        a reader of the database file never joins one run's people to another run's dimensions."""
        self.con.begin()
        try:
            counts = {
                table: self.register(table, "consumer", table, CONSUMER_SCHEMAS[table])
                for table in CONSUMER_TABLES
            }
        except BaseException:
            with suppress(duckdb.Error):  # the failure is the error to see, not a rollback's
                self.con.rollback()
            raise
        self.con.commit()
        return counts

    def schema(self) -> dict[str, dict[str, str]]:
        """{view: {column: DuckDB type}} of the declared views: what the translation types columns with."""
        if self._schema is None:
            rows = self.con.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
            ).fetchall()
            schema: dict[str, dict[str, str]] = {}
            for table, column, dtype in rows:
                if not table.endswith("__arrow"):
                    schema.setdefault(table, {})[column] = dtype
            self._schema = schema
        return self._schema

    def prefetch(self, athena_sqls: list[str]) -> None:
        """Athena starts queries ahead to run them concurrently; DuckDB runs each when asked."""

    def query(self, athena_sql: str) -> Rows:
        started = time.perf_counter()
        cursor = self.con.execute(athena_to_duckdb(athena_sql, self.schema() or None))
        columns = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        ms = round((time.perf_counter() - started) * 1000)
        self.stats[athena_sql] = {
            "engine": "duckdb",
            "query_id": None,
            "bytes_scanned": None,  # DuckDB reports no bytes scanned; local files cost nothing
            "engine_ms": ms,
            "total_ms": ms,
        }
        return columns, rows

    def close(self) -> None:
        self.con.close()
