"""A small hand-built benchmark run: every section, numbers chosen so each verdict is known in advance."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from benchmarks.measure import Run, Stage
from benchmarks.plan import (
    DRAIN,
    EXTRACT,
    EXTRACT_IN_PROCESS,
    FLOW,
    FLOW_SERVER,
    FLOW_WARM,
    FULL,
    ORIGINAL,
    OURS,
    Results,
)

MB = 1024**2
E2E = 368_210
LARGE = 2_000_000
OURS_STAGES = {
    "startup": 0.4,
    "ingest_ibge": 0.1,
    "ingest_pnadc": 6.0,
    "spark start": 4.0,
    "ibge_to_processing": 1.2,
    "pnadc_to_processing": 3.0,
    "quality_gate": 0.1,
    "processing_to_consumer": 1.0,
    "publish": 0.1,
    "answer": 0.2,
    "shutdown": 0.3,
}
ORIG_STAGES = {"startup": 0.1, "extract: list(find({}))": 8.0, "spark start": 4.5, "spark: write": 12.0}


def spark_info(docs: int, app: str = "local-1") -> dict[str, Any]:
    return {
        "jobs": 2,
        "stages": 3,
        "tasks": 10,
        "run_ms": docs * 5e-3,
        "gc_ms": 10,
        "shuffle_write": 1000,
        "spill_memory": 0,
        "spill_disk": 0,
        "single_task_stages_run_ms": 5,
        "app_id": app,
    }


def run(label: str, size: int, rep: int, stages: dict[str, float], peak_mb: float, **extra: Any) -> Run:
    sections = extra.pop("sections")
    info = extra.pop("spark_info", {})
    ss = [
        Stage(
            n,
            t * size / E2E if n in info else t,
            int(peak_mb * MB),
            peak_mem_python=int(200 * MB),
            info={"spark": info[n]} if n in info else {},
        )
        for n, t in stages.items()
    ]
    wall = sum(s.seconds for s in ss)
    return Run(
        task=label,
        label=label,
        size=size,
        repetition=rep,
        wall_s=wall,
        peak_mem=int(peak_mb * MB),
        server_peak_mem=int(900 * MB),
        peak_mem_python=int(200 * MB),
        stages=ss,
        extra={"sections": sections, **extra},
        trace=[(0.0, MB, MB, MB), (wall, int(peak_mb * MB), MB, MB)],
        sampling={"n": 100, "interval_s": 0.2, "read_s": 0.1},
    )


def ours(size: int, rep: int, sections: list[str], peak_mb: float = 1000, app: str = "local-1") -> Run:
    steps = ("ibge_to_processing", "pnadc_to_processing", "processing_to_consumer")
    info = {s: spark_info(size, app) for s in steps}
    return run(
        OURS,
        size,
        rep,
        OURS_STAGES,
        peak_mb,
        sections=sections,
        spark_info=info,
        counts={"consumer publico_alvo": size // 6},
        answers=[{"id": 1, "answer": "x", "rows": 1}],
    )


def cli(
    label: str, size: int, rep: int, more_s: float, sections: list[str], peak_mb: float = 1600, **extra: Any
) -> Run:
    """`vamosjuntos run`: `more_s` longer than the steps, its stages as benchmarks.cli finds them."""
    wall = sum(OURS_STAGES.values()) + more_s
    stages = {"startup": 5.0, "lakehouse flow": wall - 6.0, "shutdown": 1.0}
    answers = [{"id": 1, "answer": "x", "rows": 1}]
    return run(label, size, rep, stages, peak_mb, sections=sections, answers=answers, **extra)


def original(size: int, rep: int, sections: list[str], peak_mb: float = 1500) -> Run:
    stages = {k: v * size / E2E if k != "startup" else v for k, v in ORIG_STAGES.items()}
    return run(ORIGINAL, size, rep, stages, peak_mb, sections=sections, rows_out=size // 6)


def extraction(label: str, size: int, rep: int, seconds: float, peak_mb: float) -> Run:
    extra = {"documents": size, "stream_s": seconds * 0.6, "count_s": seconds * 0.3, "first_batch_s": 0.5}
    extra["overlapped_count_s"] = seconds * 0.5  # the count's own time: 0.2 of it beside the last batches
    extra["encoder_workers"] = 2 if label == EXTRACT else 0
    return run(
        label, size, rep, {"startup": 0.3, "extract": seconds}, peak_mb, sections=["extraction"], **extra
    )


def questions() -> dict[str, Any]:
    read = {
        "table": "publico_alvo",
        "columns": ["renda"],
        "files": 27,
        "files_after_partition_pruning": 1,
        "row_groups_total": 27,
        "row_groups_after_statistics": 1,
    }
    q = {
        "reads": [read],
        "bytes_partition_pruning": 2048,
        "bytes_with_statistics": 1024,
        "duckdb_bytes_read": 1500,
        "athena_usd_with_statistics": 4.7e-5,
    }
    return {
        "zones": {
            "raw": {"pnadc": 9 * MB},
            "processing": {"pnadc": 3 * MB},
            "consumer": {"publico_alvo": MB // 10},
        },
        "duckdb": {"cold_s": 0.2, "warm_s": [0.05, 0.06], "per_question_warm_s": {"1": 0.005, "2": 0.004}},
        "questions": {"1": q, "2": q | {"reads": [read | {"files_after_partition_pruning": 27}]}},
    }


def results(**plan_changes: Any) -> Results:
    """Ours 1.6× the original at 368,210; the flow 10 s slower (3 s on a running server, 5 s faster against
    running Prefect and Spark servers, whose JVM peaks at 950 MB beside the run's 700); extraction 0.9×."""
    plan = replace(
        FULL, e2e_size=E2E, scale_sizes=(100_000, E2E), extract_sizes=(100_000, 500_000), **plan_changes
    )
    runs = []
    for rep in range(2):
        runs += [ours(E2E, rep, ["e2e", "scaling"]), original(E2E, rep, ["e2e", "scaling"])]
    runs += [cli(FLOW, E2E, 0, 10, ["e2e"]), cli(FLOW_SERVER, E2E, 0, 3, ["e2e"])]
    warm = {"spark_server_peak_mem": 950 * MB}
    runs += [
        cli(FLOW_WARM, E2E, -1, 30, ["first"], peak_mb=700, **warm),  # the servers' first run, apart
        cli(FLOW_WARM, E2E, 0, -5, ["e2e"], peak_mb=700, **warm),
    ]
    runs += [ours(100_000, 0, ["scaling"]), original(100_000, 0, ["scaling"])]
    for size in (100_000, 500_000):
        runs += [
            extraction(EXTRACT, size, 0, size / 45_000, 150),
            extraction(DRAIN, size, 0, size / 50_000, 40),
            extraction(EXTRACT_IN_PROCESS, size, 0, size / 30_000, 140),
        ]
    machine = {
        "cpu_model": "test CPU",
        "cpus_logical": 2,
        "cpus_physical": 2,
        "ram_bytes": 8 * 1024**3,
        "os": "test OS",
        "kernel": "1",
        "python": "3.11",
        "java": "17",
        "versions": {"pyspark": "4.3"},
        "git_commit": "abc1234",
        "git_dirty_flows": False,
        "load_average_start": [1.0, 1.0, 1.0],
        "load_average_end": [2.0, 2.0, 2.0],
        "memory_metric": "pss",
    }
    return Results(
        plan=asdict(plan),
        machine=machine,
        runs=[r.as_dict() for r in runs],
        questions=questions(),
        baseline_storage={
            "raw_json_bytes": 30 * MB,
            "parquet_bytes": MB,
            "parquet_files": 27,
            "rows_out": E2E // 6,
        },
        started_at="t0",
        finished_at="t1",
        duration_s=60,
    )
