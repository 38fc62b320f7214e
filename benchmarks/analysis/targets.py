"""The targets (issue 13, and issue 8's storage and query targets), each judged from the analysis' numbers.

A row is met or not met only when the run measured what the target names (its size included); otherwise it
says "not measured" and what the run did measure. It is inconclusive when its repetitions fall on both sides
of the target, or its numbers cannot be a cost (a time that falls as the size grows): the machine's speed
varied more than the margin. A row that is not met, or inconclusive, carries the measured reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final, Literal

from benchmarks.analysis.formats import cell, mb, pct, ratio, secs

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
INCONCLUSIVE: Final = "inconclusive"
Verdict = bool | None | Literal["inconclusive"]


def _row(key: str, measured: str, ok: Verdict, reason: str = "") -> Row:
    if ok == INCONCLUSIVE:
        verdict = INCONCLUSIVE
    else:
        verdict = "not measured" if ok is None else ("met" if ok else "not met")
    return {"key": key, "target": TARGETS[key], "measured": measured, "verdict": verdict, "reason": reason}


def _agreed(s: dict[str, float], passes: Callable[[float], bool]) -> Verdict:
    """Met, or not met, when every repetition says so (`passes` grows or falls with the value, so its
    lowest and highest decide); inconclusive when they disagree; not measured without a value."""
    if not s.get("n") or any(math.isnan(s[k]) for k in ("low", "high")):
        return None
    low, high = passes(s["low"]), passes(s["high"])
    return low if low == high else INCONCLUSIVE


def _disagree(s: dict[str, float], fmt: Callable[[float], str], varied: str = "this machine's speed") -> str:
    """Why a row is inconclusive; `fmt` with a digit more than the table's, so the range shows the split."""
    return (
        f"its {s['n']} repetitions fall on both sides of the target ({fmt(s['low'])} to {fmt(s['high'])}): "
        f"{varied} varied more than the margin"
    )


def _times(x: float) -> str:
    return f"{x:.3f}×"


def _fine_secs(x: float) -> str:
    return f"{x:,.3f} s"


def _pct1(x: float) -> str:
    return f"{x:.1%}"


def _difference(s: dict[str, float]) -> str:
    """What the flow adds to the steps called directly, per repetition. A flow faster than the steps it runs
    in some repetitions and slower in others is within the machine's variation: its sign is unknown."""
    if s["n"] > 1 and s["low"] < 0 < s["high"]:
        return (
            f"the flow's time less the steps' called directly is {cell(s)}: faster in some repetitions and "
            "slower in others, within the machine's variation"
        )
    if s["median"] >= 0:
        return f"the flow adds {cell(s)} to the steps called directly"
    less = {"median": -s["median"], "low": -s["high"], "high": -s["low"], "n": s["n"]}
    return f"the flow takes {cell(less)} less than the steps called directly"


def _sizes(sizes: list[int]) -> str:
    return ", ".join(f"{s:,}" for s in sizes)


def _where(e: dict[str, Any]) -> str:
    parts = ", ".join(f"{s['name']} {secs(s['seconds'])} ({pct(s['share'])})" for s in e["largest_stages"])
    return f"our largest stages: {parts}"


def _memory_reason(e: dict[str, Any], f: dict[str, Any]) -> str:
    if f.get("spark_server_peak"):
        return (
            f"its process tree peaks at {mb(f['tree_peak'])} (its Python process {mb(f['python_peak'])}) and "
            f"the Spark server's JVM at {mb(f['spark_server_peak'])}, which keeps what it compiled "
            "and cached between runs"
        )
    return (
        f"`vamosjuntos run` peaks at {mb(f['peak'])} (its Python process {mb(f['python_peak'])}), the steps "
        f"called directly at {mb(e['ours_peak'])}: the rest is Prefect's (imports, its API server when "
        f"ephemeral); of the steps' peak the Python driver is {mb(e['ours_python_peak'])}, the Spark JVM "
        "holds the rest"
    )


def _vs_original(e: dict[str, Any], f: dict[str, Any]) -> tuple[Row, Row]:
    """(speed, memory) of one way of running the flow against the original way, at the end-to-end size."""
    at, real = e["size"], e["size"] == REAL_SIZE
    speed = f"{ratio(f['speedup'])} at {at:,} (original's time ÷ the flow's)"
    memory = f"{pct(f['memory_ratio']['median'])} of the original's ({mb(f['peak'])} vs {mb(e['orig_peak'])})"
    ok_speed = _agreed(f["speedup"], lambda x: x >= 1.5) if real else None
    ok_mem = _agreed(f["memory_ratio"], lambda x: x <= 1) if real else None
    why = f"{_where(e)}; {_difference(f['overhead'])}"
    if ok_speed == INCONCLUSIVE:
        why = f"{_disagree(f['speedup'], _times)}; {why}"
    mem_why = _memory_reason(e, f) if ok_mem is not None else ""
    if ok_mem == INCONCLUSIVE:
        mem_why = f"{_disagree(f['memory_ratio'], _pct1, 'the peaks')}; {mem_why}"
    return (
        _row("run_speed", speed, ok_speed, why if ok_speed in (False, INCONCLUSIVE) else ""),
        _row("run_memory", f"{memory} at {at:,}", ok_mem, mem_why if ok_mem in (False, INCONCLUSIVE) else ""),
    )


def _run(e: dict[str, Any] | None) -> list[Row]:
    rows = []
    if not e or not e["flow"]:
        rows += [
            _row(k, "`vamosjuntos run` was not timed in this run", None) for k in ("run_speed", "run_memory")
        ]
    else:
        rows += _vs_original(e, e["flow"])
    for key, flow, what in (
        ("run_server", "flow_server", "a running server"),
        ("run_warm", "flow_warm", "running Prefect and Spark servers"),
    ):
        if not e or not e[flow]:
            rows.append(_row(key, f"`vamosjuntos run` against {what} was not timed in this run", None))
            continue
        speed, memory = _vs_original(e, e[flow])
        verdicts = {speed["verdict"], memory["verdict"]}
        ok: Verdict = verdicts == {"met"}
        if "not measured" in verdicts:
            ok = None
        elif "not met" not in verdicts and INCONCLUSIVE in verdicts:
            ok = INCONCLUSIVE
        reason = "; ".join(
            f"{what}: {r['reason']}" for what, r in (("speed", speed), ("memory", memory)) if r["reason"]
        )
        rows.append(_row(key, f"{speed['measured']}; memory {memory['measured']}", ok, reason))
    return rows


def _drain_floor(ex: list[dict[str, Any]], budget_s: float) -> str:
    """What the bare drain alone takes at the large size (the extraction section), beside the time a 3×
    speed-up leaves the whole run: no run can read the collection faster than its drain."""
    by = {d["size"]: d for d in ex}
    rate = by[LARGE]["drain_rate"]["median"] if LARGE in by else None
    if not rate:
        return ""
    return (
        f"; the bare drain of the same cursor alone takes {secs(LARGE / rate)} (section 2), against "
        f"{secs(budget_s)} for the whole run at 3×"
    )


def _large(sc: dict[str, Any] | None, ex: list[dict[str, Any]] | None = None) -> list[Row]:
    """`vamosjuntos run` (ephemeral) at 2,000,000 against the original way there, or against how far the
    original got before it failed (its time and peak then are lower bounds of what it needs)."""
    keys = ("large_speed", "large_memory")
    row = {r["size"]: r for r in sc["per_size"]}.get(LARGE) if sc else None
    done = [r for r in (sc or {}).get("per_size", []) if r["orig_wall"] is not None]
    finished = ""
    if done:
        last = done[-1]
        peak = mb(last["orig_peak"])
        finished = f"; the original's peak at {last['size']:,}, the largest size it finished: {peak}"
    if row is None or row["flow_wall"] is None:
        why = "`vamosjuntos run` not timed at 2,000,000"
        if row is not None and row["speedup"] is not None:
            why += f" (the steps called directly: {row['speedup']:.2f}×, memory {pct(row['memory_ratio'])})"
        return [_row(k, why + finished, None) for k in keys]
    flow_wall, flow_peak = row["flow_wall"], row["flow_peak"]
    i = sc["sizes"].index(LARGE)  # type: ignore[index]
    top = sorted(sc["stages"], key=lambda r: -r["seconds"][i])[:3]  # type: ignore[index]
    steps = f"; the steps called directly take {secs(row['ours_wall'])}, the largest: " + ", ".join(
        f"{r['name']} {secs(r['seconds'][i])}" for r in top
    )
    if row["orig_wall"] is not None:
        speed, memory = row["orig_wall"] / flow_wall, flow_peak / row["orig_peak"]
        floor = _drain_floor(ex or [], row["orig_wall"] / 3)
        why_speed = f"`vamosjuntos run` {secs(flow_wall)}{steps}{floor}" if speed < 3 else ""
        return [
            _row(
                "large_speed",
                f"{speed:.2f}× ({secs(flow_wall)} vs {secs(row['orig_wall'])})",
                speed >= 3,
                why_speed,
            ),
            _row(
                "large_memory",
                f"{memory:.0%} ({mb(flow_peak)} vs {mb(row['orig_peak'])})",
                memory <= 1 / 3,
                _where_memory(row) if memory > 1 / 3 else "",
            ),
        ]
    fail = row["orig_failure"]
    if fail is None:
        return [_row(k, "the original way was not run at 2,000,000" + finished, None) for k in keys]
    # It failed: what it spent before failing is less than it needs, so a ratio against that is a floor.
    speed, memory = fail["wall"] / flow_wall, flow_peak / fail["peak"] if fail["peak"] else float("inf")
    failed = (
        f"the original way failed at 2,000,000 after {secs(fail['wall'])} at a peak of {mb(fail['peak'])} "
        f"({fail['error']})"
    )
    return [
        _row(
            "large_speed", f"≥ {speed:.2f}×: ours {secs(flow_wall)}; {failed}", True if speed >= 3 else None
        ),
        _row(
            "large_memory",
            f"≤ {memory:.0%}: ours {mb(flow_peak)}; {failed}{finished}",
            True if memory <= 1 / 3 else None,
        ),
    ]


def _where_memory(row: dict[str, Any]) -> str:
    peaks = ", ".join(f"{k} {mb(v)}" for k, v in row["step_peaks"].items())
    at, python = row["size"], mb(row["ours_python"])
    return f"our peaks by step at {at:,} (the steps called directly): {peaks}; Python {python}"


def _extraction(ex: list[dict[str, Any]]) -> list[Row]:
    if not ex:
        return [_row(k, "extraction not run", None) for k in ("extract_ratio", "extract_flat")]
    by = {d["size"]: d for d in ex}
    measured = ", ".join(f"{d['size']:,}: {d['ratio']['median']:.2f}×" for d in ex)
    missing = [s for s in EXTRACT_SIZES if s not in by]
    per_size = [_agreed(d["ratio"], lambda x: x >= 0.8) for d in ex]
    below = False in per_size
    # The reason describes a size below the target in every repetition, the lowest of them.
    worst = min(
        (d for d, v in zip(ex, per_size, strict=True) if v is False or not below),
        key=lambda d: d["ratio"]["median"],
    )
    ok: Verdict = False
    if not below:
        ok = None if missing or None in per_size else (INCONCLUSIVE if INCONCLUSIVE in per_size else True)
    if missing:
        measured += f" (not run at {', '.join(f'{s:,}' for s in missing)})"
    reason = ""
    if below:
        reason = (
            f"at {worst['size']:,} the drain waits {pct(worst['first_batch_share'])} of its time for the "
            f"server's first batch; the reconciling count costs {pct(worst['count_share']['median'])} of a "
            f"drain; without the count ours reaches {worst['stream_ratio']['median']:.2f}×"
        )
        if (gain := worst.get("workers_gain") or {}).get("n"):
            reason += (
                f"; its encoder workers made it {gain['median']:.2f}× as fast as encoding in process, on "
                "CPUs it shares with the server"
            )
    elif ok == INCONCLUSIVE:
        split = next(d for d, v in zip(ex, per_size, strict=True) if v == INCONCLUSIVE)
        reason = f"at {split['size']:,} {_disagree(split['ratio'], _times)}"
    lo, hi = ex[0], ex[-1]
    growth = (
        hi["ours_peak"]["median"] / lo["ours_peak"]["median"] if lo["ours_peak"]["median"] else float("nan")
    )
    flat = (
        f"peak {mb(lo['ours_peak']['median'])} at {lo['size']:,} → {mb(hi['ours_peak']['median'])} at "
        f"{hi['size']:,} ({growth:.2f}×)"
    )
    flat_ok = growth <= 1.25 if len(ex) > 1 else None
    flat_reason = (
        f"growth during extraction: {mb(hi['ours_growth']['median'])} at {hi['size']:,}"
        if flat_ok is False
        else ""
    )
    return [_row("extract_ratio", measured, ok, reason), _row("extract_flat", flat, flat_ok, flat_reason)]


def _spark(e: dict[str, Any] | None, sc: dict[str, Any] | None) -> list[Row]:
    rows = []
    if not e or not e["ibge_step"]["n"]:
        rows.append(_row("ibge_step", "end to end not run", None))
    else:
        t = e["ibge_step"]
        ok = _agreed(t, lambda x: x <= 1.5)
        ibge = [s for s in (sc or {}).get("spark", []) if s["step"] == "ibge_to_processing"]
        spark = next((s for s in ibge if s["size"] == e["size"]), ibge[0] if ibge else None)
        reason = ""
        if ok in (False, INCONCLUSIVE) and spark:
            reason = (
                f"{spark['jobs']} Spark jobs whose tasks ran {secs(spark['run_s'])} of its "
                f"{secs(spark['wall'])} at {spark['size']:,}; the rest is planning, commits and the JVM's "
                "warm-up (docs/spark-performance.md)"
            )
        if ok == INCONCLUSIVE:
            reason = "; ".join(x for x in (_disagree(t, _fine_secs), reason) if x)
        rows.append(_row("ibge_step", f"{cell(t)} at {e['size']:,}, one step", ok, reason))
    apps = (e or {}).get("spark_apps") or {}
    if not apps:
        rows.append(_row("spark_apps", "no Spark step reported", None))
    else:
        text = (
            f"{apps['steps']} Spark steps (one application each on Kubernetes); locally they shared "
            f"{apps['applications']} application(s)"
        )
        rows.append(_row("spark_apps", text, apps["steps"] <= 3))
    return rows


def _overlap(e: dict[str, Any] | None) -> Row:
    """What the run waits for Spark once the extraction is done, against a cold start (the original's)."""
    if not e or not e["spark_wait"]["n"]:
        return _row("overlap", "end to end not run", None)
    wait, cold = e["spark_wait"], e["cold_spark_start"]["median"]
    measured = f"{cell(wait)} waited after `ingest_pnadc` at {e['size']:,} (a cold start: {secs(cold)})"
    ok = _agreed(wait, lambda x: x <= 0.5)
    late = "the session is started, or finished starting, after the extraction"
    reason = late if ok is False else ""
    if ok == INCONCLUSIVE:
        reason = f"{_disagree(wait, _fine_secs)}; in some repetitions {late}"
    return _row("overlap", measured, ok, reason)


def _marginal(sc: dict[str, Any] | None) -> Row:
    """The slope of the step's time over every scaling size (least squares: one slow size moves it less
    than it moves the difference between two), unless its time fell between two sizes."""
    step = next((r for r in (sc or {}).get("stages", []) if r["name"] == "pnadc_to_processing"), None)
    if not step or not step["marginal_us"]:
        return _row("pnadc_marginal", "needs two scaling sizes", None)
    sizes, t = sc["sizes"], step["seconds"]
    us = step["slope_us"]
    if math.isnan(us):
        return _row("pnadc_marginal", "the step's time is missing at a scaling size", None)
    measured = f"{us:.1f} µs per document, fitted over {_sizes(sizes)}"
    if len(sizes) == 2:
        measured = f"{us:.1f} µs per document between {sizes[0]:,} and {sizes[1]:,}"
    spark = [s for s in sc["spark"] if s["step"] == "pnadc_to_processing" and s["size"] == sizes[-1]]
    executor = (
        f"Spark's tasks ran {spark[0]['us_per_doc']:.1f} µs of executor time per document at {sizes[-1]:,} "
        "(docs/spark-performance.md)"
        if spark
        else ""
    )
    fell = [i for i in range(len(sizes) - 1) if t[i + 1] < t[i]]
    if fell:
        i = fell[0]
        why = (
            f"its time fell from {secs(t[i])} at {sizes[i]:,} to {secs(t[i + 1])} at {sizes[i + 1]:,}, "
            "which no cost per document does: the machine's speed changed between the sizes (the speed "
            "probe, above)"
        )
        return _row("pnadc_marginal", measured, INCONCLUSIVE, "; ".join(x for x in (why, executor) if x))
    return _row("pnadc_marginal", measured, us <= 8, executor if us > 8 else "")


def _prefect(e: dict[str, Any] | None) -> list[Row]:
    rows = []
    for key, flow in (("prefect_ephemeral", "flow"), ("prefect_server", "flow_server")):
        f = (e or {}).get(flow)
        if not f:
            rows.append(_row(key, "not timed in this run", None))
            continue
        ok = _agreed(f["overhead"], lambda x: x <= 5) if e["size"] == REAL_SIZE else None
        reason = ""
        if ok in (False, INCONCLUSIVE):
            reason = (
                f"of `vamosjuntos run`'s {secs(f['wall'])}: {secs(f['before_s'])} before the flow run starts "
                f"(interpreter, imports, checks{', the temporary API server' if flow == 'flow' else ''}, "
                f"creating the run), the flow {secs(f['flow_s'])}, {secs(f['after_s'])} after it; the "
                f"steps called directly take {secs(f['steps_wall'])} in all"
            )
        if ok == INCONCLUSIVE:
            reason = f"{_disagree(f['overhead'], _fine_secs)}; {reason}"
        rows.append(
            _row(
                key,
                f"{cell(f['overhead'])} at {e['size']:,} (`vamosjuntos run`'s time less the steps')",
                ok,
                reason,
            )
        )
    return rows


def _scaling(sc: dict[str, Any] | None, plotted: bool) -> Row:
    if not sc:
        return _row("scaling", "scaling not run", None)
    ours, orig = sc["sizes"], sc["original_sizes"]
    text = f"ours at {_sizes(ours)}; the original at {_sizes(orig) or 'none'}"
    if sc["original_failed"]:
        text += f" (it failed at {_sizes(sc['original_failed'])})"
    complete = max(ours) >= LARGE and set(ours) <= set(orig) | set(sc["original_failed"]) and plotted
    return _row("scaling", text, True if complete else None)


def _storage(st: dict[str, Any] | None) -> list[Row]:
    if not st:
        return [_row(k, "storage not run", None) for k in ("consumer_share", "questions")]
    share = st["consumer_share"]
    return [
        _row(
            "consumer_share",
            f"{pct(share, 1)} at {st['size']:,}",
            share <= 0.02,
            "the consumer keeps `_id` and a file per state; raw is gzipped JSON" if share > 0.02 else "",
        ),
        _row("questions", f"cold {secs(st['cold_s'])}; warm {secs(st['warm']['median'])}", st["cold_s"] < 1),
    ]


def _memory(a: dict[str, Any]) -> Row:
    metric = a.get("machine", {}).get("memory_metric", "rss")
    sampling = a.get("sampling") or {"n": 0}
    measured = f"{metric.upper()} summed over the process tree; the server apart"
    if sampling["n"]:
        measured += (
            f"; a sample every {secs(sampling['interval_s']['median'])} (median; one read of the tree "
            f"{secs(sampling['read_s']['median'])})"
        )
    if metric == "pss":
        return _row("memory_pss", measured, True)
    return _row("memory_pss", measured, False, f"this run measured {metric.upper()}")


def judge(a: dict[str, Any]) -> list[Row]:
    """Every target's row, in TARGETS' order, from the analysis' numbers alone."""
    e, sc = a.get("e2e"), a.get("scaling")
    rows = [
        _memory(a),
        *_run(e),
        *_large(sc, a.get("extraction")),
        *_extraction(a.get("extraction") or []),
        *_spark(e, sc),
        _marginal(sc),
        _overlap(e),
        *_prefect(e),
        _scaling(sc, "scaling" in a.get("plots", {})),
        *_storage(a.get("storage")),
    ]
    order = list(TARGETS)
    return sorted(rows, key=lambda r: order.index(r["key"]))
