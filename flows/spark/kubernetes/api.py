"""A small Kubernetes API client: the few calls the step runner makes, with plain httpx (sync).

In the cluster it speaks to `https://kubernetes.default.svc` with the pod's service-account token (re-read
on every request, as projected tokens rotate) and CA; `settings.k8s_api_url` points elsewhere, e.g.
`kubectl proxy` (`http://127.0.0.1:8001`), or a test stand-in. Every failure is a KubernetesApiError:
an unexpected status, or (status None) no answer at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from flows.errors import ConfigurationError
from flows.settings import Settings
from flows.spark.kubernetes.errors import KubernetesApiError
from flows.spark.kubernetes.names import DRIVER_CONTAINER, LABEL_JOB_NAME

IN_CLUSTER_API = "https://kubernetes.default.svc"
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeApi:
    def __init__(self, settings: Settings, timeout_s: float) -> None:
        self.namespace = settings.k8s_namespace
        token_file = SA_DIR / "token"
        if settings.k8s_api_url:
            base_url = settings.k8s_api_url.rstrip("/")
            verify: Any = True
            self._token_file = token_file if token_file.exists() and base_url.startswith("https") else None
            if self._token_file is not None:
                verify = str(SA_DIR / "ca.crt")
        else:
            if not token_file.exists():
                raise ConfigurationError(
                    f"no service-account token at {token_file}: not running in a pod. Set "
                    "VAMOSJUNTOS_K8S_API_URL (e.g. http://127.0.0.1:8001 behind `kubectl proxy`) "
                    "or VAMOSJUNTOS_SPARK_RUNNER=local."
                )
            base_url, verify, self._token_file = IN_CLUSTER_API, str(SA_DIR / "ca.crt"), token_file
        self._timeout = timeout_s
        self._client_args = {"base_url": base_url, "verify": verify, "timeout": timeout_s}
        self._client = httpx.Client(**self._client_args)

    def close(self) -> None:
        self._client.close()

    def new_client(self) -> httpx.Client:
        return httpx.Client(**self._client_args)

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._token_file is not None:
            headers["Authorization"] = f"Bearer {self._token_file.read_text().strip()}"
        return headers

    def _send(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            return self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:  # no answer: refused, timed out, TLS, a dropped connection
            raise KubernetesApiError(method, path, None, f"{type(exc).__name__}: {exc}") from exc

    def request(self, method: str, path: str, *, ok=(200, 201, 202), **kwargs) -> dict[str, Any] | None:
        """JSON request; returns None on 404, raises KubernetesApiError on other non-ok statuses."""
        headers = {**self.headers(), **kwargs.pop("headers", {})}
        response = self._send(method, path, headers=headers, **kwargs)
        if response.status_code == 404:
            return None
        if response.status_code not in ok:
            raise KubernetesApiError(method, path, response.status_code, response.text)
        return response.json() if response.content else {}

    # --- the few calls the runner needs --------------------------------------------------------
    @property
    def _jobs(self) -> str:
        return f"/apis/batch/v1/namespaces/{self.namespace}/jobs"

    @property
    def _pods(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods"

    def list_jobs(self, selector: str) -> list[dict[str, Any]]:
        found = self.request("GET", self._jobs, params={"labelSelector": selector})
        return list((found or {}).get("items") or [])

    def create_job(self, manifest: dict[str, Any]) -> dict[str, Any]:
        created = self.request("POST", self._jobs, json=manifest)
        if created is None:
            raise KubernetesApiError("POST", self._jobs, 404, f"namespace {self.namespace!r} not found")
        return created

    def get_job(self, name: str) -> dict[str, Any] | None:
        return self.request("GET", f"{self._jobs}/{name}")

    def label_job(self, name: str, labels: dict[str, str]) -> None:
        self.request(
            "PATCH",
            f"{self._jobs}/{name}",
            content=json.dumps({"metadata": {"labels": labels}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )

    def delete_job(self, name: str, timeout_s: float | None = None) -> None:
        # Background propagation: the Job object goes at once (a retry's label lookup no longer finds a
        # dying Job to reattach to) and the garbage collector then deletes its pods, the driver's
        # executors with the driver. Foreground would keep the Job visible until every pod is gone.
        self.request(
            "DELETE",
            f"{self._jobs}/{name}",
            params={"propagationPolicy": "Background"},
            ok=(200, 202),
            timeout=timeout_s or self._timeout,
        )

    def pods_of_job(self, job_name: str) -> list[dict[str, Any]]:
        found = self.request("GET", self._pods, params={"labelSelector": f"{LABEL_JOB_NAME}={job_name}"})
        pods = list((found or {}).get("items") or [])
        return sorted(pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp") or "")

    def get_pod(self, name: str) -> dict[str, Any] | None:
        return self.request("GET", f"{self._pods}/{name}")

    def tail_log(self, pod: str, lines: int) -> list[str]:
        response = self._send(
            "GET",
            f"{self._pods}/{pod}/log",
            params={"container": DRIVER_CONTAINER, "tailLines": str(lines)},
            headers={**self.headers(), "Accept": "text/plain"},
        )
        if response.status_code != 200:
            return []
        return response.text.splitlines()[-lines:]
