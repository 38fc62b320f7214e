"""Summaries as plain dicts (median, low, high, n) and the run selections every section uses."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from benchmarks.measure import Run, summarize

Stat = dict[str, float]
SLOWED = 1.5  # a speed probe this many times the run's fastest: the machine was slower for that contestant


def stat(values: list[float]) -> Stat:
    s = summarize([v for v in values if v is not None and not _nan(v)])
    return {"median": s.median, "low": s.low, "high": s.high, "n": s.n, "spread": s.spread}


def _nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def median(values: list[float]) -> float:
    return stat(values)["median"]


def paired(a: list[Run], b: list[Run], f: Callable[[Run, Run], float]) -> Stat:
    """f(run_a, run_b) over the repetitions both have: ratios measured side by side."""
    by_rep = {r.repetition: r for r in b}
    return stat([f(x, by_rep[x.repetition]) for x in a if x.repetition in by_rep])


def stage(runs: list[Run], name: str, attr: str = "seconds") -> Stat:
    return stat([getattr(s, attr) for r in runs if (s := r.stage(name)) is not None])


def spark(run: Run, step: str) -> dict[str, Any]:
    s = run.stage(step)
    return (s.info or {}).get("spark") or {} if s else {}


def walls(runs: list[Run]) -> Stat:
    return stat([r.wall_s for r in runs])


def peaks(runs: list[Run], attr: str = "peak_mem") -> Stat:
    return stat([getattr(r, attr) for r in runs])


def exponent(t1: float, t2: float, n1: int, n2: int) -> float:
    """Growth exponent between two sizes: 1 is linear, below 1 fixed costs still weigh."""
    if _nan(t1) or _nan(t2) or t1 <= 0 or t2 <= 0 or n1 == n2:
        return float("nan")
    return math.log(t2 / t1) / math.log(n2 / n1)


def slope(xs: list[int], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (NaN with fewer than two distinct xs, or a missing y)."""
    if len(set(xs)) < 2 or any(_nan(y) for y in ys):
        return float("nan")
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def probes(runs: list[dict[str, Any]]) -> list[tuple[str, int, int, float, float]]:
    """Each contestant's speed probe (benchmarks.machine, timed before it) as (label, size, repetition,
    seconds, multiple of the run's fastest): above SLOWED the machine was slower for that contestant.
    `runs`: the results' runs and failures, as saved."""
    found = [
        (r["label"], r["size"], r["repetition"], t)
        for r in runs
        if (t := (r.get("extra") or {}).get("speed_probe_s", r.get("speed_probe_s"))) is not None
    ]
    fastest = min((t for *_, t in found), default=0.0)
    return [(*key, t, t / fastest) for *key, t in found] if fastest > 0 else []
