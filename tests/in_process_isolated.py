"""Prefect's temporary server as `vamosjuntos run` starts it (flows/in_process.py), in a process without
the session's test server: tests/test_in_process.py runs this file in an interpreter of its own, as the
server changes this process's environment and Prefect's global settings while it runs."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from prefect import flow
from prefect.context import refresh_global_settings_context
from prefect.runtime import flow_run
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

from flows.errors import PrefectServerError
from flows.in_process import TEMPORARY_API_URL, TemporaryServer, ephemeral, flow_settings, server_named
from flows.server_launch import EVENT_BATCH, EVENT_BATCH_VARIABLE, _listener, _server_environment


@flow
def tiny() -> str:
    return str(flow_run.get_id())


CHILD_SEES = "from flows.in_process import *; print(PREFECT_API_URL.value(), server_named())"


@pytest.fixture
def prefect_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Prefect's home (its database) in the environment, as a user's own variables are: no API URL."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    for name in ("PREFECT_API_URL", "PREFECT_UI_URL", TEMPORARY_API_URL):
        monkeypatch.delenv(name, raising=False)
    refresh_global_settings_context()
    yield tmp_path / "prefect-home"
    monkeypatch.undo()
    refresh_global_settings_context()


def test_the_flows_run_on_the_temporary_server_started_without_importing_prefects_server(
    prefect_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ephemeral() and PREFECT_API_URL.value() is None
    handed = _record_the_sockets_handed_over(monkeypatch)
    server = TemporaryServer().start()
    try:
        # The socket uvicorn gets turns Nagle's algorithm off for its connections (the next test).
        assert handed and all(handed)
        assert server.process is not None and server.api_url is not None
        pid = server.process.pid
        assert PREFECT_API_URL.value() == server.api_url == os.environ["PREFECT_API_URL"]
        assert not PREFECT_UI_URL.value()  # no links to a UI the temporary server does not serve
        assert not server_named()  # the date lock stays a local flock (flows/date_lock.py)
        child = subprocess.run(
            [sys.executable, "-c", CHILD_SEES],
            capture_output=True,
            text=True,
            check=True,
        )
        assert child.stdout.split() == [server.api_url, "False"]  # in the processes the run starts too
        # In a session of its own: a signal to the run's process group (Ctrl-C) does not stop it.
        assert os.getsid(pid) == pid != os.getsid(0)
        with flow_settings():
            server.wait()
            flow_run_id = tiny()
        ran = httpx.get(f"{server.api_url}/flow_runs/{flow_run_id}", timeout=30)
        assert ran.status_code == 200 and ran.json()["state_type"] == "COMPLETED"
        # Prefect's client started no server of its own, and this process never imported Prefect's server.
        servers = [p.pid for p in psutil.Process().children() if p.pid == pid or "uvicorn" in _command(p)]
        assert servers == [pid]
        assert "prefect.server.api.server" not in sys.modules
        # Prefect's app in ours, which replays a 503 (tests/test_temporary_api.py): the flow ran through it.
        assert "flows.temporary_api:create_app" in _command(psutil.Process(pid))
        # The server keeps its database in this run's Prefect home, and registered no integration's blocks.
        assert (prefect_home / "prefect.db").exists()
        block_types = httpx.post(f"{server.api_url}/block_types/filter", json={}, timeout=30).json()
        assert not [b for b in block_types if b["slug"] in {"aws-credentials", "kubernetes-credentials"}]
    finally:
        server.stop()
    assert not psutil.pid_exists(pid)
    assert PREFECT_API_URL.value() is None  # as it was before
    assert not {"PREFECT_API_URL", "PREFECT_UI_URL", TEMPORARY_API_URL} & os.environ.keys()


SENT = "vamosjuntos.test.sent"  # the events the next test sends


def _stored(api_url: str | None) -> int:
    query = {"filter": {"event": {"name": [SENT]}}, "limit": 50}
    answer = httpx.post(f"{api_url}/events/filter", json=query, timeout=30)
    answer.raise_for_status()
    return len(answer.json()["events"])


def test_the_server_holds_events_past_prefects_batch_and_writes_them_all_when_it_stops(
    prefect_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prefect's persister also writes every 20 events, which collided with the next subflow run's creation
    (flows/in_process.py). Ours writes on its interval only (made long here, so that only the batch could
    write): the events it holds when the run ends must still reach the database as the server stops."""
    sent = 25  # more than Prefect's batch of 20, fewer than ours
    monkeypatch.setenv("PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL", "600")
    server = TemporaryServer().start()
    process = server.process
    try:
        with flow_settings():  # the run's wait for its start (a first start migrates the database)
            server.wait()
        settings = httpx.get(f"{server.api_url}/admin/settings", timeout=30).json()
        assert settings["server"]["services"]["event_persister"]["batch_size"] == EVENT_BATCH > sent
        now = dt.datetime.now(dt.UTC).isoformat()
        events = [
            {
                "id": str(uuid.uuid4()),
                "occurred": now,
                "event": SENT,
                "resource": {"prefect.resource.id": f"vamosjuntos.test.{i}"},
            }
            for i in range(sent)
        ]
        assert httpx.post(f"{server.api_url}/events", json=events, timeout=30).status_code == 204
        time.sleep(1)  # Prefect's batch would have written 20 of them by now
        assert _stored(server.api_url) == 0
    finally:
        server.stop()
    assert process is not None and process.returncode in (0, -signal.SIGTERM), process  # not killed
    query = "SELECT count(*) FROM events WHERE event = ?"
    with contextlib.closing(sqlite3.connect(prefect_home / "prefect.db")) as db:
        assert db.execute(query, (SENT,)).fetchone() == (sent,)


def test_the_users_own_event_batch_wins(prefect_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _server_environment({})[EVENT_BATCH_VARIABLE] == str(EVENT_BATCH)
    monkeypatch.setenv(EVENT_BATCH_VARIABLE, "7")
    assert _server_environment({})[EVENT_BATCH_VARIABLE] == "7"


def _command(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.NoSuchProcess:  # a child that ended between being listed and being read
        return ""


def _record_the_sockets_handed_over(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """TCP_NODELAY of each socket a process is started with (`pass_fds`), as the process will see it."""
    handed: list[int] = []
    popen = subprocess.Popen

    def recording(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        for fd in kwargs.get("pass_fds", ()):
            with socket.socket(fileno=os.dup(fd)) as sock:
                handed.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        return popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", recording)
    return handed


def test_the_socket_handed_to_the_server_turns_nagle_off_for_its_connections() -> None:
    """uvicorn opens a socket it is handed as a Unix one (`fromfd(fd, AF_UNIX, ...)`), so asyncio leaves
    Nagle's algorithm on for its TCP connections: each answer waited for the client's delayed ACK (~40 ms
    a request). TCP_NODELAY on the listening socket reaches every connection it accepts."""
    with _listener() as listener:
        as_uvicorn_opens_it = socket.fromfd(listener.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)
        with as_uvicorn_opens_it, socket.create_connection(listener.getsockname()):
            accepted, _ = as_uvicorn_opens_it.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_a_start_inside_a_settings_context_is_refused_before_anything_starts(
    prefect_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launched: list[Any] = []
    popen = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **kw: launched.append(a) or popen(*a, **kw))
    with flow_settings(), pytest.raises(RuntimeError, match="before entering flow_settings"):
        server = TemporaryServer()
        server.start()
    assert launched == []
    assert server.process is None and server.api_url is None and PREFECT_API_URL.value() is None
    assert not {"PREFECT_API_URL", "PREFECT_UI_URL", TEMPORARY_API_URL} & os.environ.keys()
    assert not [p for p in psutil.Process().children() if "uvicorn" in _command(p)]


def test_a_server_that_does_not_answer_in_time_is_an_error_where_the_run_waits(prefect_home: Path) -> None:
    server = TemporaryServer().start()
    try:
        with (
            temporary_settings(updates={"server.ephemeral.startup_timeout_seconds": 0}),
            pytest.raises(PrefectServerError, match=r"/health with 200 within 0 s \(no answer\)"),
        ):
            server.wait()
    finally:
        server.stop()


def test_a_server_that_stops_while_starting_is_an_error_with_its_exit_code(
    prefect_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_folder = prefect_home.parent / "a-file"
    not_a_folder.write_text("")
    monkeypatch.setenv("PREFECT_HOME", str(not_a_folder))  # no database can be made in it
    refresh_global_settings_context()
    server = TemporaryServer().start()
    try:
        with pytest.raises(
            PrefectServerError, match=r"stopped with exit code [1-9]\d* \(its own error is printed"
        ):
            server.wait()
    finally:
        server.stop()


def test_a_named_server_starts_nothing(prefect_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    refresh_global_settings_context()
    server = TemporaryServer().start()
    server.wait()
    assert server.process is None and server_named() and not ephemeral()
