"""The real Prefect server of the Kubernetes tests (`prefect server start` on a free port), reused here;
moto's S3/Glue server of the publish tests."""

from tests.k8s.conftest import prefect_server  # noqa: F401  (a pytest fixture)
from tests.publish.conftest import moto, moto_url  # noqa: F401  (pytest fixtures)
