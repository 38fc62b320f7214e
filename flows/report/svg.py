"""Horizontal bar charts drawn as inline SVG (no script, nothing external: the page's policy forbids both).

Each bar is a `rect.bar` with `data-key`/`data-value`, so a test (or a reader's tools) can read the numbers
the bars were drawn from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from flows.questions import Unit
from flows.report.formats import fmt_number, show_answer


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
    unit: Unit | None = None,
    reference: tuple[str, float | None] | None = None,
    width: int = 540,
    label_width: int = 150,
) -> Markup:
    """A horizontal bar chart as inline SVG, with a dashed `reference` line (e.g. the national average).

    Bars are labelled with their numbers; their tooltips and the reference line say the `unit` too.
    """
    row, bar_h, top, axis = 20, 14, 22 if reference else 6, 24
    value_width = 72
    plot = width - label_width - value_width
    values = [b.value for b in bars if b.value is not None]
    ref_value = reference[1] if reference else None
    peak = max([*values, ref_value or 0, 0])
    step = _nice_step(peak) if peak > 0 else 1.0
    axis_max = step * math.ceil(peak / step) if peak > 0 else 1.0

    def shown(v: float | None) -> str:
        """A value with its unit, for the tooltips and the reference line."""
        return fmt_number(v, digits) if unit is None else str(show_answer(v, unit, digits))

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
        tip = f"{b.label}: {shown(b.value)}" + (f" ({b.note})" if b.note else "")
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
            f"{escape(reference[0])}: {escape(shown(ref_value))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _tick(v: float, step: float) -> str:
    if v == 0:
        return "0"
    if step >= 1000:
        return f"{v / 1000:,.{0 if step % 1000 == 0 else 1}f}k"
    return f"{v:,.0f}" if float(step).is_integer() else f"{v:,.1f}"
