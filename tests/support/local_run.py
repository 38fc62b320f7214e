"""One real local `lakehouse` run per test session, shared by the publish and report tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest

from flows.lake import Lake
from flows.services.run import RunSummary
from flows.settings import Settings

RUN_ROWS = 6_000
RUN_DATE = "2026-11-25"


@dataclass(frozen=True)
class LocalRun:
    """A real `lakehouse` run (embedded MongoDB-protocol server, IBGE snapshot, Spark local, DuckDB)."""

    settings: Settings
    lake: Lake
    answers: list[dict[str, Any]]
    summary: RunSummary  # what the `lakehouse` flow returned
    flow_run_id: UUID  # its flow run, as Prefect recorded it


@pytest.fixture(scope="session")
def local_run(prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> LocalRun:
    from flows.pipeline import lakehouse

    root = tmp_path_factory.mktemp("publish-run")
    settings = Settings(
        lake_root=str(root / "lake"),
        ibge_source="snapshot",
        spark_master="local[2]",
        spark_shuffle_partitions=4,
        engine="duckdb",
    )
    state = lakehouse(rows=RUN_ROWS, seed=5, ingestion_date=RUN_DATE, settings=settings, return_state=True)
    summary = state.result()
    return LocalRun(settings, Lake(settings), summary.answer_rows, summary, state.state_details.flow_run_id)
