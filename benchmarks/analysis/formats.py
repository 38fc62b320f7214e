"""How numbers read in the report (also the template's filters)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

MB = 1024**2


def missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def mb(b: float | None) -> str:
    return "–" if missing(b) else f"{b / MB:,.0f} MB"


def human_bytes(b: float | None) -> str:
    if missing(b):
        return "–"
    for unit, scale in (("GB", 1024**3), ("MB", MB), ("kB", 1024)):
        if b >= scale:
            return f"{b / scale:,.1f} {unit}"
    return f"{b:,.0f} B"


def secs(s: float | None) -> str:
    if missing(s):
        return "–"
    return f"{s:,.2f} s" if abs(s) < 10 else f"{s:,.1f} s"


def rate(x: float | None) -> str:
    return "–" if missing(x) else f"{x:,.0f}"


def pct(x: float | None, digits: int = 0) -> str:
    return "–" if missing(x) else f"{x:.{digits}%}"


def num(x: float | None, digits: int = 2) -> str:
    return "–" if missing(x) else f"{x:,.{digits}f}"


def count(x: int | None) -> str:
    return "–" if missing(x) else f"{x:,}"


def cell(s: dict[str, float], fmt: Callable[[Any], str] | str = secs) -> str:
    """A summary as 'median (min–max)', or the median alone when there was one value."""
    fmt = FORMATS[fmt] if isinstance(fmt, str) else fmt
    if not s or s["n"] == 0:
        return "–"
    if s["n"] == 1 or s["low"] == s["high"]:
        return fmt(s["median"])
    # "to" where a bound is negative: "-8.86 s–-2.0 s" reads as a typo
    between = " to " if s["low"] < 0 or s["high"] < 0 else "–"
    return f"{fmt(s['median'])} ({fmt(s['low'])}{between}{fmt(s['high'])})"


def ratio(s: dict[str, float], digits: int = 2) -> str:
    if not s or s["n"] == 0:
        return "–"
    core = f"{s['median']:.{digits}f}×"
    return core if s["n"] == 1 else f"{core} ({s['low']:.{digits}f}–{s['high']:.{digits}f})"


FORMATS: dict[str, Callable[[Any], str]] = {
    "mb": mb,
    "bytes": human_bytes,
    "secs": secs,
    "rate": rate,
    "pct": pct,
    "num": num,
    "count": count,
}
