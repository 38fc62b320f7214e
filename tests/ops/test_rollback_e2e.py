"""Undo a bad load end to end (SecantusDB, the IBGE stand-in, Spark local, DuckDB, a Prefect test server):
a good run, a bad run that changes the answers, `vamosjuntos rollback publico_alvo`, and the answers are
the good run's again; the rollback leaves an event and an artifact saying who did what."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from pymongo import MongoClient

from flows.answers import load_latest
from flows.cli import main
from flows.lake import Lake
from flows.layout import DUCKDB_FILE
from flows.ops.rollback_flow import ROLLED_BACK
from flows.pipeline import lakehouse
from flows.sources.local_mongo_seed import seed

ROWS = 2_000
GOOD, BAD = "2026-11-24", "2026-11-25"


def _bad_documents(count: int) -> list[dict[str, Any]]:
    """Women of the target public in Paraná with an income within the contract's range but absurd: the gate
    lets them through, the answers change."""
    doc = {"ano": 2020, "trimestre": 3, "uf": "Paraná", "sexo": "Mulher", "idade": 30, "cor": "Branca",
           "trab": "Pessoas na força de trabalho", "ocup": "Pessoas ocupadas", "renda": 9_000_000.0,
           "horastrab": 40.0, "anosesco": 12.0}  # fmt: skip
    return [{"_id": ObjectId(), **doc} for _ in range(count)]


async def _rollback_traces(table: str) -> tuple[list[Any], list[dict[str, Any]]]:
    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[f"rollback-{table.replace('_', '-')}"])
            )
        )
        response = await client._client.post(
            "/events/filter", json={"filter": {"event": {"name": [ROLLED_BACK]}}, "limit": 10}
        )
        response.raise_for_status()
        return artifacts, response.json()["events"]


@pytest.mark.integration
def test_rollback_after_a_bad_load_gives_back_the_answers_from_before_it(
    prefect_harness: None,
    mongo_server: Any,
    ibge_server: Any,
    settings_for: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed(mongo_server.uri, "ibge", "pnadc20203", ROWS, 7)
    settings = settings_for(mongo_uri=mongo_server.uri, ibge_base_url=ibge_server.base_url)
    lake = Lake(settings)
    good = lakehouse(ingestion_date=GOOD, settings=settings).answer_rows
    good_run = lake.manifest("consumer", "publico_alvo")["run_id"]
    MongoClient(mongo_server.uri)["ibge"]["pnadc20203"].insert_many(_bad_documents(40))
    bad = lakehouse(ingestion_date=BAD, settings=settings).answer_rows
    bad_run = lake.manifest("consumer", "publico_alvo")["run_id"]
    assert bad[0]["answer"] != good[0]["answer"]  # the bad load moved the average income

    for key, value in {"LAKE_ROOT": settings.lake_root, "MONGO_URI": mongo_server.uri}.items():
        monkeypatch.setenv(f"VAMOSJUNTOS_{key}", value)
    # A rollback stopped between its swap and the catalog's republishing (here: the local catalog cannot
    # be opened) leaves the lake rolled back and the catalog on the bad run...
    catalog = Path(lake.path("consumer", DUCKDB_FILE))
    stale = catalog.rename(catalog.with_name("stale.duckdb"))
    catalog.mkdir()
    assert main(["rollback", "publico_alvo"]) == 1
    assert lake.manifest("consumer", "publico_alvo")["run_id"] == good_run
    [error] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert "is rolled back in the lake, but the catalog or the answers did not follow (" in error
    assert "run `vamosjuntos rollback publico_alvo` again, it finishes the rollback" in error
    catalog.rmdir()
    stale.rename(catalog)
    capsys.readouterr()
    # ... and the same command finishes it instead of refusing it as "already a rollback".
    assert main(["rollback", "publico_alvo"]) == 0
    out = capsys.readouterr().out
    assert f"consumer/publico_alvo: rolled back from run {bad_run} to run {good_run}" in out
    assert "(not recorded as carried through: finished now by " in out
    assert lake.manifest("consumer", "publico_alvo")["run_id"] == good_run
    assert load_latest(lake)["answers"] == good  # answered again, on the good run: as before the bad load

    # A second rollback without a run named refuses, in one line, and changes nothing.
    assert main(["rollback", "publico_alvo"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "is already a rollback" in errors[0] and "--to RUN_ID" in errors[0]
    assert main(["rollback", "pessoas"]) == 1
    assert "error: unknown table 'pessoas'" in capsys.readouterr().err
    assert lake.manifest("consumer", "publico_alvo")["run_id"] == good_run

    deadline = time.monotonic() + 30
    while True:  # events reach the server asynchronously
        artifacts, events = asyncio.run(_rollback_traces("publico_alvo"))
        if events or time.monotonic() > deadline:
            break
        time.sleep(1)
    [artifact] = artifacts  # the failed attempt stopped before it: the run that finished the rollback
    assert bad_run in artifact.data and good_run in artifact.data and "By **" in artifact.data
    assert "finished that rollback: it had not been recorded as carried through" in artifact.data
    [event] = events
    assert event["resource"]["prefect.resource.id"] == "vamosjuntos.table.consumer.publico_alvo"
    assert event["payload"]["from_run_id"] == bad_run and event["payload"]["to_run_id"] == good_run
    assert event["payload"]["by"]  # who: the OS user and host
    roles = {r["prefect.resource.role"]: r["prefect.resource.id"] for r in event["related"]}
    assert roles["from"] == f"vamosjuntos.run.{bad_run}" and roles["to"] == f"vamosjuntos.run.{good_run}"
    assert roles.get("flow-run", "").startswith("prefect.flow-run.")  # added by Prefect: the rollback's run
