"""Settings travel from a parent flow to its subflows as a parameter (flows/pipeline.py): Prefect stores a
subflow's parameters on its server, so the secret in them (the MongoDB URI's password) must reach the API
masked, while the subflow, in-process, gets the real settings; and no run form offers them to a person."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, LogFilter, LogFilterFlowRunId

from flows import pipeline
from flows.lake import Lake
from flows.ops.backfill_flow import backfill
from flows.ops.rollback_flow import rollback
from flows.settings import Settings

DATE = "2026-11-29"
PASSWORD = "Sup3r-S3cret-PW"


def test_a_subflow_gets_the_settings_and_the_api_only_their_masked_form(
    prefect_harness: None, settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for(ibge_source="snapshot", mongo_uri=f"mongodb://vj:{PASSWORD}@127.0.0.1:1/")
    received: list[Settings] = []

    @flow
    def probe(settings: pipeline.ParentSettings = None) -> None:
        received.append(settings)  # type: ignore[arg-type]

    @flow(name="parent_of_subflows")
    def parent(settings: pipeline.ParentSettings = None) -> dict[str, int]:
        probe(settings=settings)
        return pipeline.ingest_ibge(DATE, settings=settings)

    state = parent(settings=settings, return_state=True)
    assert state.result()["regioes"] == 5  # the subflow ran on the parent's lake...
    assert Lake(settings).manifest("raw", f"ibge/regioes/ingestion_date={DATE}") is not None
    assert received == [settings]  # ...and a subflow gets the object itself, secret included
    assert received[0].mongo_uri.get_secret_value().count(PASSWORD) == 1  # type: ignore[union-attr]

    async def stored() -> tuple[list[dict[str, object]], str]:
        async with get_client() as client:
            parent_run = await client.read_flow_run(state.state_details.flow_run_id)
            tracking = [t for t in await client.read_task_runs() if t.flow_run_id == parent_run.id]
            children = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_task_run_id={"any_": [t.id for t in tracking]})
            )
            runs = [parent_run, *children]
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[r.id for r in runs])), limit=200
            )
        dumped = json.dumps([r.model_dump(mode="json") for r in [*runs, *tracking]])
        return [r.parameters for r in runs], dumped + "\n".join(m.message for m in logs)

    deadline = time.monotonic() + 20  # logs reach the API in batches, in the background
    while "ibge/regioes: 5 records" not in (stored_text := asyncio.run(stored())[1]):
        assert time.monotonic() < deadline, "the subflow's logs never reached the API"
        time.sleep(0.5)
    params, text = asyncio.run(stored())
    assert len(params) == 3  # the parent, the probe and ingest_ibge
    for p in params:
        assert p["settings"]["mongo_uri"] == "**********"
        assert p["settings"]["lake_root"] == settings.lake_root
    assert PASSWORD not in text and PASSWORD not in stored_text


def test_no_run_form_offers_settings() -> None:
    """A deployment's form admits only null for them: a run started from the UI reads the environment."""
    for f in (pipeline.lakehouse, pipeline.ingest_ibge, pipeline.ingest_pnadc, pipeline.transform,
              pipeline.publish, pipeline.answer, backfill, rollback):  # fmt: skip
        schema = f.parameters.model_dump()["properties"]
        assert {k: v for k, v in schema["settings"].items() if k in ("type", "anyOf", "$ref")} == {
            "type": "null"
        }
        assert "environment" in schema["settings"]["description"]
    for f in (pipeline.ingest_ibge, pipeline.ingest_pnadc, pipeline.transform, pipeline.publish):
        parent = f.parameters.model_dump()["properties"]["parent"]  # set by `lakehouse` or `rollback` only
        assert {k: v for k, v in parent.items() if k in ("type", "anyOf", "$ref")} == {"type": "null"}
