"""Launching Prefect's temporary API server (flows/in_process.py) without importing Prefect, so that
`vamosjuntos run` launches it first thing (`head_start`) and the server starts while the command imports
Prefect and the flows.

In ephemeral mode the server's start is what a run's first seconds wait for: Prefect's server imports for
~4 s of one core before it answers, the command's own imports take ~1.5 s on the other. Launched after
those imports, as it was, the server answered ~1.5 s later (docs/operations.md, "What Prefect costs a
local run").

Whether a run needs the temporary server is for Prefect's settings to say, and reading them imports
Prefect. So the head start is taken only where the answer is plain without them: Prefect's settings come
from the environment and Prefect's packaged default profile alone (which names no server and turns the
temporary one on), with no variable naming a server or a profile (`_settings_from_environment_only`).
Then the server launched here gets the environment `TemporaryServer` would give it. Anywhere else (a
profiles file of the user's, `prefect.toml`, Prefect's table in `pyproject.toml`, a PREFECT_ variable in
`.env`) `TemporaryServer.start` decides once Prefect is imported, as before; and should a head start
turn out unwanted there (Prefect's settings name a server after all), it stops that server before any
flow runs.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import socket
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Events the server's persister gathers before it writes them (Prefect's default 20): more than a local run
# sends between two flush intervals, so it writes on the interval only (flows/in_process.py).
EVENT_BATCH_VARIABLE = "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE"
EVENT_BATCH = 1000
# The temporary server's own defaults (flows/in_process.py); the user's environment and settings win. The
# first two both: Prefect's memoising wrapper imports every installed integration before it reads
# REGISTER_ON_START.
SERVER_DEFAULTS = {
    "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
    "PREFECT_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
    EVENT_BATCH_VARIABLE: str(EVENT_BATCH),
}
STOP_WAIT_S = 5.0
# Variables that name a server, choose a profile, or turn the temporary server on or off (with an older
# name): with any of them set, Prefect decides.
_CHOOSERS = (
    "PREFECT_API_URL",
    "PREFECT_PROFILE",
    "PREFECT_PROFILES_PATH",
    "PREFECT_SERVER_EPHEMERAL_ENABLED",
    "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE",
)


@dataclass
class Launched:
    """A temporary server's process, and the loopback port it listens on."""

    process: subprocess.Popen[bytes]
    port: int


def launch(settings: Mapping[str, str]) -> Launched:
    """Start the server on a free loopback port, with `settings` (Prefect's, as environment variables)
    over this process's environment. It runs in a session of its own (flows/in_process.py says why)."""
    with _listener() as listener:
        process = subprocess.Popen(
            _uvicorn_command(listener.fileno()),
            env=_server_environment(settings),
            pass_fds=(listener.fileno(),),
            start_new_session=True,
        )
        return Launched(process, listener.getsockname()[1])


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """As Prefect stops its own: SIGTERM, then SIGKILL after STOP_WAIT_S."""
    process.terminate()
    try:
        process.wait(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


_head_start: list[Launched] = []


def head_start() -> None:
    """Launch the temporary server now, before this command imports Prefect, where Prefect's settings
    plainly ask for it (module docstring); else `TemporaryServer.start` decides, once Prefect is imported.

    The run is guarded first (what a killed run left is stopped, and what this one starts carries its
    mark: flows/orphans.py). A server no `TemporaryServer` took (the command failed before it) is stopped
    when this process exits."""
    if "prefect" in sys.modules or not _settings_from_environment_only():
        return
    from flows.orphans import start_guarded

    atexit.register(_stop_untaken)
    try:
        start_guarded(before_logging=True)
        _head_start.append(launch({}))
    except Exception:  # `TemporaryServer.start` tries again, where the command reports its errors
        return


def take_head_start() -> Launched | None:
    """The server `head_start` launched, now the caller's to stop; None if there is none."""
    return _head_start.pop() if _head_start else None


def _stop_untaken() -> None:
    launched = take_head_start()
    if launched is not None:
        stop_server(launched.process)


def _settings_from_environment_only() -> bool:
    """Whether Prefect's settings come from the environment and its packaged default profile alone, with
    no variable naming a server or a profile: no profiles file of the user's, no `prefect.toml`, no
    Prefect table in `pyproject.toml`, no PREFECT_ variable in `.env` (Prefect reads the last three in
    the working folder). Variable names as Prefect reads them, in any case. Anything unreadable: no."""
    environment = {name.upper(): value for name, value in os.environ.items()}
    if any(name in environment for name in _CHOOSERS):
        return False
    home = Path(environment.get("PREFECT_HOME") or "~/.prefect").expanduser()
    if (home / "profiles.toml").exists() or Path("prefect.toml").exists():
        return False
    try:
        if Path(".env").exists():
            from dotenv import dotenv_values

            if any(name.upper().startswith("PREFECT_") for name in dotenv_values(".env")):
                return False
        if Path("pyproject.toml").exists():
            pyproject = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))
            if "prefect" in pyproject.get("tool", {}):
                return False
    except (OSError, ValueError):  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
        return False
    return True


def _listener() -> socket.socket:
    """A listening socket on a free loopback port, to hand to uvicorn.

    uvicorn opens a socket it is handed as a Unix socket, and asyncio then leaves Nagle's algorithm on for
    its connections: each API answer (headers, then body) waited for the client's delayed ACK, ~40 ms a
    request (docs/operations.md). TCP_NODELAY set on the listening socket passes to every connection it
    accepts (Linux)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return listener


def _uvicorn_command(fd: int) -> list[str]:
    """Prefect's own command for its temporary server (prefect.server.api.server.SubprocessASGIServer),
    on a socket given by file descriptor instead of a port, and with Prefect's app in ours
    (flows/temporary_api.py)."""
    spec = importlib.util.find_spec("prefect")  # where Prefect is, without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("Prefect is not installed", name="prefect")
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(Path(next(iter(spec.submodule_search_locations))).parent),
        "--factory",
        "flows.temporary_api:create_app",  # Prefect's app, replaying 503s (its docstring)
        "--fd",
        str(fd),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]


def _server_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """Prefect's environment for its temporary server, over our defaults: this process's environment, then
    `settings` (Prefect settings the environment does not hold: from a profile, `.env` or a TOML file)."""
    return {
        **SERVER_DEFAULTS,
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        **settings,
    }
