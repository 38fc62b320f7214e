"""A Spark step's failures on Kubernetes are named errors (flows/spark/kubernetes/errors.py): the CLI's
summary shows them as they are, and Prefect can store and load them."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from flows.console import summary
from flows.spark.kubernetes.errors import KubernetesApiError, SparkStepFailed
from flows.spark.kubernetes.step_runner import run_step_on_kubernetes
from tests.k8s.kube_standin import KubeStandIn, Scenario
from tests.spark.kubernetes.support import ARGS, FAST, FLOW_RUN, STEP, cloud_settings, forbidding_api, run


def _summary_lines(exc: BaseException, tmp_path: Path) -> list[str]:
    """What `vamosjuntos` prints on stderr for a failure (flows/cli.py's handler)."""
    return summary(exc, tmp_path / "command.log").splitlines()


def test_a_failed_step_is_summarised_by_its_own_message(kube: KubeStandIn, run_logger, tmp_path):
    kube.next_scenario = Scenario("failure", log_lines=["ValueError: bad row"], exit_code=1)
    with pytest.raises(SparkStepFailed) as caught:
        run(kube, run_logger)
    lines = _summary_lines(caught.value, tmp_path)
    job = next(iter(kube.jobs))
    assert lines[0].startswith(f"error: Spark step {STEP!r} failed on Kubernetes (job {job}, pod ")
    assert "reason=Error (exit code 1)" in lines[0]
    assert "  | ValueError: bad row" in lines  # the driver's last lines come with it
    assert not [line for line in lines if "unexpected" in line]
    assert [line for line in lines if line.startswith("error: ")] == [lines[0]]


def test_a_refused_api_call_is_one_summary_line_naming_the_rbac(run_logger, tmp_path):
    with forbidding_api() as url, pytest.raises(KubernetesApiError) as caught:
        run_step_on_kubernetes(
            STEP, ARGS, cloud_settings(url), flow_run_id=FLOW_RUN, logger=run_logger, timing=FAST
        )
    error, trace = _summary_lines(caught.value, tmp_path)
    jobs = "/apis/batch/v1/namespaces/vamosjuntos/jobs"
    assert error.startswith(f"error: Kubernetes API GET {jobs} answered 403")
    assert "k8s/rbac-flow-runs.yaml" in error
    assert trace.startswith("(the full trace is in ")


@pytest.mark.parametrize("status", [403, None])
def test_an_api_error_survives_pickling(status):
    """Prefect persists a failed task's exception; one that cannot be loaded again loses the failure."""
    error = KubernetesApiError("GET", "/apis/batch/v1/namespaces/vj/jobs", status, "denied")
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), again.status, str(again)) == (KubernetesApiError, status, str(error))
