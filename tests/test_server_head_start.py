"""`vamosjuntos run` launches Prefect's temporary server before it imports Prefect (flows/server_launch.py).

Each case runs in an interpreter of its own, started without Prefect imported, as the command starts: its
own Prefect home, no API URL, in a folder of its own (Prefect reads settings files from the working folder).
The servers are real: `TemporaryServer` takes the one launched early and a flow runs on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
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

WRONG_GUESS = """
    import json, os
    from flows import server_launch
    server_launch.head_start()
    launched = server_launch._head_start[0].process
    os.environ["PREFECT_API_URL"] = "http://127.0.0.1:9/api"  # as if a settings source had named it
    from flows.in_process import TemporaryServer
    server = TemporaryServer().start()
    print(json.dumps({"started": server.process is not None, "launched_ended": launched.poll() is not None}))
"""

UNTAKEN = """
    from flows import server_launch
    server_launch.head_start()
    print(server_launch._head_start[0].process.pid)
"""

COUNT = """
    from flows import server_launch
    server_launch.head_start()
    print(len(server_launch._head_start))
"""

CLI_REFUSED = """
    import json, sys
    from flows import cli, server_launch
    launched = []
    launch = server_launch.launch

    def recording(settings):
        done = launch(settings)
        launched.append({"pid": done.process.pid, "prefect_imported": "prefect" in sys.modules})
        return done

    server_launch.launch = recording
    try:
        cli.main(["run", "--rows", "10"])
    finally:
        print(json.dumps(launched))
"""


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


def test_a_server_launched_on_a_wrong_guess_is_stopped_and_none_is_started(tmp_path: Path) -> None:
    seen = json.loads(_last_line(_python(tmp_path, WRONG_GUESS)))
    assert seen == {"started": False, "launched_ended": True}


def test_a_server_no_run_took_ends_with_the_command(tmp_path: Path) -> None:
    pid = int(_last_line(_python(tmp_path, UNTAKEN)))
    assert not psutil.pid_exists(pid)


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("prefect-home/profiles.toml", '[profiles.default]\nPREFECT_API_URL = "http://127.0.0.1:4200/api"\n'),
        (".env", "PREFECT_API_URL=http://127.0.0.1:4200/api\n"),
        ("prefect.toml", '[api]\nurl = "http://127.0.0.1:4200/api"\n'),
        ("pyproject.toml", '[tool.prefect.api]\nurl = "http://127.0.0.1:4200/api"\n'),
        (".env", "PREFECT_SERVER_EPHEMERAL_ENABLED=false\n"),
    ],
)
def test_nothing_is_launched_early_when_a_settings_source_may_name_a_server(
    tmp_path: Path, source: str, text: str
) -> None:
    (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / source).write_text(text)
    assert _last_line(_python(tmp_path, COUNT)) == "0"


def test_settings_files_that_name_no_server_do_not_stop_the_head_start(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "elsewhere"\n')
    (tmp_path / ".env").write_text("VAMOSJUNTOS_SEED_ROWS=10\n")
    assert _last_line(_python(tmp_path, COUNT)) == "1"
    assert _last_line(_python(tmp_path, COUNT, PREFECT_API_URL="http://127.0.0.1:9/api")) == "0"


def test_the_run_command_launches_it_before_importing_prefect_and_a_refused_run_leaves_it_stopped(
    tmp_path: Path,
) -> None:
    done = _python(
        tmp_path,
        CLI_REFUSED,
        JAVA_HOME=str(tmp_path / "no-java"),  # the run's checks refuse it: Spark needs Java
        VAMOSJUNTOS_LAKE_ROOT=str(tmp_path / "lake"),
    )
    assert done.returncode == 1 and "Spark needs Java 17" in done.stderr, done.stderr[-3000:]
    launched = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(launched) == 1 and not launched[0]["prefect_imported"]
    assert not psutil.pid_exists(launched[0]["pid"])
