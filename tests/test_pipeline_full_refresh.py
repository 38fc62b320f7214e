"""`vamosjuntos run --full-refresh` reaches `ingest_pnadc(full_refresh=True)`; incremental otherwise."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import flows.pipeline as pipeline
from flows import cli
from flows.errors import VamosJuntosError
from flows.settings import Settings
from tests.support.processes import secantus_children
from tests.support.sources import DATE


class _Stop(VamosJuntosError):
    pass


@pytest.mark.parametrize(("argv", "expected"), [(["--full-refresh"], True), ([], False)])
def test_the_cli_flag_reaches_the_lakehouse_flow(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, prefect_harness: None, argv: list[str], expected: bool
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setenv("VAMOSJUNTOS_LAKE_ROOT", str(tmp_path / "lake"))  # the embedded MongoDB's folder too

    def fake_lakehouse(**kwargs: Any) -> list[dict[str, Any]]:
        seen.update(kwargs)
        raise _Stop("stop before running anything")

    monkeypatch.setattr(pipeline, "lakehouse", fake_lakehouse)
    assert cli.main(["run", "--ingestion-date", DATE, *argv]) == 1
    assert seen["full_refresh"] is expected and seen["ingestion_date"] == DATE
    # The embedded MongoDB the command launched ahead, which no flow took, ended with the command.
    assert secantus_children() == []


@pytest.mark.parametrize("full_refresh", [True, False])
def test_the_lakehouse_flow_passes_it_to_ingest_pnadc(
    monkeypatch: pytest.MonkeyPatch,
    settings_for: Callable[..., Settings],
    prefect_harness: None,
    full_refresh: bool,
) -> None:
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
    result = SimpleNamespace(counts=[], gate=None, answers=[], report_path="")  # what the summary reads
    for name in ("ingest_ibge", "ingest_pnadc", "transform", "publish", "answer"):
        monkeypatch.setattr(pipeline, name, lambda *a, _n=name, **k: calls.append((_n, a, k)) or result)
    # On the Kubernetes runner the run submits the IBGE step beside the stream: replaced too (no cluster).
    submitted = SimpleNamespace(result=lambda timeout=None: None)
    fake_step = SimpleNamespace(submit=lambda *a, **k: calls.append(("spark_step", a, k)) or submitted)
    monkeypatch.setattr(pipeline, "spark_step", fake_step)
    # The steps are replaced, so no local Spark session is warmed for them.
    settings = settings_for(mongo_uri="mongodb://127.0.0.1:1/", spark_runner="kubernetes")
    pipeline.lakehouse(ingestion_date=DATE, full_refresh=full_refresh, settings=settings)  # a real flow run
    assert [a[:3] for n, a, _ in calls if n == "spark_step"] == [("ibge_to_processing", settings, DATE)]
    (args, kwargs) = next((a, k) for n, a, k in calls if n == "ingest_pnadc")
    assert args == (DATE,) and kwargs["full_refresh"] is full_refresh and kwargs["settings"] is settings
