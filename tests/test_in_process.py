"""Prefect as `vamosjuntos run` uses it in its own process: no heartbeat threads, the server started early.

Against real Prefect servers: the session's test server, and a temporary (ephemeral) one of our own.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
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


def test_the_temporary_server_started_early_is_the_one_the_flows_use(tmp_path: Path) -> None:
    from prefect.server.api.server import SubprocessASGIServer

    with (
        temporary_settings(updates={"home": tmp_path / "prefect-home"}, restore_defaults={PREFECT_API_URL}),
        flow_settings(),
    ):
        server = TemporaryServer().start()
        try:
            server.wait()
            started = SubprocessASGIServer()  # Prefect's one temporary server of this process
            assert started.running and started.server_process is not None
            pid = started.server_process.pid
            flow_run_id = tiny()
            ran = httpx.get(f"{started.api_url}/flow_runs/{flow_run_id}", timeout=30)
            assert ran.status_code == 200 and ran.json()["state_type"] == "COMPLETED"
            assert SubprocessASGIServer().server_process.pid == pid  # the flow started no second one
        finally:
            SubprocessASGIServer().stop()


def test_nothing_starts_when_a_server_is_named(prefect_harness: None) -> None:
    server = TemporaryServer().start()
    server.wait()
    assert server.error is None and server.thread is None


def test_a_failed_start_is_raised_where_the_run_waits(tmp_path: Path) -> None:
    from prefect.server.api.server import SubprocessASGIServer

    # No time to start in: Prefect's own start-up failure, raised by wait() in the run's thread.
    with temporary_settings(
        updates={"home": tmp_path / "prefect-home", "server.ephemeral.startup_timeout_seconds": 0},
        restore_defaults={PREFECT_API_URL},
    ):
        server = TemporaryServer().start()
        try:
            with pytest.raises(RuntimeError, match="Timed out"):
                server.wait()
        finally:
            SubprocessASGIServer().stop()
