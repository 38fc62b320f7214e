"""flows/services/quality_gate.py without Prefect: the verdict of a date built by the services, stored
beside the processing zone; a raw batch landed again after the transform fails it."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.errors import QualityGateFailed
from flows.layout import gate_report
from flows.services.ingestion import land_ibge_endpoint
from flows.services.quality_gate import quality_gate
from flows.sources.ibge import SnapshotIbge
from tests.services.conftest import DATE, Built

pytestmark = pytest.mark.integration  # a SecantusDB server and Spark build the lake (conftest.py)


def test_a_consistent_date_passes_and_its_verdict_is_stored(built: Built, tmp_path: Path) -> None:
    settings, lake = built.copy(tmp_path)
    verdict = quality_gate(settings, lake, DATE)
    assert verdict.passed and verdict.ingestion_date == DATE
    names = [c.name for c in verdict.checks]
    assert any("pnadc" in n and "raw = processing + quarantine" in n for n in names)
    assert lake.read_json("processing", gate_report(DATE)) == verdict.as_report()
    assert verdict.rows() == built.transformed.gate.rows()  # the transform's own check saw the same
    verdict.enforce()  # passes: no exception


def test_a_raw_batch_newer_than_its_processing_table_fails_the_gate(built: Built, tmp_path: Path) -> None:
    settings, lake = built.copy(tmp_path)
    land_ibge_endpoint(lake, SnapshotIbge(), "regioes", DATE)  # re-landed, never re-typed
    verdict = quality_gate(settings, lake, DATE)
    assert not verdict.passed
    failed = [c.name for c in verdict.checks if not c.passed]
    assert failed == [f"regioes/ingestion_date={DATE}: built from the current raw batch"]
    assert lake.read_json("processing", gate_report(DATE))["passed"] is False
    with pytest.raises(QualityGateFailed, match="built from the current raw batch"):
        verdict.enforce()
