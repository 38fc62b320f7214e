"""The report page: what it shows (gathered from the run's answers, the chart data and the lake's manifests),
rendered with `flows/templates/report.html.j2` (`flows/report/store.py` stores it in the lake).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from jinja2 import Environment, StrictUndefined

from flows import __version__, layout
from flows.errors import DamagedLakeFile
from flows.lake import Lake, utcnow
from flows.questions import questions
from flows.report.chart_data import ChartData
from flows.report.charts import charts, records_chart, region_color
from flows.report.formats import fmt_bytes, fmt_ms, show
from flows.summary import zone_counts

PNADC_QUARANTINE = f"{layout.QUARANTINE} {layout.quarantine_table(layout.PNADC)}"  # as zone_counts names it


def _cost(q: dict[str, Any]) -> dict[str, Any]:
    return {
        "query_id": q.get("query_id"),
        "bytes": fmt_bytes(q.get("bytes_scanned")),
        "engine_time": fmt_ms(q.get("engine_ms")),
        "total_time": fmt_ms(q.get("total_ms")),
    }


def _cards(answers: list[dict[str, Any]], queries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One card per answer: its value with its unit, the rows behind it, its SQL and what the query cost."""
    by_id = {q.id: q for q in questions()}
    stats = {q["id"]: q for q in queries}
    cards = []
    for a in answers:
        q = by_id[a["id"]]
        cards.append(
            {
                **a,
                "shown": show(a),
                "rows_note": q.rows_note,
                "sql": q.sql,
                "slug": q.slug,
                "cost": _cost(stats.get(a["id"], {})),
            }
        )
    return cards


def context(
    lake: Lake,
    answers: list[dict[str, Any]],
    queries: list[dict[str, Any]],
    data: ChartData,
    run: dict[str, Any],
    counts: list[dict[str, Any]] | None = None,
    gate: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the template shows, gathered from the answers, the chart data and the lake's manifests.

    `counts` and `gate` come from the run that just transformed the date; left out, they are read back.
    """
    consumer = lake.manifest("consumer", layout.consumer(layout.PUBLICO_ALVO)) or {}
    date = consumer.get("ingestion_date")
    if counts is None:
        counts = zone_counts(lake, date) if date else []
    gate_unreadable = None
    if gate is None and date:
        gate, gate_unreadable = _gate_report(lake, date)
    count_of = {(c["zone"], c["table"]): c["records"] for c in counts}
    raw, processed, quarantined = (
        count_of.get(("raw", layout.PNADC)),
        count_of.get(("processing", layout.PNADC)),
        count_of.get(("processing", PNADC_QUARANTINE)),
    )
    reconciled = None if None in (raw, processed, quarantined) else raw == processed + quarantined  # type: ignore[operator]
    scanned = [q["bytes_scanned"] for q in queries if q.get("bytes_scanned") is not None]
    return {
        "generated_at": run.get("generated_at") or utcnow(),
        "engine": run.get("engine", "duckdb"),
        "flow_run_id": run.get("flow_run_id") or "",
        "version": __version__,
        "ingestion_date": date,
        "processing_dates": consumer.get("processing_dates") or ([date] if date else []),
        "consumer_runs": {
            t: (lake.manifest("consumer", layout.consumer(t)) or {}).get("run_id")
            for t in layout.CONSUMER_TABLES
        },
        "cards": _cards(answers, queries),
        "counts": [{**c, "shown": "-" if c["records"] is None else f"{c['records']:,}"} for c in counts],
        "reconciled": reconciled,
        "gate": gate,
        "gate_unreadable": gate_unreadable,
        "gate_failed": [c for c in (gate or {}).get("checks", []) if not c.get("passed")],
        "charts": charts(data),
        "flow_chart": records_chart(
            raw, processed, quarantined, count_of.get(("consumer", layout.PUBLICO_ALVO))
        ),
        "regions": [
            {"sigla": r["regiao_sigla"], "nome": r["regiao_nome"], "color": region_color(r["regiao_sigla"])}
            for r in data["by_region"]
        ],
        "bytes_total": fmt_bytes(sum(scanned)) if scanned else "n/a",
    }


def _gate_report(lake: Lake, date: str) -> tuple[dict[str, Any] | None, str | None]:
    """The date's gate verdict read back, or why it cannot be: a report changed outside the pipeline is
    shown as unreadable, not fatal to the page (a rollback's republish renders it too)."""
    path = layout.gate_report(date)
    try:
        gate = lake.read_json("processing", path)
    except DamagedLakeFile as exc:
        return None, exc.briefly()
    if gate is None:
        return None, None
    checks = gate.get("checks")
    if not isinstance(checks, list) or not all(isinstance(c, dict) and c.keys() >= _SHOWN for c in checks):
        return (
            None,
            f"{lake.path('processing', path)} is damaged (not a list of checks as the gate writes it)",
        )
    return gate, None


# What the page shows of each check (services/quality_gate.py GateVerdict.as_report writes them)
_SHOWN = {"name", "passed", "observed", "expected"}


def render(ctx: dict[str, Any]) -> str:
    source = resources.files("flows").joinpath("templates/report.html.j2").read_text(encoding="utf-8")
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(source).render(**ctx)
