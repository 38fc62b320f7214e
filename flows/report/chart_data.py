"""The numbers behind the report's charts: the chart queries (`flows/sql/charts/*.sql`) on the consumer.

Run by the same engine as the answers (DuckDB locally, Athena in the cloud), so the charts and the answers
come from the same data.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from flows.engines.base import QueryEngine
from flows.questions import chart_queries

ChartData = dict[str, list[dict[str, Any]]]  # chart query name -> its rows as dicts


def chart_sqls() -> list[str]:
    """The chart queries' SQL, in the order `chart_data` runs them (for an engine to start them ahead)."""
    return [c.sql for c in chart_queries()]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def chart_data(engine: QueryEngine) -> ChartData:
    """Run each chart query; its rows as dicts, by the query's name (`by_state`, `by_region`)."""
    out = {}
    for chart in chart_queries():
        columns, rows = engine.query(chart.sql)
        out[chart.name] = [dict(zip(columns, (_plain(v) for v in row), strict=True)) for row in rows]
    return out


def national_average(rows: list[dict[str, Any]], value: str, weight: str) -> float | None:
    """The average over everyone, from per-group averages weighted by the values they averaged."""
    total = sum(r[weight] for r in rows if r[value] is not None)
    if not total:
        return None
    return sum(r[value] * r[weight] for r in rows if r[value] is not None) / total
