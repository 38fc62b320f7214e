"""Reading Job and pod objects as the API returns them: outcome, driver state, why a pod failed (pure)."""

from __future__ import annotations

from typing import Any

from flows.spark.kubernetes.names import DRIVER_CONTAINER, LABEL_FAILURE_REPORTED

# Pod-level waiting reasons that will not fix themselves: fail fast instead of waiting for the deadline.
FATAL_WAITING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


def condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def job_outcome(job: dict[str, Any]) -> str | None:
    """'succeeded', 'failed' or None (still running)."""
    if condition(job, "Complete") or condition(job, "SuccessCriteriaMet"):
        return "succeeded"
    if condition(job, "Failed") or condition(job, "FailureTarget"):
        return "failed"
    status = job.get("status") or {}
    if status.get("succeeded", 0) >= 1:
        return "succeeded"
    if status.get("failed", 0) > job.get("spec", {}).get("backoffLimit", 0):
        return "failed"
    return None


def job_failure_reason(job: dict[str, Any]) -> str:
    """Why the Job says it failed (its Failed or FailureTarget condition)."""
    cond = condition(job, "Failed") or condition(job, "FailureTarget") or {}
    reason = cond.get("reason") or "Failed"
    if cond.get("message"):
        reason += f": {cond['message']}"
    return reason


def failure_reported(job: dict[str, Any]) -> bool:
    """A runner already raised this Job's failure (and labelled it so): a retry must not reattach to it."""
    return (job.get("metadata", {}).get("labels") or {}).get(LABEL_FAILURE_REPORTED) == "true"


def driver_status(pod: dict[str, Any]) -> dict[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == DRIVER_CONTAINER:
            return status
    return {}


def driver_started(pod: dict[str, Any]) -> bool:
    """The driver container runs or ran: it has a log to follow."""
    phase = (pod.get("status") or {}).get("phase")
    state = driver_status(pod).get("state") or {}
    return phase in ("Running", "Succeeded", "Failed") and ("running" in state or "terminated" in state)


def waiting_reason(pod: dict[str, Any]) -> tuple[str, str] | None:
    waiting = (driver_status(pod).get("state") or {}).get("waiting") or {}
    if waiting.get("reason"):
        return waiting["reason"], waiting.get("message", "")
    return None


def describe_pod_failure(pod: dict[str, Any] | None) -> tuple[str, str | None]:
    """(phase, reason) of a pod that did not succeed; reason None when the pod says nothing."""
    if pod is None:
        return "Unknown", None
    status = pod.get("status") or {}
    phase = status.get("phase") or "Unknown"
    if status.get("reason"):  # e.g. Evicted, DeadlineExceeded, NodeLost, UnexpectedAdmissionError
        message = status.get("message")
        return phase, f"{status['reason']}: {message}" if message else status["reason"]
    state = driver_status(pod).get("state") or {}
    if terminated := state.get("terminated"):
        reason = terminated.get("reason") or "Terminated"
        text = f"{reason} (exit code {terminated.get('exitCode')})"
        if terminated.get("message"):
            text += f": {terminated['message']}"
        return phase, text
    if waiting := waiting_reason(pod):
        reason, message = waiting
        return phase, f"{reason}: {message}" if message else reason
    return phase, None
