"""Run by the lineage tests: serves `publish` and `answer` with the triggers prefect.yaml declares for them,
on the Prefect server in PREFECT_API_URL. A stand-in for the Kubernetes worker: each run the triggers start
is a process on this machine, on the lake in VAMOSJUNTOS_LAKE_ROOT."""

from __future__ import annotations

import yaml
from prefect import serve
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

from flows.pipeline import answer, publish
from tests.k8s.conftest import REPO

declared = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
triggers = {
    d["name"]: [DeploymentEventTrigger.model_validate(t) for t in d.get("triggers", [])] for d in declared
}
serve(
    publish.to_deployment(name="served-publish", triggers=triggers["publish"]),
    answer.to_deployment(name="served-answer", triggers=triggers["answer"]),
)
