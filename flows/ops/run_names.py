"""Flow run names that say what a run does (`lakehouse 2026-11-29`), for the dashboard's run lists.

Prefect calls these when a run starts (the `flow_run_name` of each flow); they read the run's parameters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from prefect.runtime import flow_run

from flows.dates import ingestion_date


def dated(flow_name: str) -> Callable[[], str]:
    """`<flow> <ingestion date>`: the date the run works on (today, UTC, when the parameter is left empty)."""

    def name() -> str:
        return dated_name(flow_name, flow_run.parameters.get("ingestion_date"))

    name.__name__ = f"{flow_name}_run_name"
    return name


def dated_name(flow_name: str, value: object) -> str:
    try:
        return f"{flow_name} {ingestion_date(value)}"  # type: ignore[arg-type]
    except Exception:  # a bad date fails the run with its own message; naming the run must not hide it
        return f"{flow_name} {value!r}"


def started(flow_name: str) -> Callable[[], str]:
    """`<flow> <start time, UTC>` for flows that work on what is committed; `<flow> <date>` when a trigger
    started the run for the commit of a date (its `ingestion_date` parameter)."""

    def name() -> str:
        if date := flow_run.parameters.get("ingestion_date"):
            return dated_name(flow_name, date)
        return f"{flow_name} {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"

    name.__name__ = f"{flow_name}_run_name"
    return name
