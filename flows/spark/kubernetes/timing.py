"""How the step runner paces itself, and how long a flow-run pod must live for the Spark steps it starts."""

from __future__ import annotations

import math
from dataclasses import dataclass

from flows.settings import Settings


@dataclass(frozen=True)
class JobTiming:
    """How the runner paces itself; tests shrink these."""

    poll_interval_s: float = 2.0
    # How long a pod may sit in a fatal waiting state (e.g. ImagePullBackOff) before the step fails.
    fatal_waiting_grace_s: float = 60.0
    # Extra time past activeDeadlineSeconds before the runner gives up on a Job that never ends.
    deadline_slack_s: float = 120.0
    log_tail_lines: int = 50
    request_timeout_s: float = 30.0
    # Deleting the Job when interrupted: short, as it runs inside the kubelet's grace period (30 s).
    delete_timeout_s: float = 5.0


def spark_time_budget_s(
    step_runs: int,
    attempts: int,
    settings: Settings,
    *,
    retry_delay_s: float = 0.0,
    timing: JobTiming | None = None,
) -> int:
    """The longest a flow can spend on `step_runs` Spark steps run one after another, each tried up to
    `attempts` times: an attempt ends by its Job's `activeDeadlineSeconds` plus the runner's slack (it
    gives up then), and a failed attempt's retry starts a fresh Job. A flow-run pod's deadline must be at
    least this, or Kubernetes stops the flow run while a step it may still finish is running."""
    timing = timing or JobTiming()
    per_attempt = settings.spark_job_deadline_s + timing.deadline_slack_s
    return math.ceil(step_runs * (attempts * per_attempt + (attempts - 1) * retry_delay_s))
