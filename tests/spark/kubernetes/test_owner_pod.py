"""A Spark Job is owned by the flow-run pod that starts it (flows/spark/kubernetes/owner_pod.py)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from flows.spark.kubernetes.errors import SparkStepFailed
from flows.spark.kubernetes.manifest import build_job_manifest
from flows.spark.kubernetes.names import (
    OWNER_POD_ENV,
)
from flows.spark.kubernetes.owner_pod import OwnerPod
from tests.k8s.conftest import validate_strict
from tests.k8s.kube_standin import KubeStandIn, Scenario
from tests.spark.kubernetes.support import (
    ARGS,
    FLOW_RUN,
    FLOW_RUN_POD,
    STEP,
    cloud_settings,
    in_flow_run_pod,
    run,
)


def test_the_job_is_owned_by_the_flow_run_pod_and_goes_with_it(kube, run_logger):
    env = in_flow_run_pod(kube)
    kube.next_scenario = Scenario("success", running_ticks=1000)
    deleter = threading.Thread(target=_delete_pod_when_running, args=(kube, FLOW_RUN_POD))
    deleter.start()
    with pytest.raises(SparkStepFailed, match="JobDeleted"):  # the garbage collector took it
        run(kube, run_logger, environ=env)
    deleter.join()
    posted = kube.job_posts[0].body
    validate_strict(posted)
    assert posted["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": FLOW_RUN_POD,
            "uid": env[OWNER_POD_ENV["uid"]],
            "blockOwnerDeletion": True,
        }
    ]
    assert not kube.jobs and not kube.pods  # the Job and its driver pod went with the flow-run pod


def _delete_pod_when_running(kube: KubeStandIn, pod: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(t >= 3 for t in kube.ticks.values()):
        time.sleep(0.01)
    httpx.delete(f"{kube.url}/api/v1/namespaces/{kube.namespace}/pods/{pod}", timeout=5)


def test_outside_a_flow_run_pod_the_job_has_no_owner(kube, run_logger):
    run(kube, run_logger, environ={})
    assert "ownerReferences" not in kube.job_posts[0].body["metadata"]


def test_an_owner_in_another_namespace_is_refused_not_sent(kube, run_logger):
    """An owner outside the Job's namespace counts as absent: the garbage collector would delete the Job."""
    owner = OwnerPod(FLOW_RUN_POD, "6c1f3e0a-9b8d-4c2e-a1f0-3d5e7b9c1a2f", "prefect")
    with pytest.raises(ValueError, match="namespace"):
        build_job_manifest(STEP, ARGS, cloud_settings(), flow_run_id=FLOW_RUN, owner=owner)
    run(kube, run_logger, environ=in_flow_run_pod(kube, namespace="prefect"))
    assert "ownerReferences" not in kube.job_posts[0].body["metadata"]
    assert any("gets no owner" in m for m in run_logger.handler.messages)
