"""How a `vamosjuntos` command runs the flows in its own process (a deployment's flow-run pod does not).

Two Prefect defaults cost such a run time and buy it nothing (profiled in docs/operations.md, "What
Prefect costs a local run"):

- flow-run heartbeats: each flow run starts a thread that wakes once a second, and the run's exit joins it
  (up to 1 s a flow run, ~3 s over `lakehouse` and its five subflows, however quiet the machine).
  Heartbeats feed an automation that marks a silent deployment run crashed; we ship none, and in ephemeral
  mode the server ends with the process that would send them. A deployment's flow run keeps Prefect's.
- the ephemeral server's 20 s start-up timeout: a first start (the database's migrations) on a loaded
  machine took longer, and the run failed before it did anything.

Both are defaults: a `PREFECT_*` variable the user sets wins. And in ephemeral mode the temporary server
can start in the background (`TemporaryServer`) while the command imports the flows, in a session of its
own: a signal to the run's whole process group (Ctrl-C, `timeout`, `kill -- -PGID`, a systemd stop) would
otherwise stop it too, and Prefect, recording each flow run's crash, retried against the dead server for
minutes before the run ended with `ConnectError`. The run's end still stops it (Prefect's `atexit`, and
the watchdog of flows/orphans.py when the run is killed).
"""

from __future__ import annotations

import contextvars
import functools
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED, temporary_settings

EPHEMERAL_STARTUP_TIMEOUT_S = 180


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
    """Whether this process's flows talk to a temporary server Prefect starts for it (no PREFECT_API_URL)."""
    return not PREFECT_API_URL.value() and bool(PREFECT_SERVER_EPHEMERAL_ENABLED.value())


class TemporaryServer:
    """Prefect's temporary API server (ephemeral mode), started in a thread so its start overlaps our work.

    It is the server Prefect's client starts on its first API call (one per process), started sooner:
    `wait()` before the first flow runs. Nothing starts when PREFECT_API_URL names a server.
    """

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> TemporaryServer:
        if ephemeral():
            # the thread sees this thread's Prefect settings (the start-up timeout above among them)
            context = contextvars.copy_context()
            self.thread = threading.Thread(target=context.run, args=(self._start,), daemon=True)
            self.thread.start()
        return self

    def _start(self) -> None:
        try:
            _server_in_its_own_session().start()
        except BaseException as exc:  # raised again in the caller's thread by wait()
            self.error = exc

    def wait(self) -> None:
        """Until the server answers; its start's error, if it failed."""
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.error is not None:
            raise self.error


class _SubprocessInItsOwnSession:
    """The `subprocess` module as Prefect's server module sees it while it starts its server: the same,
    but Popen starts a new session (Prefect's command line and environment stay Prefect's own)."""

    Popen = functools.partial(subprocess.Popen, start_new_session=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)


@functools.cache
def _in_its_own_session() -> type:
    """Prefect's server class, whose `uvicorn` process starts in a session of its own (one class, so a
    later call finds the server an earlier one made)."""
    from prefect.server.api import server as module

    class InItsOwnSession(module.SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            saved, module.subprocess = module.subprocess, _SubprocessInItsOwnSession()  # type: ignore[assignment]
            try:
                return super()._run_uvicorn_command()
            finally:
                module.subprocess = saved

    return InItsOwnSession


def _server_in_its_own_session() -> Any:
    """Prefect's one temporary server of this process (a singleton: the one its client uses), whose
    process is started in a session of its own.

    Prefect's class hands out the instance that exists first: had this process already made its own (a
    flow run before `TemporaryServer`), that one would come back, silently outside a session of its own."""
    server_class = _in_its_own_session()
    server = server_class()
    if not isinstance(server, server_class):
        from flows.errors import ConfigurationError

        raise ConfigurationError(
            "Prefect's temporary server of this process was made before flows/in_process.py could start it "
            "in a session of its own (a signal to the run's process group would stop it too): start "
            "TemporaryServer before any flow runs in this process."
        )
    return server
