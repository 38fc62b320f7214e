"""The bytes a question reads, estimated from its SQL and the files' Parquet footers, and Athena's price.

The SQL file (Athena's dialect) is parsed with sqlglot: per table scan, the columns it touches and the
conjuncts of its WHERE clause. Two estimates follow: partition pruning only (the Hive partitions the WHERE
clause can skip are skipped; every other file's footer and the touched columns' chunks are read), and
with row-group statistics (row groups whose min/max/null counts contradict a conjunct are skipped too, as
Athena (Trino) and DuckDB do). Athena bills the bytes read, rounded up to the megabyte, at least 10 MB
per query, at $5 per TB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import traverse_scope

from benchmarks.parquet_files import FileMeta

MB = 1024**2
TB = 1024**4
ATHENA_USD_PER_TB = 5.0
ATHENA_MIN_BYTES = 10 * MB


def athena_cost_usd(scanned: int) -> float:
    billed = max(math.ceil(scanned / MB) * MB, ATHENA_MIN_BYTES)
    return billed / TB * ATHENA_USD_PER_TB


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
