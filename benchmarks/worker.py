"""One contestant, run in a fresh interpreter: `python -m benchmarks.worker SPEC.json RESULT.json`.

Each task imports only what it needs (the bare drain imports pymongo and nothing else), marks its stages
and writes what it found to RESULT.json. The parent measures time and memory from outside.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.marks import Marks

log = logging.getLogger("benchmarks.worker")
Task = Callable[[dict[str, Any], Marks], dict[str, Any]]
TASKS: dict[str, Task] = {}


def task(name: str) -> Callable[[Task], Task]:
    def register(fn: Task) -> Task:
        TASKS[name] = fn
        return fn

    return register


def _settings(spec: dict[str, Any]) -> Any:
    from pydantic import SecretStr

    from flows.settings import Settings

    # Spark in the worker's own JVM (its accounting reads that JVM), whatever the shell exported.
    values: dict[str, Any] = {"lake_root": spec["lake"], "ibge_source": "snapshot", "spark_remote": None}
    if spec.get("uri"):
        values["mongo_uri"] = SecretStr(spec["uri"])
    values.update(spec.get("settings", {}))
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


# --- Spark's own accounting of a step: tasks, CPU, GC, shuffle and spills -----------------------
def _spark_jobs(spark: Any) -> set[int]:
    return set(spark.sparkContext.statusTracker().getJobIdsForGroup(None))


def _spark_stages(spark: Any) -> dict[int, dict[str, Any]]:
    sc = spark.sparkContext
    store = sc._jsc.sc().statusStore()
    tracker = sc.statusTracker()
    found: dict[int, dict[str, Any]] = {}
    for job in _spark_jobs(spark):
        info = tracker.getJobInfo(job)
        for sid in info.stageIds if info else []:
            if sid in found:
                continue
            try:
                seq = store.stageData(
                    sid,
                    False,
                    getattr(store, "stageData$default$3")(),
                    False,
                    getattr(store, "stageData$default$5")(),
                )
            except Exception:  # a stage the store has not recorded (skipped before it ran)
                continue
            if seq.isEmpty():
                continue
            s = seq.apply(0)
            found[sid] = {
                "status": s.status().toString(),
                "tasks": s.numTasks(),
                "run_ms": s.executorRunTime(),
                "gc_ms": s.jvmGcTime(),
                "shuffle_read": s.shuffleReadBytes(),
                "shuffle_write": s.shuffleWriteBytes(),
                "spill_memory": s.memoryBytesSpilled(),
                "spill_disk": s.diskBytesSpilled(),
                "input": s.inputBytes(),
                "output": s.outputBytes(),
                "peak_execution_memory": s.peakExecutionMemory(),
            }
    return found


class SparkAccount:
    """Sums the metrics of the Spark stages that ran since the last call."""

    def __init__(self, spark: Any) -> None:
        self.spark = spark
        self.seen = set(_spark_stages(spark))
        self.jobs = _spark_jobs(spark)

    def since_last(self) -> dict[str, Any]:
        stages = _spark_stages(self.spark)
        jobs = _spark_jobs(self.spark)
        new_jobs, self.jobs = jobs - self.jobs, jobs
        new = {k: v for k, v in stages.items() if k not in self.seen and v["status"] == "COMPLETE"}
        self.seen |= set(new)
        keys = ("tasks", "run_ms", "gc_ms", "shuffle_read", "shuffle_write", "spill_memory", "spill_disk")
        total: dict[str, Any] = {k: sum(v[k] for v in new.values()) for k in keys}
        total["stages"] = len(new)
        total["jobs"] = len(new_jobs)
        total["max_tasks_in_a_stage"] = max((v["tasks"] for v in new.values()), default=0)
        total["single_task_stages_run_ms"] = sum(v["run_ms"] for v in new.values() if v["tasks"] == 1)
        total["app_id"] = self.spark.sparkContext.applicationId  # how many Spark applications a run starts
        return total


# --- our pipeline, the same steps the `lakehouse` flow runs, called directly --------------------
# Each stage calls the function the flow's task or subflow wraps (flows/services, the Spark runner,
# the MongoDB extraction; the transform's order is flows.services.transform's, each of its steps a
# stage): what Prefect adds (logging, artifacts, run bookkeeping) is left out, nothing is copied.
# The smoke test runs this in CI, so a change of the pipeline's API shows up here.
@task("ours")
def ours(spec: dict[str, Any], marks: Marks) -> dict[str, Any]:
    from flows.lake import Lake
    from flows.services.answering import answer
    from flows.services.ingestion import land_ibge
    from flows.services.publishing import publish
    from flows.services.quality_gate import GateVerdict, quality_gate
    from flows.services.transform import transform
    from flows.sources.ibge import ibge_source
    from flows.sources.mongo import extract_pnadc
    from flows.spark import runner
    from flows.spark.session import spark_session
    from flows.spark.warmup import await_warm_up, warming_spark

    settings = _settings(spec)
    lake = Lake(settings)
    date = spec["date"]
    # As the `lakehouse` flow: local mode starts the Spark session in the background before ingesting.
    with warming_spark(settings, log):
        with marks.stage("ingest_ibge"):  # the flow's land_ibge tasks
            land_ibge(lake, ibge_source(settings), date)
        with marks.stage("ingest_pnadc") as info:  # land_pnadc
            info["records"] = extract_pnadc(settings, lake, date, logger=log).manifest["records"]
        with marks.stage("spark start"):  # what the first step waits for the warm-up (runner.run_step's wait)
            await_warm_up()
            spark = spark_session(settings, "benchmark")
        account = SparkAccount(spark)

        def run_step(step: str) -> None:
            with marks.stage(step) as info:
                runner.run_step(step, settings, date, logger=log)
                info["spark"] = account.since_last()

        def check_gate() -> GateVerdict:
            with marks.stage("quality_gate"):  # the quality_gate task
                return quality_gate(settings, lake, date)

        transformed = transform(settings, lake, date, run_step=run_step, check_gate=check_gate)
        with marks.stage("publish"):  # the publish flow, DuckDB catalog file
            publish(settings, lake)
        with marks.stage("answer"):  # the answer flow: answers, their cost, the HTML report
            counts = transformed.counts
            answered = answer(settings, lake, "benchmark", counts=counts, gate=transformed.gate)
    return {
        "counts": {f"{c['zone']} {c['table']}": c["records"] for c in counts},  # e.g. "consumer publico_alvo"
        "answers": [{"id": a.id, "answer": a.answer, "rows": a.rows} for a in answered.answers],
    }


@task("baseline")
def baseline(spec: dict[str, Any], marks: Marks) -> dict[str, Any]:
    from benchmarks import baseline as original

    return original.run(spec, marks)


# --- extraction -----------------------------------------------------------------------------
@task("extract_ours")
def extract_ours(spec: dict[str, Any], marks: Marks) -> dict[str, Any]:
    from flows.lake import Lake
    from flows.sources.mongo import extract_pnadc

    settings = _settings(spec)
    lake = Lake(settings)
    with marks.stage("extract"):
        extraction = extract_pnadc(settings, lake, spec["date"], full_refresh=True, logger=log)
    manifest = extraction.manifest
    return {
        "documents": manifest["records"],
        "bytes": sum(f["bytes"] for f in manifest["files"]),
        "stream_s": extraction.stream_s,
        "count_s": extraction.count_s,
        "overlapped_count_s": extraction.overlapped_count_s,  # the count's own time, asked after the stream
        "encoder_workers": extraction.encoder_workers,
    }


@task("extract_ours_in_process")
def extract_ours_in_process(spec: dict[str, Any], marks: Marks) -> dict[str, Any]:
    """The same extraction, its batches encoded in its own process: what the encoder workers add."""
    return extract_ours(spec | {"settings": spec.get("settings", {}) | {"mongo_encoder_workers": 0}}, marks)


@task("extract_drain")
def extract_drain(spec: dict[str, Any], marks: Marks) -> dict[str, Any]:
    """The raw limit: the same cursor (sort on _id hinted to its index, batches of 10,000), nothing
    decoded, nothing written."""
    from bson.raw_bson import RawBSONDocument
    from pymongo import MongoClient

    with marks.stage("extract"):
        t0 = time.perf_counter()
        client: MongoClient[RawBSONDocument] = MongoClient(spec["uri"], document_class=RawBSONDocument)
        cursor = client[spec["database"]][spec["collection"]].find({}).sort("_id", 1).hint([("_id", 1)])
        cursor = cursor.batch_size(10_000)
        documents = 0
        first_batch_s = None
        for _ in cursor:
            if not documents:
                first_batch_s = time.perf_counter() - t0
            documents += 1
        client.close()
    return {"documents": documents, "first_batch_s": first_batch_s}


@task("extract_anatomy")
def extract_anatomy(spec: dict[str, Any], marks: Marks) -> dict[str, Any]:
    from benchmarks import anatomy

    return anatomy.run(spec, marks)


@task("extract_profile")
def extract_profile(spec: dict[str, Any], marks: Marks) -> dict[str, Any]:
    from benchmarks import anatomy

    return anatomy.profile(spec, marks, _settings(spec))


# --- the questions on DuckDB and what they read ---------------------------------------------
@task("questions")
def questions(spec: dict[str, Any], marks: Marks) -> dict[str, Any]:
    from benchmarks import scan

    return scan.run(spec, marks, _settings(spec))


def main(argv: list[str]) -> int:
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text())
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    marks = Marks()
    started = time.time()
    extra = TASKS[spec["task"]](spec, marks)
    result = {"started": started, "stages": marks.stages, "extra": extra}
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, default=str))
    tmp.replace(result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
