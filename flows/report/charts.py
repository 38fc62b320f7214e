"""The report's charts: average income and schooling by state and by region, and PNAD records per zone."""

from __future__ import annotations

from typing import Any, NamedTuple

from markupsafe import Markup

from flows.questions import chart_queries
from flows.report.chart_data import ChartData, national_average
from flows.report.svg import Bar, bar_chart

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
REGION_COLORS = {"N": "#009E73", "NE": "#E69F00", "SE": "#0072B2", "S": "#CC79A7", "CO": "#D55E00"}
OTHER_COLOR = "#7F7F7F"


class Chart(NamedTuple):
    key: str  # the template's name for it
    chart_id: str  # the svg's id
    query: str  # the chart query (flows/sql/charts/<query>.sql) whose rows it draws
    level: str  # "uf" (one bar per state) or "regiao" (per region)
    value: str  # the averaged column
    weight: str  # how many people that average is over
    label: str


CHARTS = (
    Chart("income_state", "income-by-state", "by_state", "uf", "avg_renda", "with_renda",
          "Average monthly income ({unit}) of the target public by state"),
    Chart("schooling_state", "schooling-by-state", "by_state", "uf", "avg_anosesco", "with_anosesco",
          "Average {unit} of schooling of the target public by state"),
    Chart("income_region", "income-by-region", "by_region", "regiao", "avg_renda", "with_renda",
          "Average monthly income ({unit}) of the target public by region"),
    Chart("schooling_region", "schooling-by-region", "by_region", "regiao", "avg_anosesco", "with_anosesco",
          "Average {unit} of schooling of the target public by region"),
)  # fmt: skip


def region_color(regiao_sigla: str) -> str:
    return REGION_COLORS.get(regiao_sigla, OTHER_COLOR)


def _sorted(bars: list[Bar]) -> list[Bar]:
    return sorted(bars, key=lambda b: (b.value is None, -(b.value or 0), b.label))


def _bar(r: dict[str, Any], chart: Chart) -> Bar:
    """A state's or region's bar, coloured by its region; the tooltip says how many people it averages."""
    note = [r["regiao_nome"]] if chart.level == "uf" else []
    note.append(f"{r[chart.weight]:,} people with a value")
    level = chart.level
    color = region_color(r["regiao_sigla"])
    return Bar(r[f"{level}_sigla"], r[f"{level}_nome"], r[chart.value], color, ", ".join(note))


def charts(data: ChartData) -> dict[str, Markup]:
    """The four charts by state and region, each with the national average (over every state) as reference."""
    units = {c.name: c.units for c in chart_queries()}
    states = data["by_state"]
    out = {}
    for chart in CHARTS:
        unit = units[chart.query][chart.value]
        out[chart.key] = bar_chart(
            chart.chart_id,
            _sorted([_bar(r, chart) for r in data[chart.query]]),
            label=chart.label.format(unit=unit),
            unit=unit,
            reference=("Brazil", national_average(states, chart.value, chart.weight)),
        )
    return out


def records_chart(
    raw: int | None, processed: int | None, quarantined: int | None, consumer: int | None
) -> Markup:
    """PNAD records from raw to consumer: what was received, kept, rejected, and is the target public."""
    flow = [
        Bar("raw", "raw pnadc", raw, "#56B4E9", "documents as received"),
        Bar("processing", "processing pnadc", processed, "#0072B2", "typed and valid"),
        Bar("quarantine", "quarantine pnadc", quarantined, "#D55E00", "rejected, with the reason"),
        Bar("consumer", "consumer publico_alvo", consumer, "#009E73", "women aged 20 to 40"),
    ]
    return bar_chart("records-by-zone", flow, label="PNAD records per zone", digits=0)
