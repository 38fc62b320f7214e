"""End to end at one size: ours (the steps, and `vamosjuntos run` both ways) against the original way."""

from __future__ import annotations

from typing import Any

from benchmarks.analysis.stats import median, paired, peaks, stage, stat, walls
from benchmarks.measure import Run
from benchmarks.plan import FLOW, FLOW_SERVER, FLOW_WARM, ORIGINAL, OURS, Results
from flows.layout import SPARK_STEPS

# The part of our pipeline that does what the original did (MongoDB → target public in Parquet).
COMPARABLE = ("ingest_pnadc", "spark start", "pnadc_to_processing", "processing_to_consumer")
# The steps called directly whose code the flow runs as its tasks (benchmarks.cli.WORK_TASKS), the wait
# for Spark's start included: in the flow the first Spark task waits for it.
TASK_STAGES = ("ingest_ibge", "ingest_pnadc", "spark start", *SPARK_STEPS, "quality_gate")


def rows_out(run: Run) -> int | None:
    if run.extra.get("rows_out") is not None:
        return int(run.extra["rows_out"])
    counts = run.extra.get("counts") or {}
    if counts.get("consumer publico_alvo") is not None:
        return int(counts["consumer publico_alvo"])
    answers = run.extra.get("answers") or []
    return int(answers[0]["rows"]) if answers else None


def runs(results: Results, size: int) -> dict[str, list[Run]]:
    whatif = [Run.from_dict(r) for r in results.runs if r["label"].startswith(OURS[:-1] + ", driver")]
    return {
        "ours": results.runs_of(OURS, size, "e2e"),
        "orig": results.runs_of(ORIGINAL, size, "e2e"),
        "flow": results.runs_of(FLOW, size, "e2e"),
        "flow_server": results.runs_of(FLOW_SERVER, size, "e2e"),
        "flow_warm": results.runs_of(FLOW_WARM, size, "e2e"),
        "first": results.runs_of(FLOW_WARM, size, "first") + results.runs_of(FLOW_SERVER, size, "first"),
        "whatif": whatif,
    }


# A contestant's CPU by process (benchmarks/cpu.py), then the running servers' it used, sampled apart.
CPU_OWN = ("jvm", "python", "prefect_api", "encoders", "other")
CPU_APART = ("server", "spark_server", "prefect_server")
CPU_NAMES = {
    "jvm": "Spark's JVM",
    "python": "the command's Python",
    "prefect_api": "Prefect's temporary API server",
    "encoders": "encoder workers",
    "other": "other processes",
    "server": "MongoDB's stand-in",
    "spark_server": "the Spark server",
    "prefect_server": "the Prefect server",
}


def usable_cores(machine: dict[str, Any]) -> float | None:
    """The cores' worth of time the contestants could use, a whole number where it is one (so the report
    says "2 cores", and "1.5 cores" under such a CPU quota); results saved before that was recorded: the
    logical CPUs."""
    cores = machine.get("cpus_usable") or machine.get("cpus_logical")
    if not cores:
        return None
    return int(cores) if float(cores).is_integer() else float(cores)


def cores_said(cores: float) -> str:
    """How the report names them: 1 core, 2 cores, 1.5 cores, 0.33 cores (a third of a CPU's quota)."""
    return f"{round(cores, 2):g} core" + ("" if cores == 1 else "s")


def cpu(rs: list[Run], cores: float | None) -> dict[str, Any] | None:
    """CPU seconds by process kind over the repetitions that recorded it (results from before CPU was
    sampled have none), their total, and that total against what the machine's cores had in the run's time
    (`busy`: 1.0 is every core busy from its start to its end)."""
    ran = [r for r in rs if r.cpu]
    if not ran:
        return None
    out: dict[str, Any] = {k: stat([r.cpu.get(k, 0.0) for r in ran]) for k in (*CPU_OWN, *CPU_APART)}
    out["total"] = stat([sum(r.cpu.values()) for r in ran])
    out["busy"] = stat([sum(r.cpu.values()) / (cores * r.wall_s) for r in ran] if cores else [])
    out["cores"] = cores
    out["cores_said"] = cores_said(cores) if cores else None
    return out


def contestant(label: str, rs: list[Run], cores: float | None = None) -> dict[str, Any]:
    return {
        "label": label,
        "wall": walls(rs),
        "peak": peaks(rs),
        "python": peaks(rs, "peak_mem_python"),
        "server": peaks(rs, "server_peak_mem"),
        "spark_server": stat([spark_server_peak(r) for r in rs]),
        "rows_out": rows_out(rs[0]),
        "cpu": cpu(rs, cores),
    }


def stage_table(rs: list[Run]) -> list[dict[str, Any]]:
    wall = walls(rs)["median"]
    return [
        {
            "name": s.name,
            "time": (t := stage(rs, s.name)),
            "share": t["median"] / wall if wall else float("nan"),
            "peak": stage(rs, s.name, "peak_mem"),
            "python": stage(rs, s.name, "peak_mem_python"),
        }
        for s in rs[0].stages
    ]


def spark_apps(rs: list[Run]) -> dict[str, int]:
    """Spark steps the run ran and the distinct Spark applications they used (ids the steps reported)."""
    steps = [st for st in rs[0].stages if (st.info or {}).get("spark")]
    ids = {st.info["spark"].get("app_id") for st in steps} - {None}
    return {"steps": len(steps), "applications": len(ids)} if steps else {}


FLOW_STAGE = "lakehouse flow"  # the flow run's span as Prefect recorded it (benchmarks.cli)


def spark_server_peak(run: Run) -> int:
    """The peak PSS of the `vamosjuntos spark-server` a run used (0 without one): its Spark JVM."""
    return int(run.extra.get("spark_server_peak_mem") or 0)


def with_spark_server(run: Run) -> int:
    """A run's memory with the Spark server's, which did its Spark work: the sum of the two peaks (sampled
    apart; never less than their simultaneous sum)."""
    return run.peak_mem + spark_server_peak(run)


def _flow(
    label: str, flow: list[Run], ours: list[Run], orig: list[Run], cores: float | None = None
) -> dict[str, Any]:
    """`vamosjuntos run` against the same steps called directly and against the original way."""
    answers = (ours[0].extra.get("answers"), flow[0].extra.get("answers"))
    return {
        "label": label,
        "cpu": cpu(flow, cores),
        "overhead": paired(flow, ours, lambda f, o: f.wall_s - o.wall_s),
        "speedup": paired(orig, flow, lambda o, f: o.wall_s / f.wall_s),
        "memory_ratio": paired(flow, orig, lambda f, o: with_spark_server(f) / o.peak_mem),
        "wall": walls(flow)["median"],
        "peak": stat([with_spark_server(r) for r in flow])["median"],
        "tree_peak": peaks(flow)["median"],
        "spark_server_peak": stat([spark_server_peak(r) for r in flow])["median"],
        "python_peak": peaks(flow, "peak_mem_python")["median"],
        "steps_wall": walls(ours)["median"],
        # Before the flow run starts: interpreter, imports, the CLI's checks, Prefect's temporary server
        # (ephemeral API), creating the flow run; after it ends: the answers printed, that server stopped.
        "before_s": stage(flow, "startup")["median"],
        "flow_s": stage(flow, FLOW_STAGE)["median"],
        # Inside the flow run: its span less our work's (benchmarks.cli), per run.
        "inside_s": stat([s.info.get("prefect_s") for r in flow if (s := r.stage(FLOW_STAGE)) is not None]),
        # Judged for the two ways Prefect is met; with the Spark server, the steps' own JVM start and exit
        # have no counterpart in the flow's tree.
        **(prefect_own(flow, ours) if label in (FLOW, FLOW_SERVER) else dict.fromkeys(OWN_KEYS)),
        "after_s": stage(flow, "shutdown")["median"],
        "answers_equal": answers[0] == answers[1] if all(answers) else None,
    }


OWN_KEYS = ("own", "tasks", "steps_tasks", "unrecorded")


def prefect_own(flow: list[Run], ours: list[Run]) -> dict[str, Any]:
    """What `vamosjuntos run` adds to the steps called directly, with the heavy work taken out of each run
    by its own measure: each flow run's wall time less its tasks' time as Prefect recorded it (benchmarks.cli
    `tasks_s`), less the median of the same for the steps called directly (their time less the stages that
    are the tasks' code). What is left on each side is light: start-up, publishing and answering, exit; on
    the flow's side also Prefect's time outside the tasks. Whole runs' difference (`overhead`) carries the
    heavy work's own variation between runs too, which on a shared machine exceeds the target's 5 s.

    Prefect's own work inside a task's span (its state changes, an artifact the task posts) counts as work
    here: `tasks` against `steps_tasks` shows whether the tasks ran slower than the same code called
    directly. `own` is empty (n 0) unless every run on both sides has its record: a run whose tasks Prefect
    had not all recorded, or which retried one, is more likely a slow one, and leaving it out would flatter
    Prefect; `unrecorded` counts such flow runs."""
    steps = [(o, _stages_sum(o)) for o in ours]
    flows = [(r, s.info.get("tasks_s") if (s := r.stage(FLOW_STAGE)) is not None else None) for r in flow]
    unrecorded = sum(t is None for _, t in flows)
    whole = unrecorded == 0 and all(t is not None for _, t in steps) and bool(steps)
    light = median([o.wall_s - t for o, t in steps if t is not None]) if whole else float("nan")
    return {
        "own": stat([r.wall_s - t - light for r, t in flows if t is not None] if whole else []),
        "tasks": stat([t for _, t in flows]),
        "steps_tasks": stat([t for _, t in steps]),
        "unrecorded": unrecorded,
    }


def _stages_sum(run: Run) -> float | None:
    """The seconds of the steps' stages that the flow runs as its tasks; None if one is missing (a stage
    renamed in benchmarks/worker.py would otherwise count as light work, in Prefect's favour)."""
    if any(run.stage(name) is None for name in TASK_STAGES):
        return None
    return run.stage_seconds(*TASK_STAGES)


def analyse(results: Results, size: int, real_size: int) -> dict[str, Any] | None:
    e = runs(results, size)
    if not e["ours"] or not e["orig"]:
        return None
    ours, orig = e["ours"], e["orig"]
    cores = usable_cores(results.machine)
    out: dict[str, Any] = {
        "size": size,
        "real": size == real_size,
        "comparable": list(COMPARABLE),
        "contestants": [contestant(label, rs, cores) for label, rs in ((OURS, ours), (ORIGINAL, orig)) if rs],
        "speedup": paired(orig, ours, lambda o, u: o.wall_s / u.wall_s),
        "memory_ratio": paired(ours, orig, lambda u, o: u.peak_mem / o.peak_mem),
        "speedup_comparable": paired(
            orig,
            ours,
            lambda o, u: (o.wall_s - o.stage_seconds("startup", "shutdown")) / u.stage_seconds(*COMPARABLE),
        ),
        "stages": [
            {"label": OURS, "rows": stage_table(ours)},
            {"label": ORIGINAL, "rows": stage_table(orig)},
        ],
        "spark_apps": spark_apps(ours),
        "ibge_step": stage(ours, "ibge_to_processing"),
        "spark_wait": stage(ours, "spark start"),  # after ingest_pnadc: what the run waits for the session
        "cold_spark_start": stage(orig, "spark start"),
        "whatif": None,
    }
    for key, label in (("flow", FLOW), ("flow_server", FLOW_SERVER), ("flow_warm", FLOW_WARM)):
        out[key] = _flow(label, e[key], ours, orig, cores) if e[key] else None
        if e[key]:
            out["contestants"].append(contestant(label, e[key], cores))
    first = e["first"]  # the running servers' first run, before the repetitions
    out["first_run"] = (
        {"label": first[0].label, "wall": first[0].wall_s, "peak": with_spark_server(first[0])}
        if first
        else None
    )
    if e["whatif"]:
        w = e["whatif"][0]
        same = [r for r in ours if r.repetition == w.repetition] or ours
        out["contestants"].append(contestant(w.label, e["whatif"], cores))
        out["whatif"] = {
            "label": w.label,
            "wall": w.wall_s,
            "peak": w.peak_mem,
            "default_wall": same[0].wall_s,
            "default_peak": same[0].peak_mem,
        }
    out["orig_peak"] = peaks(orig)["median"]
    out["orig_wall"] = walls(orig)["median"]
    out["ours_peak"] = peaks(ours)["median"]
    out["ours_python_peak"] = peaks(ours, "peak_mem_python")["median"]
    # Where the time goes: our stages, largest first, with their share of the run.
    ranked = sorted(out["stages"][0]["rows"], key=lambda r: -r["time"]["median"])
    out["largest_stages"] = [
        {"name": r["name"], "seconds": r["time"]["median"], "share": r["share"]} for r in ranked[:4]
    ]
    return out
