"""The lake sits below everything else (the Spark driver pod imports it): importing it must not pull in the
operations, services, sources or Prefect, only the layout, settings and errors it is built on."""

from __future__ import annotations

import subprocess
import sys

ALLOWED = {"flows", "flows.errors", "flows.layout", "flows.settings"}


def test_importing_the_lake_loads_no_other_part_of_flows() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, flows.lake; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    ours = {m for m in loaded if m == "flows" or m.startswith("flows.")}
    others = sorted(m for m in ours - ALLOWED if not m.startswith("flows.lake"))
    assert not others, f"flows.lake pulls in {others}"
    assert "prefect" not in loaded
