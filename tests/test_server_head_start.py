"""`vamosjuntos run` launches Prefect's temporary server before it imports Prefect (flows/server_launch.py).

Each case runs in an interpreter of its own, started without Prefect imported, as the command starts: its
own Prefect home, no API URL, in a folder of its own (Prefect reads settings files from the working folder).
The servers are real: `TemporaryServer` takes the one launched early and a flow runs on it. Where a case
checks that the command's own exit stops a server, the run's watchdog (which would stop it too) is off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

TAKEN = """
    import json, os, sys
    import psutil
    from flows import server_launch
    server_launch.head_start()
    assert "prefect" not in sys.modules
    pid = server_launch._head_start[0].process.pid
    from prefect import flow
    from flows.in_process import TemporaryServer, flow_settings

    @flow
    def tiny() -> int:
        return 7

    server = TemporaryServer().start()
    mark = psutil.Process(pid).environ().get("VAMOSJUNTOS_RUN_MARK")
    with flow_settings():
        server.wait()
        result = tiny()
    taken = server.process.pid
    server.stop()
    run_mark = os.environ.get("VAMOSJUNTOS_RUN_MARK")
    gone = not psutil.pid_exists(pid)
    print(json.dumps({"launched": pid, "taken": taken, "result": result, "server_mark": mark,
                      "run_mark": run_mark, "gone": gone}))
"""

UNWANTED = """
    import json, os
    from flows import server_launch
    server_launch.head_start()
    launched = server_launch._head_start[0].process
    os.environ["PREFECT_API_URL"] = "http://127.0.0.1:9/api"  # as if Prefect's settings named a server
    from flows.in_process import TemporaryServer
    server = TemporaryServer().start()
    print(json.dumps({"started": server.process is not None, "launched_ended": launched.poll() is not None}))
"""

# Registered before the head start, so it runs after the head start's own exit handler (last in, first out).
NO_WATCHDOG = """
    import atexit
    import flows.orphans
    flows.orphans.guard_this_run = lambda: None
    launched = []
    atexit.register(lambda: print("stopped at exit:", all(p.poll() is not None for p in launched)))
"""

UNTAKEN = (
    NO_WATCHDOG
    + """
    from flows import server_launch
    server_launch.head_start()
    launched.append(server_launch._head_start[0].process)
"""
)

COUNT = """
    import json
    from flows import server_launch
    server_launch.head_start()
    launched = len(server_launch._head_start)
    if launched:  # what Prefect says, where it can read its settings
        from flows.in_process import ephemeral
        print(json.dumps({"launched": launched, "ephemeral": ephemeral()}))
    else:
        print(json.dumps({"launched": launched}))
"""

CLI_REFUSED = (
    NO_WATCHDOG
    + """
    import json, sys
    from flows import cli, server_launch
    launch = server_launch.launch
    seen = []

    def recording(settings):
        done = launch(settings)
        launched.append(done.process)
        seen.append("prefect" in sys.modules)
        return done

    server_launch.launch = recording
    try:
        cli.main(["run", "--rows", "10"])
    finally:
        print(json.dumps({"launched": len(launched), "prefect_imported": seen}))
"""
)


def _python(folder: Path, script: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`script` in a fresh interpreter working in `folder`, with a Prefect home there and no API URL."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "VAMOSJUNTOS_"))}
    base.update(
        PREFECT_HOME=str(folder / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="300",  # a busy machine starts it slowly
        PYTHONPATH=str(REPO),
        **env,
    )
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env=base,
        cwd=folder,
        timeout=600,
    )


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_the_server_launched_before_prefect_is_imported_is_the_one_the_flows_run_on(tmp_path: Path) -> None:
    seen = json.loads(_last_line(_python(tmp_path, TAKEN)))
    assert seen["taken"] == seen["launched"] and seen["result"] == 7
    # Guarded as the run: a killed run's watchdog stops it (flows/orphans.py).
    assert seen["server_mark"] and seen["server_mark"] == seen["run_mark"]
    assert seen["gone"]


def test_a_server_prefects_settings_do_not_want_is_stopped_and_none_is_started(tmp_path: Path) -> None:
    seen = json.loads(_last_line(_python(tmp_path, UNWANTED)))
    assert seen == {"started": False, "launched_ended": True}


def test_a_server_no_run_took_is_stopped_by_the_commands_exit(tmp_path: Path) -> None:
    assert _last_line(_python(tmp_path, UNTAKEN)) == "stopped at exit: True"


@pytest.mark.parametrize(
    ("source", "text", "env"),
    [
        (
            "prefect-home/profiles.toml",
            '[profiles.ephemeral]\nPREFECT_SERVER_EPHEMERAL_ENABLED = "true"\n',
            {},
        ),
        (".env", "PREFECT_API_URL=http://127.0.0.1:4200/api\n", {}),
        (".env", "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE=7\n", {}),  # a default of ours
        ("prefect.toml", '[api]\nurl = "http://127.0.0.1:4200/api"\n', {}),
        ("pyproject.toml", '[tool.prefect.api]\nurl = "http://127.0.0.1:4200/api"\n', {}),
        ("pyproject.toml", "[tool.prefect\n", {}),  # unreadable: Prefect decides
        (None, None, {"PREFECT_PROFILE": "local"}),  # Prefect's packaged profile with a server's URL
        (None, None, {"prefect_api_url": "http://127.0.0.1:4200/api"}),  # Prefect reads names in any case
        (None, None, {"PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false"}),  # the setting's older name
    ],
)
def test_no_head_start_unless_prefects_settings_come_from_the_environment_alone(
    tmp_path: Path, source: str | None, text: str | None, env: dict[str, str]
) -> None:
    if source is not None and text is not None:
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / source).write_text(text)
    done = _python(tmp_path, COUNT, **env)
    assert json.loads(_last_line(done))["launched"] == 0


def test_settings_files_without_prefects_settings_keep_the_head_start_and_prefect_agrees(
    tmp_path: Path,
) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "elsewhere"\n')
    (tmp_path / ".env").write_text("VAMOSJUNTOS_SEED_ROWS=10\n")
    assert json.loads(_last_line(_python(tmp_path, COUNT))) == {"launched": 1, "ephemeral": True}


def test_the_run_command_launches_it_before_importing_prefect_and_a_refused_run_stops_it(
    tmp_path: Path,
) -> None:
    done = _python(
        tmp_path,
        CLI_REFUSED,
        JAVA_HOME=str(tmp_path / "no-java"),  # the run's checks refuse it: Spark needs Java
        VAMOSJUNTOS_LAKE_ROOT=str(tmp_path / "lake"),
    )
    assert done.returncode == 1 and "Spark needs Java 17" in done.stderr, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert json.loads(lines[-2]) == {"launched": 1, "prefect_imported": [False]}
    assert lines[-1] == "stopped at exit: True"


def test_a_usage_error_starts_no_server(tmp_path: Path) -> None:
    done = _python(tmp_path, CLI_REFUSED.replace('"--rows", "10"', '"--from", "2026-11-01"'))
    assert done.returncode != 0 and "needs both --from and --to" in done.stderr, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-2]) == {"launched": 0, "prefect_imported": []}
