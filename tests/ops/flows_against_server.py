"""Run by the alert tests in a process of its own, pointed at their Prefect server (PREFECT_API_URL).

1. `someone_elses_flow` runs our quality gate on an empty lake: the gate fails (nothing to reconcile),
   emits `vamosjuntos.quality_gate.failed`, and the flow fails; it is not one of ours, so only the gate's
   alert may fire, not the failed-run one.
2. `answer`, ours, fails on an empty lake (no consumer tables): the failed-run alert fires.
3. `ingest_ibge` from the bundled snapshot succeeds: its run is named after its date.
4. `transform` is registered as a deployment (`run-form`), as `prefect deploy` does, for its schema.
Prints one JSON line: {step: flow run or deployment id}.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

from prefect import flow
from prefect.runtime import flow_run

from flows.lake import Lake
from flows.pipeline import answer, ingest_ibge, quality_gate, transform
from flows.settings import Settings

DATE = dt.date(2026, 11, 29)


@flow(name="someone_elses_flow")
def someone_elses_flow() -> None:
    runs["gate"] = str(flow_run.get_id())
    settings = Settings()
    quality_gate(settings, Lake(settings), DATE.isoformat())


runs: dict[str, str] = {}
for name, run in (("gate", someone_elses_flow), ("answer", answer)):
    state = run(return_state=True)
    if not state.is_failed():
        sys.exit(f"{name} was expected to fail, ended {state.type}")
    runs.setdefault(name, str(state.state_details.flow_run_id))
state = ingest_ibge(DATE, return_state=True)
if not state.is_completed():
    sys.exit(f"ingest_ibge was expected to complete, ended {state.type}: {state.message}")
runs["ingest_ibge"] = str(state.state_details.flow_run_id)
runs["deployment"] = str(transform.to_deployment(name="run-form").apply())
print(json.dumps(runs))
