"""What the pinned Prefect worker Helm chart puts in the worker's environment by itself.

Read from PrefectHQ/prefect-helm, chart `prefect-worker` version 2026.8.18172642 (tag 2026.8.18172642,
commit 75b0c2776ec08bb00e3cf29b8bf1a8a8c5daa3e1), file charts/prefect-worker/templates/deployment.yaml,
`containers[prefect-worker].env`: the names below are rendered before `worker.extraEnvVars`, so an
extra env var of the same name is a duplicate entry in the container (Kubernetes keeps the last one,
kubectl apply warns, and a later chart change silently loses or wins against ours). Update this module
together with CHART_VERSION when the chart is bumped.
"""

from __future__ import annotations

from typing import Any

CHART = "prefect/prefect-worker"
CHART_VERSION = "2026.8.18172642"

# Always rendered.
ALWAYS = frozenset(
    {
        "HOME",
        "PREFECT_WORKER_PREFETCH_SECONDS",  # worker.config.prefetchSeconds
        "PREFECT_WORKER_QUERY_SECONDS",  # worker.config.queryInterval
        "PREFECT_API_ENABLE_HTTP2",  # worker.config.http2
        "PREFECT_API_URL",  # from worker.apiConfig and its *ApiConfig
        "PREFECT_KUBERNETES_CLUSTER_UID",
        "PREFECT_DEBUG_MODE",  # worker.image.debug
    }
)

# Rendered depending on values: worker.config.observerClusterWide false (the default) gives the observer
# namespace; apiConfig cloud/customerManagedCloud gives the API key, and with jobApiKeyPropagation
# secretRef (the default) the two variables that make flow-run Jobs reference the key's Secret;
# selfHostedServerApiConfig.basicAuth gives the auth string and its Secret reference.
CONDITIONAL = frozenset(
    {
        "PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES",
        "PREFECT_API_KEY",
        "PREFECT_CLOUD_API_URL",
        "PREFECT_CLOUD_UI_URL",
        "PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_NAME",
        "PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_KEY",
        "PREFECT_INTEGRATIONS_KUBERNETES_WORKER_CREATE_SECRET_FOR_API_KEY",
        "PREFECT_API_AUTH_STRING",
        "PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_AUTH_STRING_SECRET_NAME",
        "PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_AUTH_STRING_SECRET_KEY",
    }
)

CHART_ENV = ALWAYS | CONDITIONAL


def worker_env(values: dict[str, Any], release_namespace: str) -> dict[str, str]:
    """The plain-value env the chart gives the worker for our values, for the settings our tests run
    the worker code with (the template's conditions, for apiConfig cloud only)."""
    worker = values["worker"]
    env: dict[str, str] = {}
    config = worker.get("config", {})
    if not config.get("observerClusterWide", False):
        env["PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES"] = config.get("jobNamespace") or (
            release_namespace
        )
    if worker.get("apiConfig", "cloud") != "cloud":
        raise ValueError("only apiConfig: cloud is modelled here (it is what k8s/ uses)")
    cloud = worker.get("cloudApiConfig", {})
    propagation = cloud.get("jobApiKeyPropagation") or "secretRef"  # the template's `default`
    secret = cloud.get("apiKeySecret", {"name": "prefect-api-key", "key": "key"})
    if propagation == "secretRef":
        env["PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_NAME"] = secret["name"]
        env["PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_KEY"] = secret["key"]
    elif propagation == "autoSecret":
        env["PREFECT_INTEGRATIONS_KUBERNETES_WORKER_CREATE_SECRET_FOR_API_KEY"] = "true"
    return env
