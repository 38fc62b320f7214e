"""Prefect as `vamosjuntos run` uses it in its own process: no heartbeat threads, the server started early.

Against real Prefect servers: the session's test server, and a temporary (ephemeral) one of our own.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from prefect import flow
from prefect.runtime import flow_run
from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from flows.in_process import TemporaryServer, flow_settings

HEARTBEAT = "prefect.flow-run.heartbeat"


@flow
def tiny() -> str:
    return str(flow_run.get_id())


def _heartbeats(flow_run_id: str) -> list[dict[str, Any]]:
    query = {
        "filter": {"event": {"name": [HEARTBEAT]}, "resource": {"id": [f"prefect.flow-run.{flow_run_id}"]}},
        "limit": 5,
    }
    return httpx.post(f"{PREFECT_API_URL.value()}/events/filter", json=query, timeout=30).json()["events"]


def _until_heartbeat(flow_run_id: str, timeout_s: float = 120) -> None:
    """The server stores events in batches: wait until it holds this run's heartbeat."""
    deadline = time.monotonic() + timeout_s
    while not _heartbeats(flow_run_id):
        if time.monotonic() > deadline:
            raise AssertionError(f"the server never recorded a heartbeat of flow run {flow_run_id}")
        time.sleep(0.5)


def test_flows_run_here_send_no_heartbeats_unless_the_user_asks(prefect_harness: None) -> None:
    with flow_settings():
        quiet = tiny()
    with flow_settings(), temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 60}):
        asked = tiny()  # the user's own setting wins
    beating = tiny()  # Prefect's default: a heartbeat when the run starts
    # One process sends its events in order over one connection: once the later runs' heartbeats are
    # stored, the earlier run's would be too.
    _until_heartbeat(asked)
    _until_heartbeat(beating)
    assert _heartbeats(quiet) == []


def test_the_temporary_server_cases_in_an_interpreter_of_their_own() -> None:
    """tests/in_process_isolated.py starts and stops the temporary server, which points this process's
    environment and Prefect's global settings at it while it runs: here, the session's test server's
    settings would be in its way and every later test would see its environment."""
    cases = Path(__file__).with_name("in_process_isolated.py")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(cases)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0 and "8 passed" in done.stdout, done.stdout[-4000:] + done.stderr[-2000:]


def test_nothing_starts_when_a_server_is_named(prefect_harness: None) -> None:
    server = TemporaryServer().start()
    server.wait()
    assert server.process is None and server.api_url is None
