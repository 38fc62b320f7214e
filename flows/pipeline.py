"""The pipeline as Prefect flows: what happens, in order. The work lives in plain functions
(flows/services/, the Spark runner, the MongoDB extraction); a task or flow here adds only logging,
artifacts and retries.

Settings travel as arguments. A flow started on its own (a deployment, the CLI) reads them from the
environment; the `lakehouse` parent hands its own to each subflow, e.g. with the embedded MongoDB's URI.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.runtime import flow_run, task_run
from pydantic import SecretStr

from flows.date_lock import one_run_per_date
from flows.dates import ingestion_date as lake_date
from flows.lake import Lake
from flows.layout import IBGE_ENTITIES, IBGE_TO_PROCESSING, Entity
from flows.ops import lineage
from flows.ops.events import emit_gate_verdict
from flows.ops.lineage import Orchestrator
from flows.ops.run_names import dated, started
from flows.parent import FromParent, ParentRun, ParentSettings
from flows.report.artifacts import answers_table, markdown_summary
from flows.report.glue_artifacts import glue_artifacts
from flows.services import answering, publishing
from flows.services import transform as transforming
from flows.services.ingestion import IbgeLanded, land_ibge_endpoint
from flows.services.quality_gate import GateVerdict
from flows.services.quality_gate import quality_gate as check_quality
from flows.services.run import RunSummary, Transformed
from flows.settings import Seed, SeedRows, Settings
from flows.sources.embedded_mongo import embedded_mongo, stop_after_stream
from flows.sources.ibge import IbgeSource, ibge_source
from flows.sources.mongo import Extraction, extract_pnadc
from flows.spark.alongside import alongside, alongside_stream
from flows.spark.retry import worth_retrying
from flows.spark.runner import run_step
from flows.spark.warmup import warming_spark
from flows.summary import format_counts


# --- ingestion -------------------------------------------------------------------------------
# No task-level retries: the client retries, bounded in count and total time (a second layer of
# retries would multiply both).
@task(cache_policy=NO_CACHE)
def land_ibge(
    lake: Lake, source: IbgeSource, entity: Entity, ingestion_date: str, parent: Orchestrator | None = None
) -> IbgeLanded:
    """Fetch one endpoint and commit it unchanged as the entity's raw unit of that date."""
    landed = land_ibge_endpoint(lake, source, entity, ingestion_date)
    lineage.emit_committed(lake, landed.manifest, parent)
    get_run_logger().info(
        "ibge/%s: %d records from %s (%s, %d attempt(s))",
        entity, landed.records, landed.source, landed.url, landed.attempts,
    )  # fmt: skip
    return landed


@flow(name="ingest_ibge", flow_run_name=dated("ingest_ibge"), log_prints=True)
def ingest_ibge(
    ingestion_date: dt.date | None = None, settings: ParentSettings = None, parent: ParentRun = None
) -> dict[str, int]:
    """IBGE regiões, mesorregiões and microrregiões into the raw zone, the three endpoints concurrently.

    Args:
        ingestion_date: The ingestion date to load (a calendar date, e.g. 2026-11-29); empty means today
            (UTC). A rerun of a date replaces its data, never duplicates it.
        settings: Set by the parent `lakehouse` run only; a run started on its own reads the environment.
        parent: Set by a parent run that runs the next steps itself (no trigger must start them).
    """
    settings = settings or Settings()
    date = lake_date(ingestion_date)
    with one_run_per_date(date, settings):  # a second run of this date waits for this one
        lake, source = Lake(settings), ibge_source(settings, get_run_logger())
        futures = {e: land_ibge.submit(lake, source, e, date, parent) for e in IBGE_ENTITIES}
        return {e: f.result().records for e, f in futures.items()}


@task(cache_policy=NO_CACHE)
def land_pnadc(
    settings: Settings, ingestion_date: str, full_refresh: bool, parent: Orchestrator | None = None
) -> Extraction:
    logger, lake = get_run_logger(), Lake(settings)
    extraction = extract_pnadc(settings, lake, ingestion_date, full_refresh=full_refresh, logger=logger)
    lineage.emit_committed(lake, extraction.manifest, parent)
    m = extraction.manifest
    logger.info(
        "pnadc %s: %d documents (%s, _id %s → %s), reconciled with the source",
        ingestion_date, m["records"], m["mode"], m["watermark_from"], m["watermark_to"],
    )  # fmt: skip
    return extraction


@flow(name="ingest_pnadc", flow_run_name=dated("ingest_pnadc"))
def ingest_pnadc(
    ingestion_date: dt.date | None = None,
    full_refresh: bool = False,
    settings: ParentSettings = None,
    parent: ParentRun = None,
) -> int:
    """PNAD Contínua from MongoDB into the raw zone: streamed, resumable, reconciled.

    Args:
        ingestion_date: The ingestion date to load (a calendar date, e.g. 2026-11-29); empty means today
            (UTC). A rerun of a date replaces its data, never duplicates it.
        full_refresh: Extract the whole collection (an authoritative snapshot) instead of only the
            documents after the last committed `_id`.
        settings: Set by the parent `lakehouse` run only; a run started on its own reads the environment.
        parent: Set by a parent run that runs the next steps itself (no trigger must start them).
    """
    settings = settings or Settings()
    date = lake_date(ingestion_date)
    with one_run_per_date(date, settings):
        return int(land_pnadc(settings, date, full_refresh, parent).manifest["records"])


# --- transform -------------------------------------------------------------------------------
# One retry: a step is idempotent (it commits a new run or nothing), and on Kubernetes the retry
# reattaches to the Job its first attempt started instead of starting a second one.
STEP_RETRY: dict[str, Any] = {"retries": 1, "retry_delay_seconds": 10, "retry_condition_fn": worth_retrying}


@task(cache_policy=NO_CACHE, task_run_name="{step}", **STEP_RETRY)
def spark_step(
    step: str, settings: Settings, ingestion_date: str, parent: Orchestrator | None = None, **flags: str
) -> None:
    ids = {"flow_run_id": str(flow_run.get_id() or "local"), "task_run_id": str(task_run.get_id() or "")}
    with lineage.announcing_step(Lake(settings), step, ingestion_date, parent):  # committed in the driver
        run_step(step, settings, ingestion_date, logger=get_run_logger(), **ids, **flags)


@task(cache_policy=NO_CACHE)
def quality_gate(settings: Settings, lake: Lake, ingestion_date: str) -> GateVerdict:
    verdict = check_quality(settings, lake, ingestion_date)
    rows = verdict.rows()
    create_table_artifact(key="quality-gate", table=rows, description=f"Quality gate, {ingestion_date}")
    for c in verdict.checks:
        get_run_logger().info("%s %s (observed %s)", "PASS" if c.passed else "FAIL", c.name, c.observed)
    emit_gate_verdict(ingestion_date, rows)  # a failed gate alerts (flows/ops/automations.yaml)
    verdict.enforce()
    return verdict


@flow(name="transform", flow_run_name=dated("transform"))
def transform(
    ingestion_date: dt.date | None = None,
    settings: ParentSettings = None,
    parent: ParentRun = None,
    dimensions_done: Annotated[bool | None, FromParent] = None,
) -> Transformed:
    """raw → processing (typed, quarantined) → quality gate → consumer (target public, dimensions).

    Args:
        ingestion_date: The ingestion date whose raw batches to transform (a calendar date, e.g.
            2026-11-29); empty means today (UTC).
        settings: Set by the parent `lakehouse` run only; a run started on its own reads the environment.
        parent: Set by a parent run that runs the next steps itself (no trigger must start them).
        dimensions_done: Set by the parent `lakehouse` run only: it ran ibge_to_processing for the date
            while MongoDB streamed; a run started on its own runs every step.
    """
    settings = settings or Settings()
    date, lake = lake_date(ingestion_date), Lake(settings)
    with one_run_per_date(date, settings):
        transformed = transforming.transform(
            settings,
            lake,
            date,
            run_step=lambda step: spark_step(step, settings, date, parent),
            check_gate=lambda: quality_gate(settings, lake, date),
            dimensions_done=bool(dimensions_done),
        )
    get_run_logger().info("Records per zone:\n%s", format_counts(transformed.counts))
    return transformed


# --- publish and answer ----------------------------------------------------------------------
@flow(name="publish", flow_run_name=started("publish"))
def publish(
    ingestion_date: dt.date | None = None, settings: ParentSettings = None, parent: ParentRun = None
) -> dict[str, int]:
    """Declare the consumer tables for the query engine: Glue tables for Athena, a DuckDB file locally.

    Args:
        ingestion_date: The date whose commit started this run (a trigger sets it, e.g. 2026-11-29).
        settings: Set by the parent `lakehouse` run only; a run started on its own reads the environment.
        parent: Set by a parent run that runs the next steps itself (no trigger must start them).
    """
    settings = settings or Settings()
    lake = Lake(settings)
    published = publishing.publish(settings, lake)
    if published.glue_tables:
        glue_artifacts(settings, lake, published.glue_tables)
    else:
        get_run_logger().info("Published %s", published.records)
    lineage.emit_published(lake, settings, published.records, parent)
    return published.records


@flow(name="answer", flow_run_name=started("answer"))
def answer(
    ingestion_date: dt.date | None = None,
    settings: ParentSettings = None,
    transformed: Annotated[Transformed | None, FromParent] = None,
) -> answering.Answered:
    """Run the ten question SQL files; keep the answers, each query's cost and a report (lake + artifacts).

    Args:
        ingestion_date: The date whose commit started this run (a trigger sets it, e.g. 2026-11-29).
        settings: Set by the parent `lakehouse` run only; a run started on its own reads the environment.
        transformed: Set by the parent `lakehouse` run only: its zone counts and gate verdict, for the
            report; a run started on its own reads them from the lake.
    """
    settings = settings or Settings()
    counts, gate = (transformed.counts, transformed.gate) if transformed else (None, None)
    run_id = str(flow_run.get_id() or "")
    answered = answering.answer(settings, Lake(settings), run_id, counts=counts, gate=gate)
    get_run_logger().info("Report: %s", answered.report_path)
    create_table_artifact(
        key="answers",
        table=answers_table(answered.rows, answered.queries),
        description="The ten answers, the rows behind each, and what each query cost",
    )
    create_markdown_artifact(
        key="answers-summary",
        markdown=markdown_summary(answered.rows, answered.queries, answered.report_path),
        description="Answers",
    )
    return answered


# --- the whole lakehouse ---------------------------------------------------------------------
@flow(name="lakehouse", flow_run_name=dated("lakehouse"))
def lakehouse(
    rows: SeedRows | None = None,
    seed: Seed | None = None,
    ingestion_date: dt.date | None = None,
    full_refresh: bool = False,
    settings: ParentSettings = None,
) -> RunSummary:
    """Ingest both sources → transform → publish → answer. Without a MongoDB URI, uses an embedded one
    (stopped once the stream is done).

    Args:
        rows: Documents to generate into the embedded MongoDB (only without VAMOSJUNTOS_MONGO_URI);
            empty means the settings' default.
        seed: Random seed of the generated documents (only without VAMOSJUNTOS_MONGO_URI); empty means
            the settings' default.
        ingestion_date: The ingestion date to load (a calendar date, e.g. 2026-11-29); empty means today
            (UTC). A rerun of a date replaces its data, never duplicates it.
        full_refresh: Extract the whole PNAD collection (an authoritative snapshot: what the source no
            longer holds leaves the consumer) instead of only the new documents.
        settings: Set by a caller in the same process (the CLI, a test); a run started from a deployment
            reads the environment.
    """
    settings = settings or Settings()
    date = lake_date(ingestion_date)
    if settings.mongo_uri is not None:
        return _lakehouse(settings, date, full_refresh)
    with embedded_mongo(
        settings.local_mongo_path,
        settings.mongo_database,
        settings.mongo_collection,
        rows if rows is not None else settings.seed_rows,
        seed if seed is not None else settings.seed,
        get_run_logger() if FlowRunContext.get() else None,  # `.fn`: says a missing stand-in first
    ) as server:
        settings = settings.model_copy(update={"mongo_uri": SecretStr(server.uri)})
        stop = partial(stop_after_stream, server, get_run_logger())
        return _lakehouse(settings, date, full_refresh, after_stream=stop)


def _lakehouse(
    settings: Settings, date: str, full_refresh: bool = False, after_stream: Callable[[], None] | None = None
) -> RunSummary:
    parent = Orchestrator.this_run("lakehouse")  # it runs the steps in order: no trigger must start them
    with (
        one_run_per_date(date, settings),  # subflows: inside its slot
        warming_spark(settings, get_run_logger()),  # local mode: the JVM starts while MongoDB streams
    ):
        ingest_ibge(date, settings=settings, parent=parent)
        beside = alongside_stream(settings)  # the IBGE dimensions, while MongoDB streams (on Kubernetes)
        with alongside(lambda: spark_step.submit(IBGE_TO_PROCESSING, settings, date, parent), when=beside):
            ingest_pnadc(date, full_refresh=full_refresh, settings=settings, parent=parent)
        if after_stream:  # nothing after the stream reads MongoDB: the embedded server's memory goes to Spark
            after_stream()
        transformed = transform(date, settings=settings, parent=parent, dimensions_done=beside)
        publish(settings=settings, parent=parent)
        answered = answer(settings=settings, transformed=transformed)
    return RunSummary(date, transformed.counts, transformed.gate, answered.answers, answered.report_path)
