"""The numbers of a benchmark run, computed once into a plain dict the template renders.

`analyse(results)` returns only numbers, strings, lists and dicts (no objects): the sections' tables, the
targets' verdicts (`targets.judge`), and what the plan and the machine were.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from benchmarks.analysis import e2e, extraction, scaling, storage
from benchmarks.analysis.stats import SLOWED, probes, stat
from benchmarks.analysis.targets import judge
from benchmarks.plan import FULL, REAL_SIZE, Plan, Results

# A results file from before a field existed ran without what it adds (a Spark server, for one).
PREDATING = {"with_spark_server": False}


def plan_of(results: Results) -> Plan:
    saved = PREDATING | results.plan
    return Plan(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})


def describe_plan(plan: Plan) -> str:
    parts = []
    if "e2e" in plan.sections:
        who = "ours and the original way"
        if plan.with_flow:
            n = min(plan.flow_repeat, plan.reps(plan.e2e_size))
            also = " and against running Prefect and Spark servers" if plan.with_spark_server else ""
            who += f"; `vamosjuntos run` ephemeral, against a running server{also} ×{n}"
        if plan.whatif_driver_memory:
            who += f"; ours with a {plan.whatif_driver_memory} driver ×1"
        parts.append(f"end to end at {plan.e2e_size:,} ({who}; {plan.reps(plan.e2e_size)} repetitions)")
    if "extraction" in plan.sections:
        ex = ", ".join(f"{s:,} ×{plan.reps(s)}" for s in plan.extract_sizes)
        parts.append(f"extraction at {ex}; its anatomy and profile at {plan.profile_size:,}")
    if "storage" in plan.sections:
        parts.append(f"storage and questions at {plan.e2e_size:,}")
    if "scaling" in plan.sections:
        sc = ", ".join(f"{s:,}" for s in plan.scale_sizes)
        flows = (
            [s for s in plan.flow_sizes if s in plan.scale_sizes and s != plan.e2e_size]
            if plan.with_flow
            else []
        )
        also = f"; `vamosjuntos run` (ephemeral) ×1 at {', '.join(f'{s:,}' for s in flows)}" if flows else ""
        parts.append(f"scaling at {sc}, ours and the original way (×{plan.scale_repeat}){also}")
    return "; ".join(parts)


def _machine(results: Results) -> dict[str, Any]:
    m = dict(results.machine)
    m.setdefault("load_average_end", [])
    m.setdefault("memory_metric", "rss")
    m["started_at"], m["finished_at"] = results.started_at, results.finished_at
    m["duration_min"] = results.duration_s / 60
    return m


def _speed(results: Results) -> dict[str, Any]:
    """The speed probe timed before each contestant (benchmarks.machine): did the machine keep its speed?"""
    found = probes(results.runs + results.failures)
    if not found:
        return {"n": 0}
    slow = [
        {"label": lb, "size": n, "repetition": rep, "times": x} for lb, n, rep, _t, x in found if x > SLOWED
    ]
    times = [t for *_, t, _x in found]
    return {"n": len(found), "stat": stat(times), "slowest": max(x for *_, x in found), "slowed": slow}


def _sampling(results: Results) -> dict[str, Any]:
    """How often the memory sampler read each contestant's tree, and how long one read took."""
    ran = [r["sampling"] for r in results.runs if r.get("sampling", {}).get("n")]
    if not ran:
        return {"n": 0}
    return {
        "n": sum(s["n"] for s in ran),
        "interval_s": stat([s["interval_s"] for s in ran]),
        "read_s": stat([s["read_s"] for s in ran]),
    }


def analyse(results: Results, plots: dict[str, str] | None = None) -> dict[str, Any]:
    plan = plan_of(results)
    full, this = asdict(FULL), asdict(plan)
    known = set(results.plan) | (set(this) - set(PREDATING))  # a field the file predates changed nothing
    a: dict[str, Any] = {
        "plan": this | {"text": describe_plan(plan), "e2e_reps": plan.reps(plan.e2e_size)},
        "smoke": plan.smoke,
        "changed": {} if plan.smoke else {k: v for k, v in this.items() if full[k] != v and k in known},
        "stopped": results.stopped,
        "failures": [f | {"first_line": f["error"].splitlines()[0]} for f in results.failures],
        "machine": _machine(results),
        "sampling": _sampling(results),
        "speed": _speed(results),
        "slowed_at": SLOWED,
        "server_starts": [
            {"name": k.removesuffix(" start_s"), "seconds": v}
            for k, v in results.servers.items()
            if k.endswith(" start_s")
        ],
        "servers_failed": results.servers.get("failed", []),
        "plots": plots or {},
        "e2e": e2e.analyse(results, plan.e2e_size, REAL_SIZE) if "e2e" in plan.sections else None,
        "extraction": extraction.analyse(results, plan.extract_sizes),
        "anatomy": extraction.anatomy(results.anatomy),
        "profile": extraction.profile(results.profile),
        "storage": storage.analyse(results.questions, results.baseline_storage, plan.e2e_size),
        "scaling": scaling.analyse(results, plan.scale_sizes) if "scaling" in plan.sections else None,
    }
    a["targets"] = judge(a)
    return a
