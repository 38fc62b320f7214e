"""Prefect's temporary server as `vamosjuntos run` starts it (flows/in_process.py), in a process without
the session's test server: tests/test_in_process.py runs this file in an interpreter of its own."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from prefect import flow
from prefect.runtime import flow_run
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.in_process import TemporaryServer, flow_settings


@flow
def tiny() -> str:
    return str(flow_run.get_id())


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
            # In a session of its own: a signal to the run's process group (Ctrl-C) does not stop it.
            assert os.getsid(pid) == pid != os.getsid(0)
            flow_run_id = tiny()
            ran = httpx.get(f"{started.api_url}/flow_runs/{flow_run_id}", timeout=30)
            assert ran.status_code == 200 and ran.json()["state_type"] == "COMPLETED"
            assert SubprocessASGIServer().server_process.pid == pid  # the flow started no second one
        finally:
            SubprocessASGIServer().stop()


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


def test_a_server_made_before_is_refused_not_used_outside_its_own_session(tmp_path: Path) -> None:
    from prefect.server.api.server import SubprocessASGIServer

    from flows.errors import ConfigurationError

    with temporary_settings(updates={"home": tmp_path / "prefect-home"}, restore_defaults={PREFECT_API_URL}):
        SubprocessASGIServer()  # Prefect's own, made first (as a flow run before TemporaryServer would)
        server = TemporaryServer().start()
        try:
            with pytest.raises(ConfigurationError, match=r"made before flows/in_process\.py could start it"):
                server.wait()
        finally:
            SubprocessASGIServer().stop()
