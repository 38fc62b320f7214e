"""Storage and scan cost: bytes per zone, bytes each question reads, and what Athena would charge for it.

Bytes per zone come from the lake's manifests (only committed data counts). For each question the SQL
file (Athena's dialect) is parsed with sqlglot: per table scan, the columns it touches and the conjuncts
of its WHERE clause. Those give two estimates of the bytes a Parquet engine reads, from the files'
Parquet footers:

- partition pruning only: the Hive partitions (`regiao_sigla=…/uf_sigla=…`) the WHERE clause can skip are
  skipped; every other file's footer and the compressed column chunks of the touched columns are read;
- with row-group statistics: additionally, row groups whose min/max/null counts contradict a conjunct are
  skipped (their footer is still read), as Athena (Trino) and DuckDB do.

DuckDB's own profiler (`io.total_bytes_read`) gives the bytes it actually read, as a check. Athena bills
the bytes read, rounded up to the megabyte, at least 10 MB per query, at $5 per TB.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import traverse_scope

from benchmarks.marks import Marks
from flows.layout import CONSUMER_TABLES, PUBLICO_ALVO, ZONES

MB = 1024**2
TB = 1024**4
ATHENA_USD_PER_TB = 5.0
ATHENA_MIN_BYTES = 10 * MB


def athena_cost_usd(scanned: int) -> float:
    billed = max(math.ceil(scanned / MB) * MB, ATHENA_MIN_BYTES)
    return billed / TB * ATHENA_USD_PER_TB


# --- the files ------------------------------------------------------------------------------
@dataclass
class RowGroup:
    num_rows: int
    columns: dict[str, dict[str, Any]]  # name -> compressed bytes, min, max, nulls


@dataclass
class FileMeta:
    path: str
    partition: dict[str, str]
    footer_bytes: int
    row_groups: list[RowGroup] = field(default_factory=list)


def file_meta(path: str) -> FileMeta:
    meta = pq.ParquetFile(path).metadata
    partition = dict(part.split("=", 1) for part in Path(path).parts if "=" in part and "run=" not in part)
    groups = []
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        cols = {}
        for j in range(rg.num_columns):
            c = rg.column(j)
            st = c.statistics
            cols[c.path_in_schema] = {
                "bytes": c.total_compressed_size,
                "min": st.min if st is not None and st.has_min_max else None,
                "max": st.max if st is not None and st.has_min_max else None,
                "nulls": st.null_count if st is not None and st.has_null_count else None,
            }
        groups.append(RowGroup(rg.num_rows, cols))
    # The footer, its 4-byte length and the 4-byte magic: what an engine reads before any data.
    return FileMeta(path, partition, meta.serialized_size + 8, groups)


# --- the questions --------------------------------------------------------------------------
@dataclass(frozen=True)
class Predicate:
    column: str
    op: str  # eq, in, between, gt, gte, lt, lte, not_null
    values: tuple[Any, ...] = ()


def _literal(node: exp.Expression) -> Any:
    if isinstance(node, exp.Literal):
        return node.this if node.is_string else float(node.this)
    raise ValueError("not a literal")


def _predicate(node: exp.Expression, alias: str) -> Predicate | None:
    """A conjunct an engine can prune with: column <op> literal(s) on this table."""

    def column(n: exp.Expression) -> str | None:
        return n.name if isinstance(n, exp.Column) and n.table == alias else None

    try:
        if isinstance(node, exp.EQ) and (col := column(node.this)):
            return Predicate(col, "eq", (_literal(node.expression),))
        if isinstance(node, exp.In) and (col := column(node.this)):
            return Predicate(col, "in", tuple(_literal(v) for v in node.expressions))
        if isinstance(node, exp.Between) and (col := column(node.this)):
            return Predicate(col, "between", (_literal(node.args["low"]), _literal(node.args["high"])))
        ops = {exp.GT: "gt", exp.GTE: "gte", exp.LT: "lt", exp.LTE: "lte"}
        if type(node) in ops and (col := column(node.this)):
            return Predicate(col, ops[type(node)], (_literal(node.expression),))
        if isinstance(node, exp.Not) and isinstance(node.this, exp.Is) and (col := column(node.this.this)):
            return Predicate(col, "not_null") if isinstance(node.this.expression, exp.Null) else None
    except ValueError:
        return None
    return None


def _may_match(p: Predicate, lo: Any, hi: Any, nulls: int | None, rows: int) -> bool:
    """Whether a row group (or a partition, lo == hi) with these statistics may hold a matching row."""
    if nulls is not None and nulls >= rows:
        return False  # only nulls: no comparison and no IS NOT NULL matches
    if p.op == "not_null" or lo is None or hi is None:
        return True
    try:
        if p.op == "eq":
            return lo <= p.values[0] <= hi
        if p.op == "in":
            return any(lo <= v <= hi for v in p.values)
        if p.op == "between":
            return hi >= p.values[0] and lo <= p.values[1]
        if p.op == "gt":
            return hi > p.values[0]
        if p.op == "gte":
            return hi >= p.values[0]
        if p.op == "lt":
            return lo < p.values[0]
        if p.op == "lte":
            return lo <= p.values[0]
    except TypeError:
        return True
    return True


@dataclass
class TableRead:
    table: str
    columns: list[str]
    predicates: list[str]
    files: int
    files_after_partition_pruning: int
    row_groups_after_statistics: int
    row_groups_total: int
    bytes_partition_pruning: int
    bytes_with_statistics: int


def read_cost(
    table: str, files: list[FileMeta], columns: list[str], predicates: list[Predicate]
) -> TableRead:
    kept_files = []
    for f in files:
        ok = True
        for p in predicates:
            if p.column in f.partition:
                value = f.partition[p.column]
                ok = ok and _may_match(p, value, value, None, 1)
        if ok:
            kept_files.append(f)
    data_columns = [c for c in columns if not any(c in f.partition for f in files[:1])]
    b_part = b_stats = groups_kept = groups_total = 0
    for f in kept_files:
        b_part += f.footer_bytes
        b_stats += f.footer_bytes
        for rg in f.row_groups:
            groups_total += 1
            chunk = sum(rg.columns[c]["bytes"] for c in data_columns if c in rg.columns)
            b_part += chunk
            keep = all(
                _may_match(p, s["min"], s["max"], s["nulls"], rg.num_rows)
                for p in predicates
                if (s := rg.columns.get(p.column)) is not None
            )
            if keep:
                groups_kept += 1
                b_stats += chunk
    return TableRead(
        table=table,
        columns=columns,
        predicates=[f"{p.column} {p.op} {', '.join(map(str, p.values))}".strip() for p in predicates],
        files=len(files),
        files_after_partition_pruning=len(kept_files),
        row_groups_after_statistics=groups_kept,
        row_groups_total=groups_total,
        bytes_partition_pruning=b_part,
        bytes_with_statistics=b_stats,
    )


def analyse_question(sql: str, tables: dict[str, list[FileMeta]], schema: dict[str, dict[str, str]]) -> dict:
    expression = qualify(sqlglot.parse_one(sql, read="athena"), schema=schema, dialect="athena")
    reads: list[TableRead] = []
    for scope in traverse_scope(expression):
        where = scope.expression.args.get("where")
        conjuncts: list[exp.Expression] = []
        if where is not None:
            conjuncts = list(where.this.flatten()) if isinstance(where.this, exp.And) else [where.this]
        for alias, source in scope.sources.items():
            if not isinstance(source, exp.Table) or source.name not in tables:
                continue
            columns = sorted({c.name for c in scope.columns if c.table == alias})
            predicates = [p for p in (_predicate(c, alias) for c in conjuncts) if p is not None]
            reads.append(read_cost(source.name, tables[source.name], columns, predicates))
    part = sum(r.bytes_partition_pruning for r in reads)
    stats = sum(r.bytes_with_statistics for r in reads)
    return {
        "reads": [vars(r) for r in reads],
        "bytes_partition_pruning": part,
        "bytes_with_statistics": stats,
        "athena_usd_partition_pruning": athena_cost_usd(part),
        "athena_usd_with_statistics": athena_cost_usd(stats),
    }


# --- the zones ------------------------------------------------------------------------------
def zone_bytes(settings: Any) -> dict[str, dict[str, int]]:
    """Bytes of every committed unit, by zone, from the manifests."""
    out: dict[str, dict[str, int]] = {}
    for zone in ZONES:
        root = Path(settings.zone_root(zone))
        units = {}
        for manifest in sorted(root.rglob("_manifest.json")):
            data = json.loads(manifest.read_text())
            unit = str(manifest.parent.relative_to(root))
            units[unit] = sum(int(f["bytes"]) for f in data["files"])
        out[zone] = units
    return out


def run(spec: dict[str, Any], marks: Marks, settings: Any) -> dict[str, Any]:
    from flows.answers import answer_all
    from flows.engines.duckdb_engine import DuckDBEngine
    from flows.lake import Lake
    from flows.questions import questions

    lake = Lake(settings)
    result: dict[str, Any] = {"zones": zone_bytes(settings)}

    # Timings: a fresh connection, the views, the ten questions cold, then warm repetitions.
    with marks.stage("duckdb: register the consumer views"):
        engine = DuckDBEngine(lake)
        engine.register_consumer()
    with marks.stage("duckdb: ten questions, cold"):
        t0 = time.perf_counter()
        answers = answer_all(engine)
        cold = time.perf_counter() - t0
    per_question: dict[int, list[float]] = {q.id: [] for q in questions()}
    totals = []
    with marks.stage("duckdb: ten questions, warm repetitions"):
        for _ in range(int(spec.get("repeat", 5))):
            t_all = time.perf_counter()
            for q in questions():
                t0 = time.perf_counter()
                answer_all(engine, (q,))
                per_question[q.id].append(time.perf_counter() - t0)
            totals.append(time.perf_counter() - t_all)
    result["duckdb"] = {
        "cold_s": cold,
        "warm_s": totals,
        "per_question_warm_s": {str(k): statistics.median(v) for k, v in per_question.items()},
        "answers": [{"id": a.id, "answer": a.answer, "rows": a.rows} for a in answers],
    }

    # What DuckDB actually read, from its profiler, one question at a time.
    prof = Path(spec["work"]) / "duckdb-profile.json"
    engine.con.execute("PRAGMA enable_profiling='json'")
    engine.con.execute(f"SET profiling_output='{prof}'")
    duck_bytes = {}
    for q in questions():
        engine.query(q.sql)
        duck_bytes[str(q.id)] = json.loads(prof.read_text()).get("io", {}).get("total_bytes_read")
    engine.con.execute("PRAGMA disable_profiling")
    engine.close()

    # The estimate from the Parquet footers.
    with marks.stage("scan estimates from Parquet metadata"):
        tables = {t: [file_meta(p) for p in lake.committed_files("consumer", t)] for t in CONSUMER_TABLES}
        schema = {}
        for name, files in tables.items():
            arrow = pq.read_schema(files[0].path) if files else None
            cols = {f.name: "VARCHAR" for f in arrow} if arrow is not None else {}
            for f in files[:1]:
                cols.update({k: "VARCHAR" for k in f.partition})
            schema[name] = cols
        scans = {}
        for q in questions():
            scans[str(q.id)] = analyse_question(q.sql, tables, schema) | {
                "duckdb_bytes_read": duck_bytes.get(str(q.id)),
                "slug": q.slug,
            }
    result["questions"] = scans
    result["consumer_files"] = {t: len(f) for t, f in tables.items()}
    result["publico_alvo_layout"] = layout(tables[PUBLICO_ALVO])
    return result


def layout(files: list[FileMeta]) -> dict[str, Any]:
    """Where a table's bytes are: compressed bytes per column, footers, files, rows and row groups."""
    columns: dict[str, int] = {}
    rows = groups = 0
    for f in files:
        for rg in f.row_groups:
            groups += 1
            rows += rg.num_rows
            for name, c in rg.columns.items():
                columns[name] = columns.get(name, 0) + int(c["bytes"])
    return {
        "files": len(files),
        "row_groups": groups,
        "rows": rows,
        "footer_bytes": sum(f.footer_bytes for f in files),
        "column_bytes": dict(sorted(columns.items(), key=lambda kv: -kv[1])),
    }
