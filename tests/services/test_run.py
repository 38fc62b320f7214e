"""The `lakehouse` run's summary (flows/services/run.py) is what the run left in the lake: the CLI prints it
and the report shows it without reading the lake again, so it must not differ from what a reader finds."""

from __future__ import annotations

import pytest

from flows.answers import load_latest
from flows.layout import gate_report
from flows.report.store import location
from flows.summary import zone_counts
from tests.support.local_run import RUN_DATE, LocalRun

pytestmark = pytest.mark.integration  # a whole local run: SecantusDB, a Prefect server, Spark


def test_the_summary_is_what_the_run_committed(local_run: LocalRun) -> None:
    summary, lake = local_run.summary, local_run.lake
    assert summary.ingestion_date == RUN_DATE
    assert summary.counts == zone_counts(lake, RUN_DATE)
    assert all(c["records"] is not None for c in summary.counts)
    assert summary.gate.passed and summary.gate.as_report() == lake.read_json(
        "processing", gate_report(RUN_DATE)
    )
    assert summary.answer_rows == load_latest(lake)["answers"]
    assert summary.report_path == location(lake)
