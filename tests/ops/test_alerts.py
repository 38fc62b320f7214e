"""Alerts against a real Prefect server: the project's automations (flows/ops/automations.yaml), applied by
the documented command, notify a real HTTP listener through a Custom Webhook block when our quality gate
fails or one of our flows fails, and only then; runs and deployments as the dashboard shows them."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.ops.automations import declared
from tests.k8s.conftest import REPO, prefect_env

NAMES = ("vamosjuntos-quality-gate-failed", "vamosjuntos-flow-run-failed")


class Listener:
    """A webhook receiver on a free port: every POSTed JSON body lands in `received`."""

    def __init__(self) -> None:
        received: queue.Queue[dict[str, Any]] = queue.Queue()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.put(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                got.append(self.received.get(timeout=0.5))
        return got


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.server.shutdown()
    server.server.server_close()


def run(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr[-3000:]}"
    return done


def automations_named(url: str) -> dict[str, list[dict[str, Any]]]:
    found = httpx.post(f"{url}/automations/filter", json={}, timeout=30).json()
    return {n: [a for a in found if a["name"] == n] for n in NAMES}


def test_the_declared_failed_run_trigger_names_exactly_our_flows() -> None:
    from prefect import Flow

    import flows.pipeline as pipeline
    from flows.ops import backfill_flow, rollback_flow

    modules = (pipeline, backfill_flow, rollback_flow)
    ours = {f.name for m in modules for f in vars(m).values() if isinstance(f, Flow)}
    by_name = {a.name: a for a in declared(notify_block_id=uuid.uuid4())}
    related = by_name["vamosjuntos-flow-run-failed"].trigger.match_related.root  # type: ignore[union-attr]
    assert related["prefect.resource.role"] == "flow"
    assert set(related["prefect.resource.name"]) == ours


def test_a_failed_gate_and_a_failed_run_of_ours_notify_the_webhook(
    prefect_server: str, listener: Listener, tmp_path: Path
) -> None:
    env = prefect_env(tmp_path / "home", prefect_server)
    run(["-m", "flows.ops.automations", "webhook-block", "--url", listener.url], env)

    first = run(["-m", "flows.ops.automations", "apply"], env)
    assert [line.split()[0] for line in first.stdout.splitlines()[:2]] == ["created", "created"]
    # A copy left by `prefect automation create --from-file` run twice is folded away by the next apply.
    copy = automations_named(prefect_server)[NAMES[1]][0]
    keep = {k: copy[k] for k in ("name", "description", "enabled", "trigger", "actions")}
    httpx.post(f"{prefect_server}/automations/", json=keep, timeout=30).raise_for_status()
    second = run(["-m", "flows.ops.automations", "apply"], env)
    assert "1 duplicate(s) removed" in second.stdout
    assert {n: len(a) for n, a in automations_named(prefect_server).items()} == dict.fromkeys(NAMES, 1)

    flow_env = {
        **env,
        "VAMOSJUNTOS_LAKE_ROOT": str(tmp_path / "lake"),
        "VAMOSJUNTOS_IBGE_SOURCE": "snapshot",
    }
    ran = run([str(Path(__file__).with_name("flows_against_server.py"))], flow_env)
    runs = json.loads(ran.stdout.strip().splitlines()[-1])

    alerts = listener.wait_for(2, timeout=90)
    assert len(alerts) == 2, f"expected 2 notifications, got {alerts}"
    # The foreign flow's failure must not notify. Waiting a while for a third notification proves nothing
    # (it could come later); instead the server's own trigger, as applied, is given the server's own record
    # of each failure: it covers our flow's and not the foreign one's.
    failed_run = automations_named(prefect_server)[NAMES[1]][0]
    assert _covers(failed_run, _failed_event(prefect_server, runs["answer"]))
    assert not _covers(failed_run, _failed_event(prefect_server, runs["gate"]))
    alerts += listener.wait_for(1, timeout=1)  # and none came meanwhile
    by_subject = {a["subject"]: a for a in alerts}
    assert set(by_subject) == {
        "vamosjuntos: quality gate failed for 2026-11-29",
        f"vamosjuntos: answer {_run(prefect_server, runs['answer'])['name'].split(' ', 1)[1]} failed",
    }, alerts

    gate = by_subject["vamosjuntos: quality gate failed for 2026-11-29"]["body"]
    assert "Quality gate failed for ingestion date 2026-11-29" in gate
    assert "pnadc/ingestion_date=2026-11-29" in gate  # a failed check, by name
    assert runs["gate"] in gate and _run(prefect_server, runs["gate"])["name"] in gate
    # The link needs the server's PREFECT_UI_URL, which this server lacks: the body says so.
    assert "(no link: set PREFECT_UI_URL on the Prefect server)" in gate

    failed = next(a["body"] for s, a in by_subject.items() if s.startswith("vamosjuntos: answer"))
    assert "of flow answer ended Failed" in failed
    assert runs["answer"] in failed and _run(prefect_server, runs["answer"])["name"] in failed
    assert not any("someone_elses_flow" in a["body"] for a in alerts)

    assert _run(prefect_server, runs["ingest_ibge"])["name"] == "ingest_ibge 2026-11-29"
    # The Custom run form of a deployment: its schema, as the server holds it, has a date and help text.
    deployment = httpx.get(f"{prefect_server}/deployments/{runs['deployment']}", timeout=30).json()
    date = deployment["parameter_openapi_schema"]["properties"]["ingestion_date"]
    assert {"type": "string", "format": "date"} in date["anyOf"]
    assert date["description"].startswith("The ingestion date whose raw batches to transform")


def _failed_event(url: str, flow_run_id: str, timeout_s: float = 120) -> dict[str, Any]:
    """The server's record of a flow run's Failed event (the event persister stores them in batches)."""
    query = {
        "filter": {
            "event": {"name": ["prefect.flow-run.Failed"]},
            "resource": {"id": [f"prefect.flow-run.{flow_run_id}"]},
        },
        "limit": 1,
    }
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = httpx.post(f"{url}/events/filter", json=query, timeout=30).json()["events"]
        if found:
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"the server never recorded flow run {flow_run_id}'s Failed event")


def _covers(automation: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether the automation's trigger fires on the event: the test the server's triggers service makes."""
    from prefect.server.events.schemas.automations import Automation
    from prefect.server.events.schemas.events import ReceivedEvent

    trigger = Automation.model_validate(automation).trigger
    return trigger.covers(ReceivedEvent.model_validate(event))  # type: ignore[union-attr]


def _run(url: str, flow_run_id: str) -> dict[str, Any]:
    return httpx.get(f"{url}/flow_runs/{flow_run_id}", timeout=30).json()


def test_apply_says_what_is_missing(prefect_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.ops.automations import main

    before = httpx.post(f"{prefect_server}/automations/filter", json={}, timeout=30).json()
    with temporary_settings({PREFECT_API_URL: prefect_server}):
        assert main(["apply", "--block", "custom-webhook/nobody-made-me"]) == 2
        assert "no custom-webhook block named 'nobody-made-me'" in capsys.readouterr().err
        assert main(["apply", "--block", "nobody-made-me"]) == 2
        assert "is not written <type slug>/<name>" in capsys.readouterr().err
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert main(["apply"]) == 2
        assert "PREFECT_API_URL is not set" in capsys.readouterr().err
    assert httpx.post(f"{prefect_server}/automations/filter", json={}, timeout=30).json() == before
