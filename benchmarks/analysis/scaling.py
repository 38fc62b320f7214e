"""Scaling: ours and the original way at each size; per-stage time, marginal cost per document, memory."""

from __future__ import annotations

import re
from typing import Any

from benchmarks.analysis.e2e import cpu, usable_cores, with_spark_server
from benchmarks.analysis.stats import exponent, median, peaks, probes, slope, spark, stage, walls
from benchmarks.plan import FLOW, FLOW_SERVER, FLOW_WARM, ORIGINAL, OURS, Results
from flows.layout import SPARK_STEPS

PIPELINE_STAGES = (
    "startup",
    "ingest_ibge",
    "ingest_pnadc",
    "spark start",
    "ibge_to_processing",
    "pnadc_to_processing",
    "quality_gate",
    "processing_to_consumer",
    "publish",
    "answer",
    "shutdown",
)
SUPERLINEAR = 1.1  # a growth exponent above this between the two largest sizes is worth a look


def cause(error: str) -> str:
    """The line of a failed contestant's log tail that names the error (its last exception), shortened."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    named = [line for line in lines if re.search(r"Error|Exception|Killed|OutOfMemory|MemoryError", line)]
    return (named[-1] if named else lines[0] if lines else "")[:160]


def _stage_row(name: str, seconds: list[float], sizes: list[int]) -> dict[str, Any]:
    marginal = [
        (seconds[i + 1] - seconds[i]) / (sizes[i + 1] - sizes[i]) * 1e6 for i in range(len(sizes) - 1)
    ]
    k = exponent(seconds[-2], seconds[-1], sizes[-2], sizes[-1]) if len(sizes) > 1 else float("nan")
    return {
        "name": name,
        "seconds": seconds,
        "marginal_us": marginal,
        "slope_us": slope(sizes, seconds) * 1e6,
        "exponent": k,
    }


def _median_run(runs: list[Any], step: str) -> Any:
    """The repetition whose `step` took the median time (the lower middle of an even count): what Spark
    recorded there describes a typical repetition, and a target quoting it beside the median agrees."""
    timed = sorted((r for r in runs if r.stage(step) is not None), key=lambda r: r.stage(step).seconds)
    return timed[(len(timed) - 1) // 2] if timed else runs[0]


def _spark_rows(ours: dict[int, list[Any]], sizes: list[int]) -> list[dict[str, Any]]:
    rows = []
    for name in SPARK_STEPS:
        for n in sizes:
            run = _median_run(ours[n], name)
            sp = spark(run, name)
            if not sp:
                continue
            wall = run.stage(name).seconds
            rows.append(
                {
                    "step": name,
                    "size": n,
                    "wall": wall,
                    "jobs": sp.get("jobs"),
                    "stages": sp["stages"],
                    "tasks": sp["tasks"],
                    "run_s": sp["run_ms"] / 1e3,
                    "busy": sp["run_ms"] / 1e3 / wall if wall else float("nan"),
                    "single_task_s": sp["single_task_stages_run_ms"] / 1e3,
                    "gc_s": sp["gc_ms"] / 1e3,
                    "shuffle": sp["shuffle_write"],
                    "spill": sp["spill_memory"] + sp["spill_disk"],
                    "us_per_doc": sp["run_ms"] * 1e3 / n,
                }
            )
    return rows


def analyse(results: Results, scale_sizes: tuple[int, ...]) -> dict[str, Any] | None:
    ours = {s: rs for s in scale_sizes if (rs := results.runs_of(OURS, s, "scaling"))}
    if not ours:
        return None
    orig = {s: rs for s in scale_sizes if (rs := results.runs_of(ORIGINAL, s, "scaling"))}
    failed = [f for f in results.failures if f["label"] == ORIGINAL and f["size"] in scale_sizes]
    sizes = sorted(ours)
    stages = []
    for name in PIPELINE_STAGES:
        seconds = [stage(ours[n], name)["median"] for n in sizes]
        if any(x == x for x in seconds):  # not all NaN
            stages.append(_stage_row(name, seconds, sizes))
    whole = _stage_row("whole run", [walls(ours[n])["median"] for n in sizes], sizes)
    # How fast the machine was before ours ran at each size (× the run's fastest probe; the median where
    # the size's time is a median): one slowed size moves the fitted marginal cost (targets._marginal).
    factor = {(lb, n, rep): x for lb, n, rep, _t, x in probes(results.runs + results.failures)}
    per_size = []
    cores = usable_cores(results.machine)
    for n in sizes:
        o = orig.get(n)
        found = [factor[key] for r in ours[n] if (key := (OURS, n, r.repetition)) in factor]
        row = {
            "size": n,
            "ours_probe": median(found) if found else None,
            "ours_wall": walls(ours[n])["median"],
            "ours_peak": peaks(ours[n])["median"],
            "ours_python": peaks(ours[n], "peak_mem_python")["median"],
            "server_peak": peaks(ours[n], "server_peak_mem")["median"],
            "orig_wall": walls(o)["median"] if o else None,
            "orig_peak": peaks(o)["median"] if o else None,
            "step_peaks": {
                s: stage(ours[n], s, "peak_mem")["median"] for s in ("ingest_pnadc", *SPARK_STEPS)
            },
        }
        row["docs_per_s"] = n / row["ours_wall"]
        row["speedup"] = row["orig_wall"] / row["ours_wall"] if o else None
        row["memory_ratio"] = row["ours_peak"] / row["orig_peak"] if o else None
        # `vamosjuntos run`, where timed (not the running servers' first run, measured apart)
        for key, label in (("flow", FLOW), ("flow_server", FLOW_SERVER), ("flow_warm", FLOW_WARM)):
            f = [r for r in results.runs_of(label, n) if "first" not in r.extra.get("sections", [])]
            row[f"{key}_wall"] = walls(f)["median"] if f else None
            row[f"{key}_peak"] = median([with_spark_server(r) for r in f]) if f else None  # its JVM too
            row[f"{key}_cpu"] = cpu(f, cores) if f else None
        # How far the original way got where it failed: a lower bound on what it needs there.
        fail = [f for f in failed if f["size"] == n]
        row["orig_failure"] = (
            {
                "wall": max(f.get("wall_s", 0.0) for f in fail),
                "peak": max(f.get("peak_mem", 0) for f in fail),
                "error": cause(fail[0]["error"]),
            }
            if fail and not o
            else None
        )
        per_size.append(row)
    superlinear = [
        {"name": r["name"], "exponent": r["exponent"]}
        for r in stages
        if r["exponent"] > SUPERLINEAR and r["seconds"][-1] > 5
    ]
    return {
        "sizes": sizes,
        "stages": stages,
        "whole": whole,
        "per_size": per_size,
        "spark": _spark_rows(ours, sizes),
        "superlinear": superlinear,
        "original_sizes": sorted(orig),
        "original_failed": sorted({f["size"] for f in failed}),
        "repeat": results.plan.get("scale_repeat", 1),
    }
