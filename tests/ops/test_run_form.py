"""The "Custom run" form a person fills: every flow parameter typed and described in the schema Prefect
sends to the server (a date as a date picker), and run names that say what a run does."""

from __future__ import annotations

import datetime as dt

import pytest
from prefect import Flow

import flows.pipeline as pipeline
from flows.ops import backfill_flow, rollback_flow
from flows.ops.run_names import dated_name

FLOWS = list(
    {
        id(f): f
        for m in (pipeline, backfill_flow, rollback_flow)
        for f in vars(m).values()
        if isinstance(f, Flow)
    }.values()
)


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.name)
def test_every_parameter_is_described_and_a_date_is_a_date(flow: Flow) -> None:
    schema = flow.parameters.model_dump()["properties"]
    for name, prop in schema.items():
        assert prop.get("description"), f"{flow.name}.{name} has no description"
        if name in ("start", "end"):  # a backfill's range: required dates
            assert (prop["type"], prop["format"]) == ("string", "date")
        if name == "ingestion_date":
            assert {"type": "string", "format": "date"} in prop["anyOf"]
            assert "2026-11-29" in prop["description"]


def test_the_date_parameters_cover_every_dated_flow() -> None:
    dated_flows = {f.name for f in FLOWS if "ingestion_date" in f.parameters.properties}
    # publish and answer take the date a deployment trigger passes on (prefect.yaml), to be named by it
    assert dated_flows == {"lakehouse", "ingest_ibge", "ingest_pnadc", "transform", "publish", "answer"}


def test_a_run_is_named_after_its_flow_and_date() -> None:
    assert dated_name("transform", dt.date(2026, 11, 29)) == "transform 2026-11-29"
    assert dated_name("transform", "2026-11-28") == "transform 2026-11-28"  # as a deployment run sends it
    assert dated_name("lakehouse", None) == f"lakehouse {dt.datetime.now(dt.UTC).date().isoformat()}"
    assert dated_name("lakehouse", "../x") == "lakehouse '../x'"  # the run then fails with the date's error
