"""`prefect deploy` guard: refuse to register deployments while a `{{ $VAR }}` they use is unset.

prefect.yaml fills image references and bucket URIs from the deploying shell's environment; Prefect
leaves a missing variable as the literal placeholder, which would only fail later, in the cluster
(an image called "{{ $IMAGE_TAG }}"). This build step fails the deploy instead, naming what is missing.

    python -m flows.k8s.deploy_env IMAGE_TAG FLOW_RUN_REPOSITORY ...
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence

HINTS = {
    "IMAGE_TAG": "export IMAGE_TAG=$(git rev-parse --short=12 HEAD)",
    "FLOW_RUN_REPOSITORY": "terraform -chdir=terraform output -raw ecr_flow_run_repository_url",
    "SPARK_REPOSITORY": "terraform -chdir=terraform output -raw ecr_spark_repository_url",
}
APP_ENV_HINT = "terraform -chdir=terraform output -json app_env (see docs/kubernetes.md)"
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def problems(names: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    found = []
    for name in names:
        value = environ.get(name, "").strip()
        hint = HINTS.get(name, APP_ENV_HINT)
        if not value:
            found.append(f"{name} is not set ({hint})")
        elif "{{" in value:
            found.append(f"{name} still holds a template: {value!r}")
        elif name == "IMAGE_TAG" and (not _TAG.match(value) or value == "latest"):
            found.append(f"IMAGE_TAG={value!r} is not a pinned image tag (use the git SHA)")
    return found


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv)
    found = problems(names, os.environ if environ is None else environ)
    if found:
        print("prefect deploy: the deployment environment is incomplete:", file=sys.stderr)
        for line in found:
            print(f"  - {line}", file=sys.stderr)
        return 1
    print(f"deploy environment complete ({len(names)} variables)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
