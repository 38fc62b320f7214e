"""The real Prefect server of the Kubernetes tests (`prefect server start` on a free port), reused here."""

from tests.k8s.conftest import prefect_server  # noqa: F401  (a pytest fixture)
