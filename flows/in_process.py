"""How a `vamosjuntos` command runs the flows in its own process (a deployment's flow-run pod does not).

Two Prefect defaults cost such a run time and buy it nothing (profiled in docs/operations.md, "What
Prefect costs a local run"):

- flow-run heartbeats: each flow run starts a thread that wakes once a second, and the run's exit joins it
  (up to 1 s a flow run, ~3 s over `lakehouse` and its five subflows, however quiet the machine).
  Heartbeats feed an automation that marks a silent deployment run crashed; we ship none, and in ephemeral
  mode the server ends with the process that would send them. A deployment's flow run keeps Prefect's.
- the ephemeral server's 20 s start-up timeout: a first start (the database's migrations) on a loaded
  machine took longer, and the run failed before it did anything.

Both are defaults: a `PREFECT_*` variable the user sets wins.

In ephemeral mode the command starts Prefect's temporary API server itself (`TemporaryServer`): the same
`uvicorn` process with the same app and settings Prefect's client would start on its first API call, with
three differences, each measured in docs/operations.md:

- it starts at once, while the command imports the flows. Prefect's client first imports Prefect's whole
  server into the command's own process just to start it (~2 s of CPU, ~75 MB kept for the whole run);
- it does not register the block types of installed Prefect integrations: that imports prefect-aws and
  prefect-kubernetes into the server (~0.6 s of its start, ~64 MB), for blocks a local run never uses.
  Block types still register when a block is saved, and a `prefect server start` registers them all;
- it runs in a session of its own: a signal to the run's whole process group (Ctrl-C, `timeout`,
  `kill -- -PGID`, a systemd stop) would otherwise stop it too, and Prefect, recording each flow run's
  crash, retried against the dead server for minutes before the run ended with `ConnectError`.

Prefect's client then sees it as any server named by `PREFECT_API_URL` (`server_named()` tells the two
apart). The run's end stops it (`atexit`, and the watchdog of flows/orphans.py when the run is killed).
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from prefect.logging import get_logger
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_SERVER_EPHEMERAL_ENABLED,
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    get_current_settings,
    temporary_settings,
)

EPHEMERAL_STARTUP_TIMEOUT_S = 180
# The temporary server's own defaults (module docstring); the user's environment and settings win.
SERVER_DEFAULTS = {
    "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
    "PREFECT_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
}
STOP_WAIT_S = 5.0
_started: set[str] = set()  # API URLs of the temporary servers this process runs


@contextmanager
def flow_settings() -> Iterator[None]:
    """Prefect's settings for flows run in this process (module docstring); the user's own still win."""
    defaults: dict[Any, Any] = {
        "flows.heartbeat_frequency": None,
        "server.ephemeral.startup_timeout_seconds": EPHEMERAL_STARTUP_TIMEOUT_S,
    }
    with temporary_settings(set_defaults=defaults):
        yield


def ephemeral() -> bool:
    """Whether no server is named (no PREFECT_API_URL), so Prefect would start a temporary one."""
    return not PREFECT_API_URL.value() and bool(PREFECT_SERVER_EPHEMERAL_ENABLED.value())


def server_named() -> bool:
    """Whether PREFECT_API_URL names a server of the user's: set, and not a temporary server of ours."""
    url = PREFECT_API_URL.value()
    return bool(url) and url not in _started


class TemporaryServer:
    """Prefect's temporary API server (ephemeral mode) for this process: `start()` launches it and points
    Prefect's settings at it; `wait()` before the first flow runs. Nothing starts when PREFECT_API_URL
    names a server.

    Start it before entering any Prefect settings context (`flow_settings`, `temporary_settings`): the
    API URL goes into the environment and Prefect's global settings, which an open context would hide.
    """

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.api_url: str | None = None
        self._saved: dict[str, str | None] = {}

    def start(self) -> TemporaryServer:
        if not ephemeral():
            return self
        # A socket bound here and handed to uvicorn: the port is ours before the server starts, so no
        # other process can take it in between (Prefect picks a random free port and retries on a clash).
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]
            self.process = subprocess.Popen(
                _uvicorn_command(listener.fileno()),
                env=_server_environment(),
                pass_fds=(listener.fileno(),),
                start_new_session=True,
            )
        atexit.register(self.stop)
        self.api_url = f"http://127.0.0.1:{port}/api"
        # Prefect's own logger, as Prefect says it when it starts the server: on the console and in the log
        get_logger().info(
            "Starting temporary server on http://127.0.0.1:%s\nA running Prefect server spares every run "
            "this start: README, 'Skip Prefect's start-up'.",
            port,
        )
        _started.add(self.api_url)
        # No UI URL: the temporary server serves no UI, and Prefect would log links to it.
        self._point_prefect({"PREFECT_API_URL": self.api_url, "PREFECT_UI_URL": ""})
        return self

    def wait(self) -> None:
        """Until the server answers; an error saying why, if it stopped or did not answer in time."""
        if self.process is None or self.api_url is None:
            return
        timeout = float(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise RuntimeError(
                        f"Prefect's temporary API server stopped with exit code {code} before it answered "
                        "(its own error is above). Rerun with --verbose, or run against a Prefect server: "
                        "README, 'Skip Prefect's start-up'."
                    )
                try:
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass  # not listening yet, or busy starting
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Prefect's temporary API server did not answer within {timeout:g} s. On a slow or "
                        "busy machine set PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS higher, or run "
                        "against a Prefect server: README, 'Skip Prefect's start-up'."
                    )
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server (as Prefect stops its own: SIGTERM, then SIGKILL after 5 s) and point Prefect
        back where it was."""
        process, self.process = self.process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.api_url is not None:
            _started.discard(self.api_url)
            self._point_prefect(self._saved)
            self._saved = {}

    def _point_prefect(self, variables: dict[str, str | None]) -> None:
        """Set (None: unset) environment variables, and make Prefect's global settings read them again:
        the flows, Prefect's log and event workers (which flush at exit) and child processes all see them."""
        from prefect.context import refresh_global_settings_context

        for name, value in variables.items():
            self._saved.setdefault(name, os.environ.get(name))
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        refresh_global_settings_context()


def _uvicorn_command(fd: int) -> list[str]:
    """Prefect's own command for its temporary server (prefect.server.api.server.SubprocessASGIServer),
    on a socket given by file descriptor instead of a port."""
    import prefect

    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(prefect.__module_path__.parent),
        "--factory",
        "prefect.server.api.server:create_app",
        "--fd",
        str(fd),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]


def _server_environment() -> dict[str, str]:
    """Prefect's environment for its temporary server, over our defaults: this process's environment, then
    its Prefect settings (a `temporary_settings` or profile value the environment does not hold)."""
    return {
        **SERVER_DEFAULTS,
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        **get_current_settings().to_environment_variables(exclude_unset=True),
    }
