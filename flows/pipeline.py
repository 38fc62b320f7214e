"""The pipeline as Prefect flows: what happens, in order. The work lives in the modules they call."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run, task_run
from pydantic import SecretStr

from flows import answers as answers_mod
from flows import catalog
from flows.date_lock import one_run_per_date
from flows.dates import ingestion_date as lake_date
from flows.engines.duckdb_engine import DuckDBEngine
from flows.errors import ChecksumMismatch
from flows.lake import Lake
from flows.layout import DUCKDB_FILE, IBGE_ENTITIES, Entity, gate_report
from flows.ops import lineage
from flows.ops.events import emit_gate_verdict
from flows.ops.run_names import dated, started
from flows.quality import enforce, run_gate
from flows.questions import questions
from flows.report.artifacts import answers_table, markdown_summary
from flows.report.chart_data import chart_data, chart_sqls
from flows.report.page import build as build_report
from flows.settings import Settings, current_settings, use_settings
from flows.sources.ibge import IbgeSource, ibge_source
from flows.sources.ibge import land as commit_ibge
from flows.sources.local_mongo import embedded_mongo
from flows.sources.mongo import extract_pnadc
from flows.spark.runner import run_step
from flows.summary import format_counts, zone_counts


# --- ingestion -------------------------------------------------------------------------------
# No task-level retries: the client retries, bounded in count and total time (a second layer of
# retries would multiply both).
@task(cache_policy=NO_CACHE)
def land_ibge(source: IbgeSource, entity: Entity, ingestion_date: str, settings: Settings) -> dict[str, Any]:
    """Fetch one endpoint and commit it unchanged as the entity's raw unit of that date."""
    fetched = source.fetch(entity)
    manifest = commit_ibge(Lake(settings), fetched, ingestion_date)
    lineage.emit_committed(Lake(settings), manifest)
    get_run_logger().info(
        "ibge/%s: %d records from %s (%s, %d attempt(s))",
        entity, fetched.records, fetched.source, fetched.url, fetched.attempts,
    )  # fmt: skip
    return manifest


@flow(name="ingest_ibge", flow_run_name=dated("ingest_ibge"), log_prints=True)
def ingest_ibge(ingestion_date: dt.date | None = None) -> dict[str, int]:
    """IBGE regiões, mesorregiões and microrregiões into the raw zone, the three endpoints concurrently.

    Args:
        ingestion_date: The ingestion date to load (a calendar date, e.g. 2026-11-29); empty means today
            (UTC). A rerun of a date replaces its data, never duplicates it.
    """
    settings = current_settings()
    date = lake_date(ingestion_date)
    with one_run_per_date(date):  # a second run of this date waits for this one (flows/date_lock.py)
        source = ibge_source(settings, get_run_logger())
        futures = {e: land_ibge.submit(source, e, date, settings) for e in IBGE_ENTITIES}
        return {e: f.result()["records"] for e, f in futures.items()}


@task(cache_policy=NO_CACHE)
def land_pnadc(settings: Settings, ingestion_date: str, full_refresh: bool) -> dict[str, Any]:
    logger = get_run_logger()
    result = extract_pnadc(settings, Lake(settings), ingestion_date, full_refresh=full_refresh, logger=logger)
    lineage.emit_committed(Lake(settings), result.manifest)
    m = result.manifest
    logger.info(
        "pnadc %s: %d documents (%s, _id %s → %s), reconciled with the source",
        ingestion_date, m["records"], m["mode"], m["watermark_from"], m["watermark_to"],
    )  # fmt: skip
    return m


@flow(name="ingest_pnadc", flow_run_name=dated("ingest_pnadc"))
def ingest_pnadc(ingestion_date: dt.date | None = None, full_refresh: bool = False) -> int:
    """PNAD Contínua from MongoDB into the raw zone: streamed, resumable, reconciled.

    Args:
        ingestion_date: The ingestion date to load (a calendar date, e.g. 2026-11-29); empty means today
            (UTC). A rerun of a date replaces its data, never duplicates it.
        full_refresh: Extract the whole collection (an authoritative snapshot) instead of only the
            documents after the last committed `_id`.
    """
    date = lake_date(ingestion_date)
    with one_run_per_date(date):
        return land_pnadc(current_settings(), date, full_refresh)["records"]


# --- transform -------------------------------------------------------------------------------
def worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """A raw part that fails its checksum fails the same way every time: that failure is not retried."""
    try:
        state.result(raise_on_failure=True)
    except ChecksumMismatch:
        return False
    except BaseException:
        return True
    return True


# One retry: a step is idempotent (it commits a new run or nothing), and on Kubernetes the retry
# reattaches to the Job its first attempt started instead of starting a second one.
@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=10, retry_condition_fn=worth_retrying)
def spark_step(step: str, settings: Settings, ingestion_date: str, **flags: str) -> None:
    ids = {"flow_run_id": str(flow_run.get_id() or "local"), "task_run_id": str(task_run.get_id() or "")}
    with lineage.announcing_step(Lake(settings), step, ingestion_date):  # it commits inside Spark's driver
        run_step(step, settings, ingestion_date, logger=get_run_logger(), **ids, **flags)


@task(cache_policy=NO_CACHE)
def quality_gate(settings: Settings, ingestion_date: str) -> list[dict[str, Any]]:
    lake = Lake(settings)
    checks = run_gate(lake, settings, ingestion_date)
    rows = [c.as_dict() for c in checks]
    lake.write_json(
        "processing",
        gate_report(ingestion_date),
        {"ingestion_date": ingestion_date, "passed": all(c.passed for c in checks), "checks": rows},
    )
    create_table_artifact(key="quality-gate", table=rows, description=f"Quality gate, {ingestion_date}")
    for c in checks:
        get_run_logger().info("%s %s (observed %s)", "PASS" if c.passed else "FAIL", c.name, c.observed)
    emit_gate_verdict(ingestion_date, rows)  # a failed gate alerts (flows/ops/automations.yaml)
    enforce(checks)
    return rows


@flow(name="transform", flow_run_name=dated("transform"))
def transform(ingestion_date: dt.date | None = None) -> dict[str, Any]:
    """raw → processing (typed, quarantined) → quality gate → consumer (target public, dimensions).

    Args:
        ingestion_date: The ingestion date whose raw batches to transform (a calendar date, e.g.
            2026-11-29); empty means today (UTC).
    """
    settings = current_settings()
    date = lake_date(ingestion_date)
    with one_run_per_date(date):
        spark_step("ibge_to_processing", settings, date)
        spark_step("pnadc_to_processing", settings, date)
        checks = quality_gate(settings, date)
        spark_step("processing_to_consumer", settings, date)
        counts = zone_counts(Lake(settings), date)
    get_run_logger().info("Records per zone:\n%s", format_counts(counts))
    return {"ingestion_date": date, "checks": checks, "counts": counts}


# --- publish and answer ----------------------------------------------------------------------
@flow(name="publish", flow_run_name=started("publish"))
def publish(ingestion_date: dt.date | None = None) -> dict[str, int]:
    """Declare the consumer tables for the query engine: Glue tables for Athena, a DuckDB file locally.

    Args:
        ingestion_date: The date whose commit started this run (a trigger sets it, e.g. 2026-11-29).
    """
    settings = current_settings()
    lake = Lake(settings)
    counts = _publish_glue(settings, lake) if settings.engine == "athena" else _publish_duckdb(settings, lake)
    lineage.emit_published(lake, settings, counts)  # starts `answer` (prefect.yaml)
    return counts


def _publish_duckdb(settings: Settings, lake: Lake) -> dict[str, int]:
    engine = DuckDBEngine(lake, _catalog_path(settings))
    try:
        counts = engine.register_consumer()
    finally:
        engine.close()
    get_run_logger().info("Published %s", counts)
    return counts


def _publish_glue(settings: Settings, lake: Lake) -> dict[str, int]:
    """Glue tables at each consumer table's committed run (created, repointed or left as they are)."""
    tables = catalog.publish_glue(lake, settings)
    for t in tables:
        get_run_logger().info("%s %s at %s", t["action"], t["table"], t["location"])
    create_table_artifact(
        key="glue-tables", table=tables, description=f"Glue Data Catalog tables in {settings.glue_database}"
    )
    create_markdown_artifact(
        key="glue-ddl",
        markdown=catalog.describe(catalog.table_specs(lake), settings.glue_database),
        description="The Glue declarations as Athena DDL",
    )
    return {t["table"].split(".", 1)[1]: t["records"] for t in tables}


def _catalog_path(settings: Settings) -> str:
    if "://" in settings.lake_root:
        return ":memory:"
    return str(Lake(settings).path("consumer", DUCKDB_FILE))


@flow(name="answer", flow_run_name=started("answer"))
def answer(ingestion_date: dt.date | None = None) -> list[dict[str, Any]]:
    """Run the ten question SQL files; keep the answers, each query's cost and a report (lake + artifacts).

    Args:
        ingestion_date: The date whose commit started this run (a trigger sets it, e.g. 2026-11-29).
    """
    settings = current_settings()
    lake = Lake(settings)
    engine = _query_engine(settings, lake)
    try:
        # Athena starts them all now and runs them concurrently; DuckDB runs each when asked.
        engine.prefetch([q.sql for q in questions()] + chart_sqls())
        results = answers_mod.answer_all(engine)
        charts = chart_data(engine)
        queries = [{"id": q.id, **engine.stats[q.sql]} for q in questions()]
    finally:
        engine.close()
    rows = [vars(a) for a in results]
    engine_name = settings.answer_engine or settings.engine
    run = {"flow_run_id": str(flow_run.get_id() or ""), "engine": engine_name, "queries": queries}
    answers_mod.store(lake, results, run)
    report_path = build_report(lake, rows, queries, charts, run)
    get_run_logger().info("Report: %s", report_path)
    create_table_artifact(
        key="answers",
        table=answers_table(rows, queries),
        description="The ten answers, the rows behind each, and what each query cost",
    )
    create_markdown_artifact(
        key="answers-summary",
        markdown=markdown_summary(rows, queries, report_path),
        description="Answers",
    )
    return rows


def _query_engine(settings: Settings, lake: Lake) -> Any:
    if (settings.answer_engine or settings.engine) == "athena":
        from flows.engines.athena import AthenaEngine

        return AthenaEngine(settings)
    engine = DuckDBEngine(lake)
    try:
        engine.register_consumer()
    except Exception:
        engine.close()
        raise
    return engine


# --- the whole lakehouse ---------------------------------------------------------------------
@flow(name="lakehouse", flow_run_name=dated("lakehouse"))
def lakehouse(
    rows: int | None = None,
    seed: int | None = None,
    ingestion_date: dt.date | None = None,
    full_refresh: bool = False,
) -> list[dict[str, Any]]:
    """Ingest both sources → transform → publish → answer. Without a MongoDB URI, uses an embedded one.

    Args:
        rows: Documents to generate into the embedded MongoDB (only without VAMOSJUNTOS_MONGO_URI);
            empty means the settings' default.
        seed: Random seed of the generated documents (only without VAMOSJUNTOS_MONGO_URI); empty means
            the settings' default.
        ingestion_date: The ingestion date to load (a calendar date, e.g. 2026-11-29); empty means today
            (UTC). A rerun of a date replaces its data, never duplicates it.
        full_refresh: Extract the whole PNAD collection (an authoritative snapshot: what the source no
            longer holds leaves the consumer) instead of only the new documents.
    """
    settings = current_settings()
    date = lake_date(ingestion_date)
    if settings.mongo_uri is not None:
        return _lakehouse(settings, date, full_refresh)
    with embedded_mongo(
        settings.local_mongo_path,
        settings.mongo_database,
        settings.mongo_collection,
        rows if rows is not None else settings.seed_rows,
        seed if seed is not None else settings.seed,
    ) as uri:
        return _lakehouse(settings.model_copy(update={"mongo_uri": SecretStr(uri)}), date, full_refresh)


def _lakehouse(settings: Settings, date: str, full_refresh: bool = False) -> list[dict[str, Any]]:
    with use_settings(settings), one_run_per_date(date), lineage.orchestrated_by("lakehouse"):
        ingest_ibge(date)
        ingest_pnadc(date, full_refresh=full_refresh)
        transform(date)
        publish()
        return answer()
