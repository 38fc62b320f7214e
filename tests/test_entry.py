"""The `vamosjuntos` process: the command's exit code and its exit handlers, with the collector's last sweeps
skipped (flows/entry.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A command that fails fast without a server: no run in the lake to answer from.
PROBE = """
import atexit, gc, sys
atexit.register(lambda: print("exit handler ran", flush=True))
sys.argv = ["vamosjuntos", "answers"]
from flows.entry import run_command
code = run_command()
print("frozen:", gc.get_freeze_count() > 0, flush=True)
sys.exit(code)
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAMOSJUNTOS_", "PREFECT_"))}
    return env | {"VAMOSJUNTOS_LAKE_ROOT": str(tmp_path / "lake"), "PREFECT_HOME": str(tmp_path / "ph")}


def test_the_console_script_is_the_entry_that_leaves_without_the_last_sweeps() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["vamosjuntos"] == "flows.entry:run_command"


def test_the_command_exit_code_and_exit_handlers_survive_the_frozen_collector(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=_env(tmp_path), timeout=120
    )
    assert done.returncode == 1, done.stderr  # the command's own failure: nothing to answer yet
    assert "No answers in" in done.stderr, done.stderr
    assert done.stdout.splitlines()[-2:] == ["frozen: True", "exit handler ran"]


def test_the_installed_command_runs_through_it(tmp_path: Path) -> None:
    [script] = [e for e in entry_points(group="console_scripts") if e.name == "vamosjuntos"]
    assert script.value == "flows.entry:run_command", "stale install: pip install -e . again"
    command = Path(sys.executable).with_name("vamosjuntos")
    done = subprocess.run(
        [str(command), "answers"], capture_output=True, text=True, env=_env(tmp_path), timeout=120
    )
    assert done.returncode == 1 and "No answers in" in done.stderr and "Traceback" not in done.stderr
