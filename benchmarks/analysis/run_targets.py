"""The targets on `vamosjuntos run` against the original way: at the end-to-end size (ephemeral, against a
running Prefect server, against running Prefect and Spark servers) and at the largest size."""

from __future__ import annotations

from functools import partial
from typing import Any

from benchmarks.analysis.e2e import CPU_NAMES
from benchmarks.analysis.formats import cell, mb, missing, pct, ratio, secs
from benchmarks.analysis.verdicts import (
    INCONCLUSIVE,
    LARGE,
    MET,
    NOT_MEASURED,
    NOT_MET,
    REAL_SIZE,
    Row,
    Verdict,
    agreed,
    disagree,
    row_for,
    times,
)


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


def _where(e: dict[str, Any]) -> str:
    parts = ", ".join(f"{s['name']} {secs(s['seconds'])} ({pct(s['share'])})" for s in e["largest_stages"])
    return f"our largest stages: {parts}"


def _cpu_budget(c: dict[str, Any] | None, wall: float, orig_wall: float | None, times: float) -> str:
    """The CPU a way of running took (`c`: its processes and the running servers it used, over its `wall`)
    against what the machine's cores give in the time `times` the original's speed allows: a run that
    needs more CPU than that cannot reach the target here by overlapping its stages (as long as its CPU
    does not shrink with its time: a server's idle loops and the collector's work do, a little)."""
    allowed = orig_wall / times if not missing(orig_wall) else float("nan")
    if not c or not c["cores"] or not c["total"]["n"] or missing(allowed):
        return ""
    parts = sorted(((c[k]["median"], name) for k, name in CPU_NAMES.items()), reverse=True)
    named = ", ".join(f"{name} {secs(v)}" for v, name in parts if v >= 0.05)
    total, cores = c["total"]["median"], c["cores"]
    given = allowed * cores
    compared = "more than" if total > given else "within"
    said, verb = c["cores_said"], "gives" if cores == 1 else "give"
    return (
        f"; CPU: {secs(total)} in {secs(wall)} ({pct(c['busy']['median'])} of the time of {said}; "
        f"medians each: {named}), {compared} the {secs(given)} {said} {verb} in the {secs(allowed)} "
        f"{times:g}× the original's speed allows"
    )


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
    ok_speed = agreed(f["speedup"], lambda x: x >= 1.5) if real else None
    ok_mem = agreed(f["memory_ratio"], lambda x: x <= 1) if real else None
    budget = _cpu_budget(f.get("cpu"), f["wall"], e.get("orig_wall"), 1.5)
    why = f"{_where(e)}; {_difference(f['overhead'])}{budget}"
    if ok_speed == INCONCLUSIVE:
        why = f"{disagree(f['speedup'], times)}; {why}"
    mem_why = _memory_reason(e, f) if ok_mem is not None else ""
    if ok_mem == INCONCLUSIVE:
        mem_why = f"{disagree(f['memory_ratio'], partial(pct, digits=1), 'the peaks')}; {mem_why}"
    return (
        row_for("run_speed", speed, ok_speed, why if ok_speed in (False, INCONCLUSIVE) else ""),
        row_for(
            "run_memory", f"{memory} at {at:,}", ok_mem, mem_why if ok_mem in (False, INCONCLUSIVE) else ""
        ),
    )


def run(e: dict[str, Any] | None) -> list[Row]:
    rows = []
    if not e or not e["flow"]:
        rows += [
            row_for(k, "`vamosjuntos run` was not timed in this run", None)
            for k in ("run_speed", "run_memory")
        ]
    else:
        rows += _vs_original(e, e["flow"])
    for key, flow, what in (
        ("run_server", "flow_server", "a running server"),
        ("run_warm", "flow_warm", "running Prefect and Spark servers"),
    ):
        if not e or not e[flow]:
            rows.append(row_for(key, f"`vamosjuntos run` against {what} was not timed in this run", None))
            continue
        speed, memory = _vs_original(e, e[flow])
        verdicts = {speed["verdict"], memory["verdict"]}
        ok: Verdict = verdicts == {MET}
        if NOT_MEASURED in verdicts:
            ok = None
        elif NOT_MET not in verdicts and INCONCLUSIVE in verdicts:
            ok = INCONCLUSIVE
        reason = "; ".join(
            f"{what}: {r['reason']}" for what, r in (("speed", speed), ("memory", memory)) if r["reason"]
        )
        rows.append(row_for(key, f"{speed['measured']}; memory {memory['measured']}", ok, reason))
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


def large(sc: dict[str, Any] | None, ex: list[dict[str, Any]] | None = None) -> list[Row]:
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
        return [row_for(k, why + finished, None) for k in keys]
    flow_wall, flow_peak = row["flow_wall"], row["flow_peak"]
    i = sc["sizes"].index(LARGE)  # type: ignore[index]
    top = sorted(sc["stages"], key=lambda r: -r["seconds"][i])[:3]  # type: ignore[index]
    steps = f"; the steps called directly take {secs(row['ours_wall'])}, the largest: " + ", ".join(
        f"{r['name']} {secs(r['seconds'][i])}" for r in top
    )
    if row["orig_wall"] is not None:
        speed, memory = row["orig_wall"] / flow_wall, flow_peak / row["orig_peak"]
        floor = _drain_floor(ex or [], row["orig_wall"] / 3)
        budget = _cpu_budget(row.get("flow_cpu"), flow_wall, row["orig_wall"], 3)
        why_speed = f"`vamosjuntos run` {secs(flow_wall)}{steps}{floor}{budget}" if speed < 3 else ""
        return [
            row_for(
                "large_speed",
                f"{speed:.2f}× ({secs(flow_wall)} vs {secs(row['orig_wall'])})",
                speed >= 3,
                why_speed,
            ),
            row_for(
                "large_memory",
                f"{memory:.0%} ({mb(flow_peak)} vs {mb(row['orig_peak'])})",
                memory <= 1 / 3,
                _where_memory(row) if memory > 1 / 3 else "",
            ),
        ]
    fail = row["orig_failure"]
    if fail is None:
        return [row_for(k, "the original way was not run at 2,000,000" + finished, None) for k in keys]
    # It failed: what it spent before failing is less than it needs, so a ratio against that is a floor.
    speed, memory = fail["wall"] / flow_wall, flow_peak / fail["peak"] if fail["peak"] else float("inf")
    failed = (
        f"the original way failed at 2,000,000 after {secs(fail['wall'])} at a peak of {mb(fail['peak'])} "
        f"({fail['error']})"
    )
    return [
        row_for(
            "large_speed", f"≥ {speed:.2f}×: ours {secs(flow_wall)}; {failed}", True if speed >= 3 else None
        ),
        row_for(
            "large_memory",
            f"≤ {memory:.0%}: ours {mb(flow_peak)}; {failed}{finished}",
            True if memory <= 1 / 3 else None,
        ),
    ]


def _where_memory(row: dict[str, Any]) -> str:
    peaks = ", ".join(f"{k} {mb(v)}" for k, v in row["step_peaks"].items())
    at, python = row["size"], mb(row["ours_python"])
    return f"our peaks by step at {at:,} (the steps called directly): {peaks}; Python {python}"
