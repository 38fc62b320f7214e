"""What a parent flow hands a subflow it calls in-process: parameters that no run form offers.

Prefect stores a subflow's parameters on its server as JSON, a SecretStr as "**********"
(tests/ops/test_settings_parameter.py). Not a form field: the schema admits only null, so a run started
from the UI reads the environment and nobody types a secret into a form that is stored in clear.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import WithJsonSchema

from flows.ops.lineage import Orchestrator
from flows.settings import Settings

FromParent = WithJsonSchema({"type": "null"})
# The parent's settings, e.g. with the embedded MongoDB's URI.
ParentSettings = Annotated[Settings | None, FromParent]
# A parent that runs what follows a subflow itself (`lakehouse`, `rollback`; flows/ops/lineage.py).
ParentRun = Annotated[Orchestrator | None, FromParent]
