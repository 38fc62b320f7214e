"""Session fixtures are started once per session, whichever folders run: a conftest that re-imports
another folder's fixture defines a second fixture, and a run over both folders started two servers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
USERS = ("tests/k8s", "tests/ops", "tests/spark/kubernetes")  # the folders whose tests take the server


def test_one_prefect_server_for_every_folder_that_uses_it() -> None:
    plan = subprocess.run(
        [sys.executable, "-m", "pytest", "--setup-plan", "-q", "-p", "no:cacheprovider", *USERS],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    setups = [s for s in plan.stdout.splitlines() if s.strip().startswith("SETUP    S prefect_server")]
    assert len(setups) == 1, "\n".join(setups)
