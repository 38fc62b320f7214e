"""Launching Prefect's temporary API server (flows/in_process.py) without importing Prefect, so that
`vamosjuntos run` launches it first thing (`head_start`) and the server starts while the command imports
Prefect and the flows.

In ephemeral mode the server's start is what a run's first seconds wait for: Prefect's server imports for
~4 s of one core before it answers, the command's own imports take ~1.5 s on the other. Launched after
those imports, as it was, the server answered ~1.4 s later (docs/operations.md, "What Prefect costs a
local run").

Whether a run needs the temporary server is for Prefect's settings to say (no API URL from the
environment, a profile, `.env`, `prefect.toml` or `pyproject.toml`), and reading them imports Prefect.
So the head start is a guess, taken only when none of those sources mentions an API URL or the ephemeral
server, and checked by `TemporaryServer.start` once Prefect is imported: a server launched on a wrong
guess is stopped there, before any flow runs. Its environment is the command's: the server reads the
same settings sources itself, from the same folder (`TemporaryServer` adds the settings of an open
Prefect settings context, which a command that has not imported Prefect cannot have).
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import socket
import subprocess
import sys
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
# A settings source mentioning one of these may name a server or turn the temporary one off: Prefect
# decides. "tool.prefect" is pyproject.toml's table of Prefect settings.
_SERVER_SETTINGS = ("PREFECT_API_URL", "PREFECT_SERVER_EPHEMERAL", "tool.prefect")


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


def stop(process: subprocess.Popen[bytes]) -> None:
    """As Prefect stops its own: SIGTERM, then SIGKILL after STOP_WAIT_S."""
    process.terminate()
    try:
        process.wait(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


_head_start: list[Launched] = []


def head_start() -> None:
    """Launch the temporary server now, before this command imports Prefect, unless Prefect is imported
    already (its settings decide then, in `TemporaryServer.start`) or a settings source may name a server.

    The run's processes carry its mark (flows/orphans.py), so the run is guarded first. A server no
    `TemporaryServer` took (the command failed before it) is stopped when this process exits."""
    if "prefect" in sys.modules or _may_name_a_server():
        return
    from flows.orphans import guard_this_run

    guard_this_run()
    try:
        _head_start.append(launch({}))
    except OSError:  # `TemporaryServer.start` launches it again, inside the command's error handling
        return
    atexit.register(_stop_untaken)


def take_head_start() -> Launched | None:
    """The server `head_start` launched, now the caller's to stop; None if there is none."""
    return _head_start.pop() if _head_start else None


def _stop_untaken() -> None:
    launched = take_head_start()
    if launched is not None:
        stop(launched.process)


def _may_name_a_server() -> bool:
    """Whether the environment or a settings file Prefect reads mentions a server setting (read as text: a
    mention is enough to leave the decision to Prefect). An unreadable file counts as a mention."""
    if os.environ.get("PREFECT_API_URL") or "PREFECT_SERVER_EPHEMERAL_ENABLED" in os.environ:
        return True
    home = Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    if Path("prefect.toml").exists():  # any of its tables may hold `api.url`
        return True
    for source in (profiles, Path(".env"), Path("pyproject.toml")):
        try:
            text = source.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError):
            return True
        if any(setting in text for setting in _SERVER_SETTINGS):
            return True
    return False


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
    `settings` (Prefect settings the environment does not hold: a `temporary_settings` or profile value)."""
    return {
        **SERVER_DEFAULTS,
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        **settings,
    }
