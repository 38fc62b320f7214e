"""The report people look at: the ten answers, the rows behind them, what each zone holds, and charts.

One self-contained HTML file (inline CSS and SVG drawn here, no script, no network: its Content-Security-
Policy forbids loading anything), stored in the lake as consumer `_reports/latest.html`. The chart numbers
come from SQL on the consumer tables, run by the same engine as the answers (DuckDB locally, Athena in the
cloud).
"""

from __future__ import annotations

import math
import os
import tempfile
import uuid
from dataclasses import dataclass
from decimal import Decimal
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from flows import __version__
from flows.errors import LakeError
from flows.lake import Lake, utcnow
from flows.questions import questions
from flows.summary import gate_report_name, zone_counts

REPORT = "_reports/latest.html"

# Average income and schooling of the target public per state and per region. The states and regions come
# from the IBGE dimensions (LEFT JOIN: one without people still shows, as "no data").
CHART_SQL: dict[str, str] = {
    "by_state": """-- chart: average income and schooling of the target public by state
SELECT
    u.uf_sigla,
    u.uf_nome,
    u.regiao_sigla,
    u.regiao_nome,
    avg(p.renda) AS avg_renda,
    avg(p.anosesco) AS avg_anosesco,
    count(p.renda) AS with_renda,
    count(p.anosesco) AS with_anosesco,
    count(p.uf_sigla) AS people
FROM ufs AS u
LEFT JOIN publico_alvo AS p ON p.uf_sigla = u.uf_sigla
GROUP BY u.uf_sigla, u.uf_nome, u.regiao_sigla, u.regiao_nome
ORDER BY u.uf_sigla""",
    "by_region": """-- chart: average income and schooling of the target public by region
SELECT
    r.regiao_sigla,
    r.regiao_nome,
    avg(p.renda) AS avg_renda,
    avg(p.anosesco) AS avg_anosesco,
    count(p.renda) AS with_renda,
    count(p.anosesco) AS with_anosesco,
    count(p.regiao_sigla) AS people
FROM regioes AS r
LEFT JOIN publico_alvo AS p ON p.regiao_sigla = r.regiao_sigla
GROUP BY r.regiao_sigla, r.regiao_nome
ORDER BY r.regiao_sigla""",
}

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
REGION_COLORS = {"N": "#009E73", "NE": "#E69F00", "SE": "#0072B2", "S": "#CC79A7", "CO": "#D55E00"}
OTHER_COLOR = "#7F7F7F"


class Engine(Protocol):
    def query(self, athena_sql: str) -> tuple[list[str], list[tuple[Any, ...]]]: ...


# --- data ------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def chart_data(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Run the chart SQL on the consumer tables; rows as dicts."""
    out = {}
    for name, sql in CHART_SQL.items():
        columns, rows = engine.query(sql)
        out[name] = [dict(zip(columns, (_plain(v) for v in row), strict=True)) for row in rows]
    return out


def national_average(rows: list[dict[str, Any]], value: str, weight: str) -> float | None:
    """The average over everyone, from per-group averages weighted by the values they averaged."""
    total = sum(r[weight] for r in rows if r[value] is not None)
    if not total:
        return None
    return sum(r[value] * r[weight] for r in rows if r[value] is not None) / total


def rows_note(sql: str) -> str:
    """The `-- rows:` comment of a question file, with its continuation lines (those starting lowercase)."""
    comments = [line[2:].strip() for line in sql.splitlines() if line.startswith("--")]
    for i, text in enumerate(comments):
        if text.lower().startswith("rows:"):
            note = [text[len("rows:") :].strip()]
            for more in comments[i + 1 :]:
                if not more[:1].islower():
                    break
                note.append(more)
            return " ".join(note)
    return ""


def unit_of(question: str) -> str:
    q = question.lower()
    if "income" in q:
        return "R$"
    if "schooling" in q:
        return "years"
    return ""


def fmt_number(value: float | None, digits: int = 2) -> str:
    return "no data" if value is None else f"{value:,.{digits}f}"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{n} B"


def fmt_ms(ms: int | None) -> str:
    if ms is None:
        return "n/a"
    return f"{ms:,} ms" if ms < 10_000 else f"{ms / 1000:,.1f} s"


# --- charts ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bar:
    key: str
    label: str
    value: float | None
    color: str
    note: str = ""


def _nice_step(top: float, ticks: int = 4) -> float:
    raw = top / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * magnitude >= raw:
            return m * magnitude
    return 10 * magnitude


def bar_chart(
    chart_id: str,
    bars: list[Bar],
    *,
    label: str,
    digits: int = 2,
    reference: tuple[str, float | None] | None = None,
    width: int = 540,
    label_width: int = 150,
) -> Markup:
    """A horizontal bar chart as inline SVG. Each bar is a `rect.bar` with `data-key`/`data-value`."""
    row, bar_h, top, axis = 20, 14, 22 if reference else 6, 24
    value_width = 72
    plot = width - label_width - value_width
    values = [b.value for b in bars if b.value is not None]
    ref_value = reference[1] if reference else None
    peak = max([*values, ref_value or 0, 0])
    step = _nice_step(peak) if peak > 0 else 1.0
    axis_max = step * math.ceil(peak / step) if peak > 0 else 1.0

    def x(v: float) -> float:
        return label_width + plot * (v / axis_max)

    height = top + row * len(bars) + axis
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
    ]
    n_ticks = round(axis_max / step)
    for i in range(n_ticks + 1):
        v = step * i
        gx = x(v)
        parts.append(
            f'<line class="grid" x1="{gx:.1f}" y1="{top - 4}" x2="{gx:.1f}" y2="{height - axis + 2}"/>'
        )
        parts.append(
            f'<text class="tick" x="{gx:.1f}" y="{height - 8}" text-anchor="middle">{_tick(v, step)}</text>'
        )
    for i, b in enumerate(bars):
        y = top + i * row
        cy = y + bar_h / 2 + 4
        tip = f"{b.label}: {fmt_number(b.value, digits)}" + (f" ({b.note})" if b.note else "")
        parts.append(
            f'<text class="label" x="{label_width - 6}" y="{cy:.1f}" text-anchor="end">'
            f"{escape(b.label)}</text>"
        )
        if b.value is None:
            parts.append(f'<text class="nodata" x="{label_width + 4}" y="{cy:.1f}">no data</text>')
            continue
        w = max(x(b.value) - label_width, 0.5)
        parts.append(
            f'<rect class="bar" data-key="{escape(b.key)}" data-value="{b.value!r}" x="{label_width}" '
            f'y="{y}" width="{w:.2f}" height="{bar_h}" rx="2" fill="{b.color}">'
            f"<title>{escape(tip)}</title></rect>"
        )
        parts.append(
            f'<text class="value" x="{label_width + w + 4:.1f}" y="{cy:.1f}">'
            f"{fmt_number(b.value, digits)}</text>"
        )
    if reference and ref_value is not None:
        rx = x(ref_value)
        parts.append(
            f'<line class="reference" x1="{rx:.1f}" y1="{top - 6}" x2="{rx:.1f}" y2="{height - axis + 2}"/>'
        )
        anchor = "end" if rx > label_width + plot * 0.6 else "start"
        dx = -4 if anchor == "end" else 4
        parts.append(
            f'<text class="reference-label" x="{rx + dx:.1f}" y="{top - 10}" text-anchor="{anchor}">'
            f"{escape(reference[0])}: {fmt_number(ref_value, digits)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _tick(v: float, step: float) -> str:
    if v == 0:
        return "0"
    if step >= 1000:
        return f"{v / 1000:,.{0 if step % 1000 == 0 else 1}f}k"
    return f"{v:,.0f}" if float(step).is_integer() else f"{v:,.1f}"


def _sorted(bars: list[Bar]) -> list[Bar]:
    return sorted(bars, key=lambda b: (b.value is None, -(b.value or 0), b.label))


def charts(data: dict[str, list[dict[str, Any]]]) -> dict[str, Markup]:
    states, regions = data["by_state"], data["by_region"]
    avg_renda = national_average(states, "avg_renda", "with_renda")
    avg_anos = national_average(states, "avg_anosesco", "with_anosesco")

    def bars(rows: list[dict[str, Any]], level: str, value: str, weight: str) -> list[Bar]:
        """One bar per state (level "uf") or region (level "regiao"), coloured by its region."""
        return _sorted(
            [
                Bar(
                    r[f"{level}_sigla"],
                    r[f"{level}_nome"],
                    r[value],
                    REGION_COLORS.get(r["regiao_sigla"], OTHER_COLOR),
                    ", ".join(
                        ([r["regiao_nome"]] if level == "uf" else []) + [f"{r[weight]:,} people with a value"]
                    ),
                )
                for r in rows
            ]
        )

    return {
        "income_state": bar_chart(
            "income-by-state",
            bars(states, "uf", "avg_renda", "with_renda"),
            label="Average monthly income (R$) of the target public by state",
            reference=("Brazil", avg_renda),
        ),
        "schooling_state": bar_chart(
            "schooling-by-state",
            bars(states, "uf", "avg_anosesco", "with_anosesco"),
            label="Average years of schooling of the target public by state",
            reference=("Brazil", avg_anos),
        ),
        "income_region": bar_chart(
            "income-by-region",
            bars(regions, "regiao", "avg_renda", "with_renda"),
            label="Average monthly income (R$) of the target public by region",
            reference=("Brazil", avg_renda),
        ),
        "schooling_region": bar_chart(
            "schooling-by-region",
            bars(regions, "regiao", "avg_anosesco", "with_anosesco"),
            label="Average years of schooling of the target public by region",
            reference=("Brazil", avg_anos),
        ),
    }


# --- the page --------------------------------------------------------------------------------
def context(
    lake: Lake,
    answers: list[dict[str, Any]],
    queries: list[dict[str, Any]],
    data: dict[str, list[dict[str, Any]]],
    run: dict[str, Any],
) -> dict[str, Any]:
    """Everything the template shows, gathered from the answers, the chart data and the lake's manifests."""
    consumer = lake.manifest("consumer", "publico_alvo") or {}
    date = consumer.get("ingestion_date")
    counts = zone_counts(lake, date) if date else []
    gate = lake.read_json("processing", gate_report_name(date)) if date else None
    by_id = {q.id: q for q in questions()}
    stats = {q["id"]: q for q in queries}
    cards = []
    for a in answers:
        q = by_id[a["id"]]
        value = a["answer"]
        cards.append(
            {
                **a,
                "unit": unit_of(a["question"]) if isinstance(value, int | float) else "",
                "shown": value if isinstance(value, str) else fmt_number(value),
                "no_data": value is None,
                "rows_note": rows_note(q.sql),
                "sql": q.sql,
                "slug": q.slug,
                "cost": _cost(stats.get(a["id"], {})),
            }
        )
    count_of = {(c["zone"], c["table"]): c["records"] for c in counts}
    raw, processed, quarantined = (
        count_of.get(("raw", "pnadc")),
        count_of.get(("processing", "pnadc")),
        count_of.get(("processing", "quarantine pnadc")),
    )
    reconciled = None if None in (raw, processed, quarantined) else raw == processed + quarantined  # type: ignore[operator]
    flow = [
        Bar("raw", "raw pnadc", raw, "#56B4E9", "documents as received"),
        Bar("processing", "processing pnadc", processed, "#0072B2", "typed and valid"),
        Bar("quarantine", "quarantine pnadc", quarantined, "#D55E00", "rejected, with the reason"),
        Bar(
            "consumer",
            "consumer publico_alvo",
            count_of.get(("consumer", "publico_alvo")),
            "#009E73",
            "women aged 20 to 40",
        ),
    ]
    bytes_total = [q.get("bytes_scanned") for q in queries]
    return {
        "generated_at": run.get("generated_at") or utcnow(),
        "engine": run.get("engine", "duckdb"),
        "flow_run_id": run.get("flow_run_id") or "",
        "version": __version__,
        "ingestion_date": date,
        "processing_dates": consumer.get("processing_dates") or ([date] if date else []),
        "consumer_runs": {
            t: (lake.manifest("consumer", t) or {}).get("run_id")
            for t in ("publico_alvo", "regioes", "ufs", "mesorregioes", "microrregioes")
        },
        "cards": cards,
        "counts": [{**c, "shown": "-" if c["records"] is None else f"{c['records']:,}"} for c in counts],
        "reconciled": reconciled,
        "gate": gate,
        "gate_failed": [c for c in (gate or {}).get("checks", []) if not c.get("passed")],
        "charts": charts(data),
        "flow_chart": bar_chart("records-by-zone", flow, label="PNAD records per zone", digits=0),
        "regions": [
            {
                "sigla": r["regiao_sigla"],
                "nome": r["regiao_nome"],
                "color": REGION_COLORS.get(r["regiao_sigla"], OTHER_COLOR),
            }
            for r in data["by_region"]
        ],
        "by_state": data["by_state"],
        "bytes_total": fmt_bytes(sum(b for b in bytes_total if b is not None))
        if any(b is not None for b in bytes_total)
        else "n/a",
    }


def _cost(q: dict[str, Any]) -> dict[str, Any]:
    return {
        "query_id": q.get("query_id"),
        "bytes": fmt_bytes(q.get("bytes_scanned")),
        "engine_time": fmt_ms(q.get("engine_ms")),
        "total_time": fmt_ms(q.get("total_ms")),
    }


def _environment() -> Environment:
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = fmt_number
    return env


def render(ctx: dict[str, Any]) -> str:
    source = resources.files("flows").joinpath("templates/report.html.j2").read_text(encoding="utf-8")
    return _environment().from_string(source).render(**ctx)


# --- storing and finding it ------------------------------------------------------------------
def write(lake: Lake, html: str, name: str = REPORT) -> str:
    """Store the report in the consumer zone, replacing the previous one atomically; returns its path."""
    path = lake.path("consumer", name)
    data = html.encode("utf-8")
    fs = lake.fs("consumer")
    if path.startswith("s3://"):
        fs.pipe_file(path, data, ContentType="text/html; charset=utf-8")  # one PUT: old or new, never half
        return path
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def build(
    lake: Lake,
    answers: list[dict[str, Any]],
    queries: list[dict[str, Any]],
    data: dict[str, list[dict[str, Any]]],
    run: dict[str, Any],
) -> str:
    """Render the report from this run's results and store it; returns where."""
    return write(lake, render(context(lake, answers, queries, data, run)))


def location(lake: Lake) -> str:
    return lake.path("consumer", REPORT)


def existing_location(lake: Lake) -> str:
    """Where the latest report is; a clear error if no run has written one yet."""
    path = location(lake)
    if not lake.fs("consumer").exists(path):
        raise LakeError(f"No report at {path}: run `vamosjuntos run` (or the answer flow) first.")
    return path


def local_copy(lake: Lake) -> Path:
    """A local file with the latest report: the lake's own file locally, a downloaded copy from S3."""
    path = existing_location(lake)
    fs = lake.fs("consumer")
    if "://" not in path:
        return Path(path)
    target = Path(tempfile.gettempdir()) / "vamosjuntos-report.html"
    target.write_bytes(fs.cat_file(path))
    return target


# --- Prefect artifacts -----------------------------------------------------------------------
def answers_with_cost(answers: list[dict[str, Any]], queries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The answers table artifact: each answer with its query's bytes scanned and run time."""
    cost = {q["id"]: q for q in queries}
    return [
        {
            **a,
            "bytes_scanned": cost.get(a["id"], {}).get("bytes_scanned"),
            "engine_ms": cost.get(a["id"], {}).get("engine_ms"),
            "total_ms": cost.get(a["id"], {}).get("total_ms"),
            "query_id": cost.get(a["id"], {}).get("query_id"),
        }
        for a in answers
    ]


# Characters that make Markdown (or the HTML it may carry) of data: a state's name is data, and an artifact
# must show it as text. < > & become entities; the rest are backslash-escaped (CommonMark allows it for any
# ASCII punctuation).
_MD_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
_MD_ESCAPED = set("\\`*_[]{}()#+-.!|~")


def _md(text: str) -> str:
    """Data as literal text in a Markdown table cell, on one line."""
    return "".join(
        _MD_ENTITIES.get(c) or (f"\\{c}" if c in _MD_ESCAPED else " " if c in "\r\n" else c) for c in text
    )


def markdown_summary(answers: list[dict[str, Any]], queries: list[dict[str, Any]], report_path: str) -> str:
    """The answers summary artifact: a readable table, what the queries cost, where the report is."""
    cost = {q["id"]: q for q in queries}
    lines = [
        "| # | question | answer | rows | bytes scanned | time |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for a in answers:
        value = a["answer"]
        shown = value if isinstance(value, str) else fmt_number(value)
        unit = unit_of(a["question"]) if isinstance(value, int | float) else ""
        shown = f"R$ {shown}" if unit == "R$" else f"{shown} years" if unit == "years" else shown
        q = cost.get(a["id"], {})
        lines.append(
            f"| {a['id']} | {_md(a['question'])} | **{_md(str(shown))}** | {a['rows']:,} | "
            f"{fmt_bytes(q.get('bytes_scanned'))} | {fmt_ms(q.get('total_ms'))} |"
        )
    scanned = [q.get("bytes_scanned") for q in queries if q.get("bytes_scanned") is not None]
    total = fmt_bytes(sum(scanned)) if scanned else "n/a"
    lines += ["", f"Bytes scanned in total: {total}. Report: {_md(report_path)}"]
    return "\n".join(lines)
