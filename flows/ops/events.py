"""Events the pipeline emits to Prefect, so automations and the Event Feed can react to what the data did.

Outside a Prefect server (ephemeral mode) emitting is cheap and local: nothing here needs a server.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from prefect.events import emit_event

GATE_PASSED = "vamosjuntos.quality_gate.passed"
GATE_FAILED = "vamosjuntos.quality_gate.failed"


def gate_resource(ingestion_date: str) -> dict[str, str]:
    return {
        "prefect.resource.id": f"vamosjuntos.quality-gate.{ingestion_date}",
        "prefect.resource.name": f"quality gate {ingestion_date}",
    }


def emit_gate_verdict(ingestion_date: str, checks: Sequence[dict[str, Any]]) -> str:
    """One event per gate verdict, the failed checks in its payload (an alert quotes them); returns its name.

    The flow run and task run it happened in are added as related resources by Prefect itself.
    """
    # observed values are whatever a check measured: keep them as JSON would show them
    failed = json.loads(json.dumps([c for c in checks if not c["passed"]], default=str))
    name = GATE_FAILED if failed else GATE_PASSED
    emit_event(
        event=name,
        resource=gate_resource(ingestion_date),
        payload={"ingestion_date": ingestion_date, "checks": len(checks), "failed": failed},
    )
    return name
