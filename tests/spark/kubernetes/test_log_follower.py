"""Following the driver's log (flows/spark/kubernetes/log_follower.py) against the API stand-in."""

from __future__ import annotations

from tests.k8s.kube_standin import Scenario
from tests.spark.kubernetes.support import (
    STEP,
    run,
)


def test_log_stream_closed_midway_is_resumed_without_duplicates(kube, run_logger):
    """The API server may close a follow stream while the container runs: resume from the last line."""
    lines = [f"row batch {i}" for i in range(30)]
    kube.next_scenario = Scenario("success", running_ticks=20, log_lines=lines, drop_log_stream_after=7)
    run(kube, run_logger)
    messages = [m for m in run_logger.handler.messages if m.startswith(f"[{STEP}]")]
    assert messages == [f"[{STEP}] {line}" for line in lines]
    follows = [r for r in kube.calls("GET", "/log") if r.query.get("follow") == ["true"]]
    assert len(follows) >= 2 and "sinceTime" in follows[1].query
