"""Fixtures of the Spark-on-Kubernetes tests: the API stand-in, and tests/k8s's logger."""

from __future__ import annotations

import pytest

from tests.k8s.conftest import run_logger  # noqa: F401  (a fixture shared with tests/k8s)
from tests.k8s.kube_standin import KubeStandIn


@pytest.fixture
def kube():
    with KubeStandIn() as standin:
        yield standin
