"""Waiting for a Spark step's Job: its outcome, its driver's log, and a SparkStepFailed that says why."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from flows.settings import Settings
from flows.spark.alongside import raise_if_abandoned
from flows.spark.kubernetes.api import KubeApi
from flows.spark.kubernetes.errors import KubernetesApiError, SparkStepFailed
from flows.spark.kubernetes.job_status import (
    FATAL_WAITING_REASONS,
    describe_pod_failure,
    driver_started,
    job_failure_reason,
    job_outcome,
    waiting_reason,
)
from flows.spark.kubernetes.log_follower import LogFollower
from flows.spark.kubernetes.names import LABEL_FAILURE_REPORTED
from flows.spark.kubernetes.timing import JobTiming


def follow_job(
    api: KubeApi,
    step: str,
    name: str,
    settings: Settings,
    logger: logging.Logger | logging.LoggerAdapter,
    timing: JobTiming,
    *,
    reattached: bool,
) -> None:
    """Return when Job `name` succeeds; raise SparkStepFailed when it fails, sits in a state that will not
    fix itself (e.g. ImagePullBackOff, past the grace), disappears, or outlives its deadline. A failed Job
    is labelled as reported, so the next attempt starts afresh; a stuck one is deleted."""
    give_up_at = time.monotonic() + settings.spark_job_deadline_s + timing.deadline_slack_s
    follower: LogFollower | None = None
    fatal_since: dict[str, float] = {}
    pod: dict[str, Any] | None = None

    def stop_logs(wait_s: float) -> list[str]:
        if follower is None:
            return []
        follower.join(wait_s)
        follower.stop_event.set()
        return list(follower.lines)

    def fail(phase: str, reason: str, *, mark: bool = True, wait_logs_s: float = 5.0) -> SparkStepFailed:
        lines = stop_logs(wait_logs_s)
        pod_name = (pod or {}).get("metadata", {}).get("name")
        if not lines and pod_name:
            lines = api.tail_log(pod_name, timing.log_tail_lines)
        if mark:
            try:
                api.label_job(name, {LABEL_FAILURE_REPORTED: "true"})
            except (httpx.HTTPError, KubernetesApiError) as exc:
                logger.warning("could not label failed Job %s as reported: %s", name, exc)
        error = SparkStepFailed(
            step, phase, reason, lines[-timing.log_tail_lines :], job_name=name, pod_name=pod_name
        )
        logger.error("%s", error)
        return error

    try:
        while True:
            job = api.get_job(name)
            if job is None:
                raise fail("Unknown", "JobDeleted: the Job disappeared before it finished", mark=False)
            outcome = job_outcome(job)
            pods = api.pods_of_job(name)
            pod = pods[-1] if pods else pod
            if pod is not None and follower is None and driver_started(pod):
                follower = LogFollower(
                    api,
                    pod["metadata"]["name"],
                    logger,
                    step,
                    timing.log_tail_lines,
                    tail=timing.log_tail_lines if reattached else None,
                )
                follower.start()
            if outcome == "succeeded":
                stop_logs(30.0)
                logger.info("Spark step %s: Job %s succeeded", step, name)
                return
            if outcome == "failed":
                phase, pod_reason = describe_pod_failure(pod)
                if pod is None:
                    phase = "Failed"
                raise fail(phase, pod_reason or job_failure_reason(job), wait_logs_s=10.0)
            if pod is not None and (waiting := waiting_reason(pod)) and waiting[0] in FATAL_WAITING_REASONS:
                first = fatal_since.setdefault(waiting[0], time.monotonic())
                if time.monotonic() - first >= timing.fatal_waiting_grace_s:
                    phase, reason = describe_pod_failure(pod)
                    # it would only wait for its deadline; the next attempt starts afresh
                    api.delete_job(name)
                    raise fail(phase, reason or waiting[0], mark=False, wait_logs_s=0)
            else:
                fatal_since.clear()
            if time.monotonic() > give_up_at:
                api.delete_job(name)
                raise fail("Unknown", "Timeout: the Job outlived activeDeadlineSeconds", mark=False)
            raise_if_abandoned(step)  # the run failed beside it: the runner deletes the Job
            time.sleep(timing.poll_interval_s)
    finally:  # interrupted or done: the log follower stops with the wait
        if follower is not None:
            follower.stop_event.set()
