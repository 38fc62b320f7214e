"""The small Kubernetes API client (flows/spark/kubernetes/api.py): its errors say what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.errors import ConfigurationError
from flows.sources.local_mongo import free_port
from flows.spark.kubernetes.errors import KubernetesApiError
from flows.spark.kubernetes.step_runner import run_step_on_kubernetes
from tests.spark.kubernetes.support import (
    ARGS,
    FAST,
    FLOW_RUN,
    STEP,
    cloud_settings,
    forbidding_api,
)


def test_forbidden_says_which_rbac_is_missing(run_logger):
    with forbidding_api() as url, pytest.raises(KubernetesApiError, match="rbac-flow-runs") as caught:
        run_step_on_kubernetes(
            STEP, ARGS, cloud_settings(url), flow_run_id=FLOW_RUN, logger=run_logger, timing=FAST
        )
    assert caught.value.status == 403


def test_without_cluster_or_url_the_error_says_what_to_do(run_logger):
    if Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists():
        pytest.fail("this test assumes it does not run inside a Kubernetes pod")
    with pytest.raises(ConfigurationError, match="VAMOSJUNTOS_K8S_API_URL"):
        run_step_on_kubernetes(STEP, ARGS, cloud_settings(None), flow_run_id=FLOW_RUN, logger=run_logger)


def test_an_api_that_does_not_answer_is_a_kubernetes_api_error(run_logger):
    """A wrong VAMOSJUNTOS_K8S_API_URL (nothing listens there): a named error that says where it looked,
    not httpx's ConnectError."""
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(KubernetesApiError, match="could not be reached") as caught:
        run_step_on_kubernetes(STEP, ARGS, cloud_settings(url), flow_run_id=FLOW_RUN, logger=run_logger)
    assert caught.value.status is None
    assert "ConnectError" in str(caught.value) and "VAMOSJUNTOS_K8S_API_URL" in str(caught.value)
