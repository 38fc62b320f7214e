"""Which deployment a commit starts, decided as the Prefect server decides it: the triggers declared in
prefect.yaml, as the server's own trigger model, against the events our code builds from real commits in a
real lake, inside and outside a `lakehouse` run. (tests/ops/test_lineage.py proves it end to end.)"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.server.events.schemas.automations import EventTrigger
from prefect.server.events.schemas.events import ReceivedEvent

from flows import layout
from flows.lake import Lake
from flows.ops import lineage
from flows.settings import Settings
from tests.k8s.conftest import REPO

DATE = "2026-11-29"


def declared_triggers() -> dict[str, EventTrigger]:
    """{deployment: its trigger, as the server's model} from prefect.yaml."""
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    found = {}
    for deployment in spec["deployments"]:
        for trigger in deployment.get("triggers", []):
            declared = DeploymentEventTrigger.model_validate(trigger)
            fields = (
                "match",
                "match_related",
                "after",
                "expect",
                "for_each",
                "posture",
                "threshold",
                "within",
            )
            found[deployment["name"]] = EventTrigger.model_validate(declared.model_dump(include=set(fields)))
    return found


def started_by(event: dict[str, Any]) -> set[str]:
    received = ReceivedEvent(
        occurred=dt.datetime.now(dt.UTC),
        event=event["event"],
        resource=event["resource"],
        related=event["related"],
        payload=event["payload"],
        id=uuid.uuid4(),
    )
    return {name for name, trigger in declared_triggers().items() if trigger.covers(received)}


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(Settings(lake_root=str(tmp_path)))


def commit(lake: Lake, zone: layout.Zone, unit: str, **extra: Any) -> dict[str, Any]:
    staging = lake.stage(zone, unit)
    with staging.open("part.json") as fh:
        fh.write(b"[]")
    staging.add_file("part.json", records=0)
    return lake.commit(staging, **extra)


def test_the_declared_triggers_and_the_deployments_they_start() -> None:
    assert set(declared_triggers()) == {"transform", "publish", "answer"}


def test_a_step_run_alone_starts_the_next_and_a_lakehouse_run_starts_nothing(lake: Lake) -> None:
    raw = commit(lake, "raw", layout.raw_pnadc(DATE))
    processing = commit(lake, "processing", layout.processing(layout.PNADC, DATE), raw_run_id=raw["run_id"])
    commit(lake, "processing", layout.processing(layout.UFS, DATE), raw_run_id="r1")
    commit(lake, "processing", layout.processing("regioes", DATE), raw_run_id="r2")
    fact = commit(lake, "consumer", layout.PUBLICO_ALVO, ingestion_date=DATE, processing_dates=[DATE])
    dimension = commit(lake, "consumer", "regioes", ingestion_date=DATE)
    tables = {layout.PUBLICO_ALVO: 0, "regioes": 0}

    def events(by: lineage.Orchestrator | None = None) -> list[dict[str, Any]]:
        return [
            *(lineage.committed_event(lake, m, by) for m in (raw, processing, fact, dimension)),
            lineage.published_event(lake, "duckdb", tables, by),
        ]

    alone = events()
    assert [started_by(e) for e in alone] == [{"transform"}, set(), {"publish"}, set(), {"answer"}]
    inside = events(lineage.Orchestrator("lakehouse", "f00d"))
    assert [started_by(e) for e in inside] == [set()] * 5
    assert {e["resource"][lineage.ORCHESTRATED_BY] for e in inside} == {"lakehouse"}
    parent = {"prefect.resource.id": "prefect.flow-run.f00d", "prefect.resource.role": "lakehouse"}
    assert all(e["related"][-1] == parent for e in inside)
    # Each carries the date the trigger passes on, and names what it read, at the run it read.
    assert {e["resource"]["vamosjuntos.ingestion_date"] for e in alone} == {DATE}
    assert alone[1]["related"] == [
        {
            "prefect.resource.id": f"vamosjuntos.unit.raw.pnadc.{DATE}",
            "prefect.resource.role": "input",
            "prefect.resource.name": f"raw/pnadc {DATE}",
            "vamosjuntos.run_id": raw["run_id"],
        }
    ]
    fact_inputs = {r["prefect.resource.id"]: r["vamosjuntos.run_id"] for r in alone[2]["related"]}
    assert fact_inputs == {
        f"vamosjuntos.unit.processing.pnadc.{DATE}": processing["run_id"],
        f"vamosjuntos.unit.processing.ufs.{DATE}": lake.manifest(
            "processing", layout.processing("ufs", DATE)
        )["run_id"],
    }
    assert alone[2]["payload"]["bytes"] == 2 and alone[2]["payload"]["records"] == 0


def test_a_step_commits_are_announced_even_when_it_fails(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(lineage, "emit_event", lambda **event: sent.append(event))
    before = commit(lake, "processing", layout.quarantine(layout.PNADC, DATE), raw_run_id="r0")
    with pytest.raises(RuntimeError), lineage.announcing_step(lake, "pnadc_to_processing", DATE):
        commit(lake, "processing", layout.quarantine(layout.PNADC, DATE), raw_run_id="r1")
        raise RuntimeError("the step fails after its first commit")
    assert [e["resource"]["vamosjuntos.table"] for e in sent] == ["quarantine.pnadc"]
    assert sent[0]["resource"]["vamosjuntos.run_id"] != before["run_id"]
    # A failed emission loses the event, never the step's result.
    monkeypatch.setattr(lineage, "emit_event", lambda **event: 1 / 0)
    assert lineage.emit_committed(lake, before) is None
