"""Waiting for a Job (flows/spark/kubernetes/job_follower.py): each way a step fails is named."""

from __future__ import annotations

import pickle
import threading
import time

import pytest

from flows.spark.kubernetes.errors import SparkStepFailed
from flows.spark.kubernetes.names import (
    LABEL_FAILURE_REPORTED,
)
from tests.k8s.kube_standin import Scenario
from tests.spark.kubernetes.support import (
    STEP,
    run,
)


def test_failure_reports_exit_code_and_last_log_lines(kube, run_logger):
    lines = [f"line {i}" for i in range(8)] + ["Traceback (most recent call last):", "ValueError: bad row"]
    kube.next_scenario = Scenario("failure", log_lines=lines, exit_code=1)
    with pytest.raises(SparkStepFailed) as caught:
        run(kube, run_logger)
    err = caught.value
    assert err.step == STEP
    assert err.phase == "Failed"
    assert err.reason == "Error (exit code 1)"
    assert err.last_log_lines == lines[-5:]  # log_tail_lines=5
    assert "ValueError: bad row" in str(err)
    # the failed Job is marked as reported, so a later attempt starts afresh
    patch = kube.calls("PATCH", "/jobs/")[-1]
    assert patch.body == {"metadata": {"labels": {LABEL_FAILURE_REPORTED: "true"}}}
    # picklable, as Prefect stores exceptions
    again = pickle.loads(pickle.dumps(err))
    assert (again.step, again.reason, again.last_log_lines) == (err.step, err.reason, err.last_log_lines)


def test_oom_killed_is_named(kube, run_logger):
    kube.next_scenario = Scenario("oom", exit_code=137)
    with pytest.raises(SparkStepFailed) as caught:
        run(kube, run_logger)
    assert caught.value.reason == "OOMKilled (exit code 137)"


def test_eviction_is_reported_as_such(kube, run_logger):
    kube.next_scenario = Scenario("evicted", log_lines=["started", "shuffling"])
    with pytest.raises(SparkStepFailed) as caught:
        run(kube, run_logger)
    err = caught.value
    assert err.phase == "Failed"
    assert err.reason.startswith("Evicted: The node was low on resource: memory")
    assert err.last_log_lines == ["started", "shuffling"]


def test_image_pull_error_fails_fast_and_deletes_the_job(kube, run_logger):
    kube.next_scenario = Scenario("image_pull")
    started = time.monotonic()
    with pytest.raises(SparkStepFailed) as caught:
        run(kube, run_logger)
    assert time.monotonic() - started < 120  # not the 600 s deadline
    err = caught.value
    assert err.phase == "Pending"
    assert err.reason.startswith(("ErrImagePull", "ImagePullBackOff"))
    assert "vamosjuntos-spark:3f2a9c1" in err.reason
    assert err.last_log_lines == []
    deletes = kube.calls("DELETE", "/jobs/")
    assert len(deletes) == 1 and deletes[0].query["propagationPolicy"] == ["Background"]
    assert not kube.jobs


def test_job_deleted_underneath_is_a_failure(kube, run_logger):
    kube.next_scenario = Scenario("success", running_ticks=1000)

    def delete_soon():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(t >= 3 for t in kube.ticks.values()):
            time.sleep(0.01)
        with kube.lock:
            kube.jobs.clear()

    killer = threading.Thread(target=delete_soon)
    killer.start()
    with pytest.raises(SparkStepFailed) as caught:
        run(kube, run_logger)
    killer.join()
    assert caught.value.reason.startswith("JobDeleted")
