"""The whole lakehouse against real servers, checked against an independent pandas computation."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, LogFilter, LogFilterFlowRunId, TaskRunFilter
from prefect.client.schemas.objects import FlowRun, StateType, TaskRun
from pymongo import MongoClient

from flows.lake import Lake
from flows.layout import IBGE_TO_PROCESSING, SPARK_STEPS
from flows.pipeline import lakehouse
from flows.sources.local_mongo_seed import seed
from flows.spark.warmup import latest_warm_up
from tests.support import reference
from tests.support.local_run import LocalRun

ROWS = 20_000
DATE = "2026-11-25"


def _children(flow_run_id: UUID) -> tuple[list[TaskRun], dict[str, FlowRun]]:
    """A flow run's own task runs, and its subflow runs by flow name."""
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(task_run_filter=TaskRunFilter(flow_run_id={"any_": [flow_run_id]}))
        subflows = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_task_run_id={"any_": [t.id for t in tasks]})
        )
        flows = {f.id: f.name for f in client.read_flows()}
    return tasks, {flows[r.flow_id]: r for r in subflows}


def _assert_the_steps_ran_one_after_the_other(lakehouse_run: UUID) -> None:
    """Local mode: the stream has the machine's cores, so ibge_to_processing is not run beside it
    (flows/spark/alongside.py): `transform` runs the three steps, the `lakehouse` run none itself."""
    tasks, subflows = _children(lakehouse_run)
    assert not [t for t in tasks if t.name in SPARK_STEPS]
    transform_tasks, _ = _children(subflows["transform"].id)
    steps = sorted((t for t in transform_tasks if t.name in SPARK_STEPS), key=lambda t: t.start_time)
    assert [t.name for t in steps] == list(SPARK_STEPS)
    assert all(t.state_type == StateType.COMPLETED for t in steps)
    assert steps[0].start_time > subflows["ingest_pnadc"].end_time


@pytest.mark.integration
def test_the_embedded_mongodb_stops_once_the_stream_is_done(local_run: LocalRun) -> None:
    """Without a MongoDB URI the run starts the embedded server, and stops it as soon as `ingest_pnadc`
    ends (nothing after it reads MongoDB): its memory is free before the Spark steps. The run's log says
    so, with what it held, between the stream's end and the Spark steps' start as Prefect recorded them."""
    _, subflows = _children(local_run.flow_run_id)
    deadline = time.monotonic() + 20  # logs reach the API in batches, in the background
    while True:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[local_run.flow_run_id])))
        said = [
            log for log in logs if log.message.startswith("The embedded MongoDB stopped after the stream")
        ]
        if said or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(said) == 1 and re.search(r"the [\d,]+ MB it held are free", said[0].message), said
    ingested, transformed = subflows["ingest_pnadc"], subflows["transform"]
    assert ingested.end_time is not None and transformed.start_time is not None
    assert ingested.end_time <= said[0].timestamp <= transformed.start_time


@pytest.mark.integration
def test_lakehouse_answers_match_pandas_and_rerun_is_idempotent(
    prefect_harness: None, mongo_server: Any, ibge_server: Any, settings_for: Any
) -> None:
    seed(mongo_server.uri, "ibge", "pnadc20203", ROWS, 7)
    docs = list(MongoClient(mongo_server.uri)["ibge"]["pnadc20203"].find({}))
    expected = reference.answers(docs)
    settings = settings_for(
        mongo_uri=mongo_server.uri, ibge_base_url=ibge_server.base_url, mongo_batch_size=6_000
    )

    state = lakehouse(ingestion_date=DATE, settings=settings, return_state=True)
    first = state.result().answer_rows
    reference.assert_answers_match(first, expected)
    assert expected[6] == (None, 0)  # the consumer zone holds no men: "no data", not 0

    lake = Lake(settings)
    raw = lake.manifest("raw", f"pnadc/ingestion_date={DATE}")
    assert raw["records"] == ROWS and raw["source_count"] == ROWS
    # Local mode: Spark's JVM was asked for before MongoDB streamed, and the first step took that session.
    warm = latest_warm_up()
    assert warm is not None and warm.taken and warm.future.exception() is None
    assert warm.requested_at < dt.datetime.fromisoformat(raw["started_at"]).timestamp()
    assert {lake.manifest("raw", f"ibge/{e}/ingestion_date={DATE}")["source"] for e in ("regioes",)} == {
        "api"
    }
    consumer_rows = lake.manifest("consumer", "publico_alvo")["records"]
    assert consumer_rows == expected[1][1]

    _assert_the_steps_ran_one_after_the_other(state.state_details.flow_run_id)

    second = lakehouse(ingestion_date=DATE, settings=settings).answer_rows
    assert second == first
    assert lake.manifest("raw", f"pnadc/ingestion_date={DATE}")["records"] == ROWS
    assert lake.manifest("consumer", "publico_alvo")["records"] == consumer_rows
    assert lake.partitions("raw", "pnadc") == [DATE]


@pytest.mark.integration
def test_a_failed_ibge_step_fails_the_run_with_nothing_half_written(
    prefect_harness: None, mongo_server: Any, ibge_server: Any, settings_for: Any
) -> None:
    seed(mongo_server.uri, "ibge", "pnadc20203", 2_000, 7)
    settings = settings_for(mongo_uri=mongo_server.uri, ibge_base_url=ibge_server.base_url)
    blocker = Path(settings.zone_root("processing")) / "regioes"  # a file where the table's folder goes
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")

    state = lakehouse(ingestion_date=DATE, settings=settings, return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match="ibge_to_processing") as failed:
        state.result()
    assert "regioes" in str(failed.value) + "".join(getattr(failed.value, "__notes__", []))
    lake = Lake(settings)
    assert lake.manifest("raw", f"pnadc/ingestion_date={DATE}")["records"] == 2_000  # the stream ended
    assert lake.partitions("processing", "regioes") == [] and blocker.read_text() == "not a folder"
    assert lake.partitions("processing", "pnadc") == [] and lake.manifest("consumer", "publico_alvo") is None
    _, subflows = _children(state.state_details.flow_run_id)
    assert set(subflows) == {"ingest_ibge", "ingest_pnadc", "transform"}  # no publish or answer ran
    transform_tasks, _ = _children(subflows["transform"].id)
    (ibge,) = [t for t in transform_tasks if t.name == IBGE_TO_PROCESSING]
    assert ibge.state_type == StateType.FAILED
