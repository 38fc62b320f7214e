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

In ephemeral mode the command starts Prefect's temporary API server itself (`TemporaryServer`): Prefect's
own `uvicorn` command for it (Prefect's app, environment and settings), with these differences (measured in
docs/operations.md, "What Prefect costs a local run"):

- it starts at once, while the command imports the flows. Prefect's client first imports Prefect's whole
  server into the command's own process just to start it (2.1 s of CPU, +77 MB kept for the whole run).
  `vamosjuntos run` launches it before it even imports Prefect where Prefect's settings plainly ask for
  it (flows/server_launch.py, `head_start`), and `start()` takes that server, or stops it if they do not;
- it does not register the block types of installed Prefect integrations: that imports prefect-aws and
  prefect-kubernetes into the server (~0.7 s of its start, ~64 MB), for blocks a local run never uses.
  Block types still register when a block is saved, and a `prefect server start` registers them all;
- it runs in a session of its own (docs/faults.md): a signal to the run's whole process group (Ctrl-C,
  `timeout`, `kill -- -PGID`, a systemd stop) would otherwise stop it too, and Prefect, recording each
  flow run's crash, retried against the dead server for minutes before the run ended with `ConnectError`;
- its event persister writes the events it receives every 5 s (Prefect's interval), not also every 20
  events: the batch that a finished subflow's events fill was written just as the next subflow run was
  created, which failed with SQLite's "database is locked" (the creation reads before it writes); the
  server answers that with a 503 and Prefect's client retries 2 s later (the task-run recorder, the other
  writer, is the next item's). Events still all reach the database: those left are written as the server
  stops (a server killed after `server_launch.STOP_WAIT_S` loses up to 5 s of them, where Prefect's
  batch lost up to 19);
- its app is Prefect's inside ours (flows/temporary_api.py), which replays a request Prefect answered 503
  after a short wait instead of letting the client wait 2 s: the task-run recorder's writes still
  collide with the creation of the next subflow run the same way;
- against any other server (a user's `prefect server start`, and Prefect's own ephemeral one if ours did not
  start), the run's client replays such a quick 503 itself (flows/client_replay.py, inside
  `flow_settings`), never both;
- it listens on a socket bound here (no other process can take the port between choosing and listening).
  Prefect's client sees it as any server `PREFECT_API_URL` names (`server_named()` tells the two apart),
  with no UI URL (it serves no UI).

The run's end stops it (`atexit`, after Prefect's log and event workers drain; the watchdog of
flows/orphans.py when the run is killed).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
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

from flows.client_replay import replaying_unavailable
from flows.errors import PrefectServerError
from flows.server_launch import launch, stop_server, take_head_start

EPHEMERAL_STARTUP_TIMEOUT_S = 180
# Names this process's temporary server in the environment, so that our processes it starts (which
# inherit PREFECT_API_URL) still know it from a server of the user's.
TEMPORARY_API_URL = "VAMOSJUNTOS_TEMPORARY_API_URL"


@contextmanager
def flow_settings() -> Iterator[None]:
    """Prefect's settings for flows run in this process (module docstring); the user's own still win."""
    defaults: dict[Any, Any] = {
        "flows.heartbeat_frequency": None,
        "server.ephemeral.startup_timeout_seconds": EPHEMERAL_STARTUP_TIMEOUT_S,
    }
    # Our temporary server replays a quick 503 itself (flows/temporary_api.py); any other server's answers
    # are replayed by the client (flows/client_replay.py): never both, which would multiply the attempts.
    replay = contextlib.nullcontext() if temporary_server_named() else replaying_unavailable()
    with temporary_settings(set_defaults=defaults), replay:
        yield


def ephemeral() -> bool:
    """Whether no server is named (no PREFECT_API_URL), so Prefect would start a temporary one."""
    return not PREFECT_API_URL.value() and bool(PREFECT_SERVER_EPHEMERAL_ENABLED.value())


def temporary_server_named() -> bool:
    """Whether PREFECT_API_URL names this run's temporary server (`TemporaryServer`)."""
    url = PREFECT_API_URL.value()
    return bool(url) and url == os.environ.get(TEMPORARY_API_URL)


def server_named() -> bool:
    """Whether PREFECT_API_URL names a server of the user's: set, and not this run's temporary server."""
    return bool(PREFECT_API_URL.value()) and not temporary_server_named()


class TemporaryServer:
    """Prefect's temporary API server (ephemeral mode) for this process: `start()` launches it and points
    Prefect at it; `wait()` before the first flow runs. Nothing starts when PREFECT_API_URL names a server.

    Start it before entering any Prefect settings context (`flow_settings`, `temporary_settings`): the
    API URL goes into the environment and Prefect's global settings, which an open context would hide.
    """

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.api_url: str | None = None
        self._saved: dict[str, str | None] = {}

    def start(self) -> TemporaryServer:
        if not ephemeral():
            unwanted = take_head_start()  # Prefect's settings name a server after all, or turn it off
            if unwanted is not None:
                stop_server(unwanted.process)
            return self
        if _in_settings_context():
            # our own callers' mistake, not the user's: an "unexpected" error with its trace in the log
            raise RuntimeError(
                "Prefect's temporary server was started inside a Prefect settings context, which hides its "
                "URL from the flows (they would start a second server): start TemporaryServer before "
                "entering flow_settings() or temporary_settings()."
            )
        launched = take_head_start() or launch(
            get_current_settings().to_environment_variables(exclude_unset=True)
        )
        self.process, port = launched.process, launched.port
        atexit.register(self.stop)
        self.api_url = f"http://127.0.0.1:{port}/api"
        self._saved = _set_environment(
            {"PREFECT_API_URL": self.api_url, "PREFECT_UI_URL": "", TEMPORARY_API_URL: self.api_url}
        )
        # Prefect's own logger, as Prefect says it when it starts the server: on the console and in the log
        get_logger().info(
            "Starting temporary server on http://127.0.0.1:%s\nA running Prefect server spares every run "
            "this start: README, 'Skip Prefect's start-up'.",
            port,
        )
        return self

    def wait(self) -> None:
        """Until the server answers; an error saying why, if it stopped or did not answer in time."""
        if self.process is None or self.api_url is None:
            return
        timeout = float(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
        deadline = time.monotonic() + timeout
        answered = "no answer"
        with httpx.Client() as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise PrefectServerError(
                        f"Prefect's temporary API server {_ended(code)} before it answered. Fix the "
                        "cause, or skip this start by running against a Prefect server: README, 'Skip "
                        "Prefect's start-up'."
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PrefectServerError(
                        f"Prefect's temporary API server did not answer {self.api_url}/health with 200 "
                        f"within {timeout:g} s ({answered}). On a slow or busy machine set "
                        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS higher, or run against a Prefect "
                        "server: README, 'Skip Prefect's start-up'."
                    )
                try:
                    # The kernel accepts connections on the bound socket before uvicorn serves them: a
                    # probe waits for the server's answer, but no longer than a second (to see it exit).
                    status = client.get(f"{self.api_url}/health", timeout=min(left, 1.0)).status_code
                except httpx.TransportError as exc:
                    answered = f"last probe: {type(exc).__name__}"
                else:
                    if status == 200:
                        return
                    answered = f"last answer: HTTP {status}"  # e.g. a proxy in the way
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server (as Prefect stops its own: SIGTERM, then SIGKILL after 5 s) and give back the
        environment and Prefect settings it changed, for what runs after it in this process."""
        process, self.process = self.process, None
        if process is not None:
            stop_server(process)
        if self._saved:
            _set_environment(self._saved)
            self._saved = {}
        self.api_url = None


def _ended(code: int) -> str:
    """How the server's process ended, for a person: its exit code, or the signal that killed it."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name} (out of memory, or stopped from outside)"
        return f"was killed by signal {-code}"
    return f"stopped with exit code {code} (its own error is printed above)"


def _in_settings_context() -> bool:
    """Whether a Prefect settings context is open: the settings it holds, not the global ones that
    `_set_environment` refreshes, are what Prefect reads until it closes."""
    from prefect.context import GLOBAL_SETTINGS_CONTEXT, SettingsContext

    return SettingsContext.get() is not GLOBAL_SETTINGS_CONTEXT


def _set_environment(variables: dict[str, str | None]) -> dict[str, str | None]:
    """Set (None: unset) environment variables and make Prefect's global settings read them again: the
    flows, Prefect's log and event workers (which flush at exit) and child processes all see them. Returns
    what they were."""
    from prefect.context import refresh_global_settings_context

    previous = {name: os.environ.get(name) for name in variables}
    for name, value in variables.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    refresh_global_settings_context()
    return previous
