"""What every target's row is made of: the targets' wording, a row and its verdict, and the rule that a
target is met or not met only when every repetition agrees (inconclusive otherwise)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final, Literal

REAL_SIZE = 368_210
LARGE = 2_000_000
EXTRACT_SIZES = (100_000, 500_000, 2_000_000)
TARGETS = {
    "run_speed": "`vamosjuntos run` (ephemeral API, the default) ≥ 1.5× faster than the original at 368,210",
    "run_memory": "`vamosjuntos run` peak memory (process tree) ≤ the original way's at 368,210",
    "run_server": "the same against a running Prefect server (`prefect server start`)",
    "run_warm": "the same against running Prefect and Spark servers (`vamosjuntos spark-server`, opt-in), "
    "the Spark server's memory counted",
    "large_speed": "`vamosjuntos run` at 2,000,000 documents ≥ 3× faster than the original way",
    "large_memory": "`vamosjuntos run` at 2,000,000 documents ≤ ⅓ of the original way's peak memory",
    "extract_ratio": "extraction ≥ 0.8× the bare drain at 100,000, 500,000 and 2,000,000",
    "extract_flat": "extraction memory flat from the smallest to the largest size (≤ 1.25×)",
    "ibge_step": "IBGE dimensions in one Spark application, ≤ 1.5 s",
    "spark_apps": "a whole run starts at most 3 Spark applications",
    "pnadc_marginal": "`pnadc_to_processing` marginal cost ≤ 8 µs per document",
    "overlap": "local mode: the Spark JVM starts while MongoDB streams (the run then waits ≤ 0.5 s for it)",
    "prefect_ephemeral": "Prefect overhead ≤ 5 s over the steps called directly (ephemeral API)",
    "prefect_server": "Prefect overhead ≤ 5 s against a running Prefect server",
    "scaling": "scaling table to 2,000,000 with the original way beside ours at each size, and its plot",
    "memory_pss": "memory as the process tree's PSS, the MongoDB stand-in reported apart",
    "consumer_share": "consumer bytes ≤ 2% of raw (issue 8)",
    "questions": "all 10 questions < 1 s together on DuckDB, cold (issue 8)",
}

Row = dict[str, Any]
# The verdicts a row can carry, spelled once: rows.VERDICT_CELLS says how each reads in the report.
MET: Final = "met"
NOT_MET: Final = "not met"
NOT_MEASURED: Final = "not measured"
INCONCLUSIVE: Final = "inconclusive"
Verdict = bool | None | Literal["inconclusive"]  # INCONCLUSIVE


def row_for(key: str, measured: str, ok: Verdict, reason: str = "") -> Row:
    """`ok`: True met, False not met, None not measured, or INCONCLUSIVE."""
    verdict = INCONCLUSIVE if ok == INCONCLUSIVE else NOT_MEASURED if ok is None else MET if ok else NOT_MET
    return {"key": key, "target": TARGETS[key], "measured": measured, "verdict": verdict, "reason": reason}


def agreed(s: dict[str, float], passes: Callable[[float], bool]) -> Verdict:
    """Met, or not met, when every repetition says so (`passes` grows or falls with the value, so its
    lowest and highest decide); inconclusive when they disagree; not measured without a value."""
    if not s.get("n") or any(math.isnan(s[k]) for k in ("low", "high")):
        return None
    low, high = passes(s["low"]), passes(s["high"])
    return low if low == high else INCONCLUSIVE


def disagree(s: dict[str, float], fmt: Callable[[float], str], varied: str = "this machine's speed") -> str:
    """Why a row is inconclusive; `fmt` with a digit more than the table's, so the range shows the split."""
    return (
        f"its {s['n']} repetitions fall on both sides of the target ({fmt(s['low'])} to {fmt(s['high'])}): "
        f"{varied} varied more than the margin"
    )


# Finer than the report's tables: an inconclusive range near the target shows which side each end is on.
def times(x: float) -> str:
    return f"{x:.3f}×"


def fine_secs(x: float) -> str:
    return f"{x:,.3f} s"


def sizes_text(sizes: list[int]) -> str:
    return ", ".join(f"{s:,}" for s in sizes)
