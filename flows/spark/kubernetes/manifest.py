"""The batch/v1 Job that runs one Spark step's entrypoint as the driver (pure: settings in, a dict out)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from pydantic import SecretStr

from flows.errors import ConfigurationError
from flows.settings import Settings
from flows.spark.kubernetes.names import (
    BLOCK_MANAGER_PORT,
    DRIVER_CONTAINER,
    DRIVER_PORT,
    LABEL_ARGS,
    LABEL_FLOW_RUN,
    LABEL_SPARK,
    LABEL_STEP,
    LABEL_TASK_RUN,
    NODE_POOL_LABEL,
    SPARK_K8S_MASTER,
    SPARK_UID,
)
from flows.spark.kubernetes.owner_pod import OwnerPod
from flows.spark.kubernetes.quantities import jvm_memory_to_mib

_STEP_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def _args_hash(step: str, args: list[str]) -> str:
    return hashlib.sha256(json.dumps([step, *args]).encode()).hexdigest()[:16]


def _label_value(value: str) -> str:
    """A valid label value (<= 63 chars, alphanumeric at both ends)."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", value)[:63]
    return value.strip("-_.") or "none"


def _settings_env(settings: Settings) -> list[dict[str, str]]:
    """The settings the step needs, as VAMOSJUNTOS_* variables; secrets and local-only knobs stay out.

    `k8s_api_url` goes along when set: the driver then uses that API server as its master too.
    """
    skip = {"spark_runner", "spark_master"}
    env: list[dict[str, str]] = []
    for name in sorted(type(settings).model_fields):
        value = getattr(settings, name)
        if name in skip or value is None or isinstance(value, SecretStr):
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str | int | float):
            text = str(value)
        else:
            continue
        env.append({"name": f"VAMOSJUNTOS_{name.upper()}", "value": text})
    env += [
        {"name": "VAMOSJUNTOS_SPARK_RUNNER", "value": "kubernetes"},
        # A k8s:// master tells the session builder to apply spark_conf_for_kubernetes (which picks the URL).
        {"name": "VAMOSJUNTOS_SPARK_MASTER", "value": SPARK_K8S_MASTER},
    ]
    return env


def _driver_memory_quantity(settings: Settings) -> str:
    """Pod memory for the driver: JVM heap + the non-heap/Python overhead Spark assumes (max(40%, 384Mi))."""
    try:
        heap = jvm_memory_to_mib(settings.spark_driver_memory_k8s)
    except ValueError as exc:
        raise ConfigurationError(f"VAMOSJUNTOS_SPARK_DRIVER_MEMORY_K8S: {exc}") from None
    return f"{heap + max(384, math.ceil(heap * 0.4))}Mi"


def build_job_manifest(
    step: str,
    args: list[str],
    settings: Settings,
    *,
    flow_run_id: str,
    task_run_id: str | None = None,
    owner: OwnerPod | None = None,
) -> dict[str, Any]:
    """The batch/v1 Job that runs one Spark step's entrypoint as the driver (pure; validated in tests).

    With `owner` (the flow-run pod), the Job is its dependent: deleting the pod deletes the Job.
    """
    if not _STEP_RE.match(step):
        raise ValueError(f"invalid step name {step!r}: expected a module name under flows.spark.jobs")
    if owner is not None and owner.namespace not in (None, settings.k8s_namespace):
        # An owner in another namespace counts as absent: the garbage collector would delete the Job at once.
        raise ValueError(
            f"the flow-run pod {owner.name} is in namespace {owner.namespace!r}, the Spark Job would be in "
            f"{settings.k8s_namespace!r}: an owner must be in the Job's namespace"
        )
    labels = {
        LABEL_FLOW_RUN: _label_value(flow_run_id),
        LABEL_STEP: _label_value(step),
        LABEL_ARGS: _args_hash(step, args),
        LABEL_SPARK: "true",
        "app.kubernetes.io/part-of": "vamosjuntos-lakehouse",
        "app.kubernetes.io/component": "spark-driver",
        "app.kubernetes.io/managed-by": "vamosjuntos-flows",
    }
    if task_run_id:
        labels[LABEL_TASK_RUN] = _label_value(task_run_id)
    annotations = {
        "vamosjuntos.io/command": json.dumps(["python", "-m", f"flows.spark.jobs.{step}", *args]),
        "vamosjuntos.io/flow-run-id": flow_run_id,
    }
    memory = _driver_memory_quantity(settings)
    cpu = settings.spark_driver_cpu
    env = [
        *_settings_env(settings),
        {"name": "SPARK_DRIVER_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "SPARK_DRIVER_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "SPARK_DRIVER_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        # Spark binds to the pod IP, not loopback (the session builder defaults this to 127.0.0.1 locally).
        {"name": "SPARK_LOCAL_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "AWS_REGION", "value": settings.aws_region},
        {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        {"name": "HOME", "value": "/tmp"},
        {"name": "SPARK_LOCAL_DIRS", "value": "/tmp/spark-local"},
    ]
    metadata: dict[str, Any] = {
        "generateName": f"vj-{step.replace('_', '-')}-",
        "namespace": settings.k8s_namespace,
        "labels": labels,
        "annotations": annotations,
    }
    if owner is not None:
        metadata["ownerReferences"] = [owner.reference()]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": 0,  # Prefect owns retries
            "completions": 1,
            "parallelism": 1,
            "activeDeadlineSeconds": settings.spark_job_deadline_s,
            "ttlSecondsAfterFinished": settings.spark_job_ttl_s,
            "template": {
                "metadata": {"labels": dict(labels), "annotations": dict(annotations)},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": settings.spark_service_account,
                    # The driver talks to the API server to create its executors.
                    "automountServiceAccountToken": True,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    # On-demand nodes (terraform node group `flows`); executors go to the `spark` group.
                    "nodeSelector": {NODE_POOL_LABEL: "flows"},
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": SPARK_UID,
                        "runAsGroup": SPARK_UID,
                        "fsGroup": SPARK_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": DRIVER_CONTAINER,
                            "image": settings.spark_image,
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["python", "-m", f"flows.spark.jobs.{step}", *args],
                            "env": env,
                            "ports": [
                                {"name": "driver-rpc", "containerPort": DRIVER_PORT, "protocol": "TCP"},
                                {
                                    "name": "blockmanager",
                                    "containerPort": BLOCK_MANAGER_PORT,
                                    "protocol": "TCP",
                                },
                            ],
                            # requests == limits: Guaranteed QoS, the last class evicted under pressure.
                            "resources": {
                                "requests": {"cpu": cpu, "memory": memory},
                                "limits": {"cpu": cpu, "memory": memory},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "privileged": False,
                                "readOnlyRootFilesystem": True,
                                "runAsNonRoot": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "8Gi"}}],
                },
            },
        },
    }
