"""Run a Spark step as a short-lived Kubernetes Job: the Job's pod is the Spark driver, executors are pods.

The flow-run pod calls `run_step_on_kubernetes(...)`; it:

1. looks for a Job of the same flow run, step and arguments (labels), so a retried task **reattaches**
   to a running Job instead of starting a second one (a succeeded Job returns at once, a failed Job
   that no one has reported yet raises);
2. otherwise creates a `batch/v1` Job from the Spark image that runs
   `python -m flows.spark.jobs.<step> <args>` as the Spark driver (client mode, in the cluster), owned by
   the flow-run pod (`ownerReferences`, from the pod's name and uid the work pool's job template passes
   through the downward API): when that pod is deleted, Kubernetes' garbage collector deletes the Job;
3. follows the Job, streaming the driver's log lines into the given logger, until it succeeds or fails;
   a failure raises `SparkStepFailed` with the pod's phase, reason (Evicted, ImagePullBackOff,
   `Error (exit code 1)`, DeadlineExceeded, ...) and the last log lines;
4. deletes the Job (its pods go too) when the wait is interrupted by anything else than the Job's own
   outcome or an API error: a cancelled task, Prefect's `TerminationSignal`, SIGTERM (the kubelet stopping
   the flow-run pod), Ctrl-C. After an API error the Job is kept, so the task's retry reattaches to it.

Finished Jobs are removed by Kubernetes (`ttlSecondsAfterFinished`); `backoffLimit: 0` leaves retries to
Prefect; `activeDeadlineSeconds` bounds a hung step, and `spark_time_budget_s` says how long a flow-run
pod must be allowed to live for the steps it starts. Executors are owned by the driver pod
(`spark.kubernetes.driver.pod.name`), so they go when the driver goes.

Inside the driver pod the jobs' SparkSession builder applies `spark_conf_for_kubernetes(settings)`: Spark's
Kubernetes client (fabric8) configures itself in-cluster and keeps re-reading the rotating service-account
token; `settings.k8s_api_url`, when set, is the driver's master instead.

The Kubernetes API is spoken with plain httpx (sync): in the cluster through
`https://kubernetes.default.svc` with the pod's service-account token (re-read on every request, as
projected tokens rotate) and CA; `settings.k8s_api_url` points elsewhere, e.g. `kubectl proxy`
(`http://127.0.0.1:8001`), or a test stand-in.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import math
import os
import re
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from flows.settings import Settings

__all__ = [
    "DRIVER_CONTAINER",
    "LABEL_ARGS",
    "LABEL_FAILURE_REPORTED",
    "LABEL_FLOW_RUN",
    "LABEL_SPARK",
    "LABEL_STEP",
    "LABEL_TASK_RUN",
    "OWNER_POD_ENV",
    "S3A_COMMITTER_CONF",
    "SPARK_UID",
    "JobTiming",
    "KubernetesApiError",
    "OwnerPod",
    "SparkStepFailed",
    "build_job_manifest",
    "jvm_memory_to_mib",
    "run_step_on_kubernetes",
    "spark_conf_for_kubernetes",
    "spark_k8s_master",
    "spark_time_budget_s",
]

# ------------------------------------------------------------------------------------------------
# Names shared with k8s/ (RBAC, NetworkPolicy) and images/spark (uid, conf): change them together.
# ------------------------------------------------------------------------------------------------
LABEL_FLOW_RUN = "vamosjuntos.io/flow-run-id"
LABEL_STEP = "vamosjuntos.io/step"
LABEL_ARGS = "vamosjuntos.io/args-hash"
LABEL_TASK_RUN = "vamosjuntos.io/task-run-id"
LABEL_FAILURE_REPORTED = "vamosjuntos.io/failure-reported"
# Every Spark pod (driver and executors) carries this label: the NetworkPolicy lets them talk.
LABEL_SPARK = "vamosjuntos.io/spark"
LABEL_JOB_NAME = "batch.kubernetes.io/job-name"  # set by the Job controller on its pods (k8s >= 1.27)

DRIVER_CONTAINER = "spark-driver"
NODE_POOL_LABEL = "vamosjuntos.io/pool"  # terraform/eks.tf: node groups `flows` and `spark`
SPARK_UID = 10185  # the `spark` user of images/spark/Dockerfile (>= 10000: no clash with host users)
IN_CLUSTER_API = "https://kubernetes.default.svc"
SPARK_K8S_MASTER = "k8s://https://kubernetes.default.svc:443"
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# Fixed ports so the NetworkPolicy can name them (Spark picks random ones otherwise).
DRIVER_PORT = 7078
BLOCK_MANAGER_PORT = 7079
# images/spark/Dockerfile sets SPARK_CONF_DIR to this and copies the executor pod template into it.
IMAGE_SPARK_CONF_DIR = "/opt/spark/conf"
EXECUTOR_POD_TEMPLATE_NAME = "executor-pod-template.yaml"
EXECUTOR_POD_TEMPLATE = f"{IMAGE_SPARK_CONF_DIR}/{EXECUTOR_POD_TEMPLATE_NAME}"
# The flow-run pod's own identity, from the downward API (k8s/work-pool-base-job-template.json): the
# Spark Jobs it starts are owned by it.
OWNER_POD_ENV = {
    "name": "VAMOSJUNTOS_FLOW_RUN_POD_NAME",
    "uid": "VAMOSJUNTOS_FLOW_RUN_POD_UID",
    "namespace": "VAMOSJUNTOS_FLOW_RUN_POD_NAMESPACE",
}
WEB_IDENTITY_PROVIDER = "software.amazon.awssdk.auth.credentials.WebIdentityTokenFileCredentialsProvider"

# Also baked into images/spark/spark-defaults.conf; repeated here so a session built with only this
# dict still commits atomically to S3 (tests check both agree).
S3A_COMMITTER_CONF: dict[str, str] = {
    "spark.hadoop.fs.s3a.committer.name": "magic",
    "spark.hadoop.fs.s3a.committer.magic.enabled": "true",
    "spark.sql.sources.commitProtocolClass": "org.apache.spark.internal.io.cloud.PathOutputCommitProtocol",
    "spark.sql.parquet.output.committer.class": (
        "org.apache.spark.internal.io.cloud.BindingParquetOutputCommitter"
    ),
}

# Pod-level waiting reasons that will not fix themselves: fail fast instead of waiting for the deadline.
FATAL_WAITING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
_STEP_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class SparkStepFailed(RuntimeError):
    """A Spark step's Kubernetes Job did not succeed.

    `phase` is the driver pod's phase (Pending/Running/Failed/Unknown) or the Job's state when there was
    no pod; `reason` says why (Evicted, ImagePullBackOff, `Error (exit code 1)`, DeadlineExceeded, ...);
    `last_log_lines` are the driver's last lines (may be empty when the container never started).
    """

    def __init__(
        self,
        step: str,
        phase: str,
        reason: str,
        last_log_lines: list[str] | tuple[str, ...] = (),
        *,
        job_name: str | None = None,
        pod_name: str | None = None,
    ) -> None:
        self.step = step
        self.phase = phase
        self.reason = reason
        self.last_log_lines = list(last_log_lines)
        self.job_name = job_name
        self.pod_name = pod_name
        where = ", ".join(f"{k} {v}" for k, v in (("job", job_name), ("pod", pod_name)) if v)
        logs = "\n".join(f"  | {line}" for line in self.last_log_lines) or "  (no log lines)"
        super().__init__(
            f"Spark step {step!r} failed on Kubernetes ({where or 'no job'}): "
            f"phase={phase}, reason={reason}.\n"
            f"Last driver log lines:\n{logs}\n"
            "Check the lines above; `kubectl -n <namespace> describe job/pod` shows the events. "
            "Retrying the task starts a new Job."
        )

    def __reduce__(self):  # keep it picklable (Prefect persists exceptions in states)
        return (
            _rebuild_failure,
            (self.step, self.phase, self.reason, self.last_log_lines, self.job_name, self.pod_name),
        )


def _rebuild_failure(step, phase, reason, lines, job_name, pod_name) -> SparkStepFailed:
    return SparkStepFailed(step, phase, reason, lines, job_name=job_name, pod_name=pod_name)


class KubernetesApiError(RuntimeError):
    """The Kubernetes API answered with an unexpected status."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.status = status
        hint = ""
        if status in (401, 403):
            hint = (
                " Hint: the flow-run service account needs the Role in k8s/rbac-flow-runs.yaml "
                "(jobs: create/get/list/watch/patch/delete; pods, pods/log: get/list/watch)."
            )
        super().__init__(f"Kubernetes API {method} {path} answered {status}: {body[:500]}{hint}")


@dataclass(frozen=True)
class JobTiming:
    """How the runner paces itself; tests shrink these."""

    poll_interval_s: float = 2.0
    # How long a pod may sit in a fatal waiting state (e.g. ImagePullBackOff) before the step fails.
    fatal_waiting_grace_s: float = 60.0
    # Extra time past activeDeadlineSeconds before the runner gives up on a Job that never ends.
    deadline_slack_s: float = 120.0
    log_tail_lines: int = 50
    request_timeout_s: float = 30.0
    # Deleting the Job when interrupted: short, as it runs inside the kubelet's grace period (30 s).
    delete_timeout_s: float = 5.0


def spark_time_budget_s(
    step_runs: int,
    attempts: int,
    settings: Settings,
    *,
    retry_delay_s: float = 0.0,
    timing: JobTiming | None = None,
) -> int:
    """The longest a flow can spend on `step_runs` Spark steps run one after another, each tried up to
    `attempts` times: an attempt ends by its Job's `activeDeadlineSeconds` plus the runner's slack (it
    gives up then), and a failed attempt's retry starts a fresh Job. A flow-run pod's deadline must be at
    least this, or Kubernetes stops the flow run while a step it may still finish is running."""
    timing = timing or JobTiming()
    per_attempt = settings.spark_job_deadline_s + timing.deadline_slack_s
    return math.ceil(step_runs * (attempts * per_attempt + (attempts - 1) * retry_delay_s))


@dataclass(frozen=True)
class OwnerPod:
    """The flow-run pod that starts a Spark Job, as the downward API tells it (see OWNER_POD_ENV)."""

    name: str
    uid: str
    namespace: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OwnerPod | None:
        """The pod this process runs in; None outside a flow-run pod (a laptop, a test, a local run)."""
        env = os.environ if environ is None else environ
        name, uid = env.get(OWNER_POD_ENV["name"]), env.get(OWNER_POD_ENV["uid"])
        if not name or not uid:
            return None
        return cls(name, uid, env.get(OWNER_POD_ENV["namespace"]) or None)

    def reference(self) -> dict[str, Any]:
        # blockOwnerDeletion: a foreground deletion of the pod waits for the Job (and so its pods) to go.
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": self.name,
            "uid": self.uid,
            "blockOwnerDeletion": True,
        }


# ------------------------------------------------------------------------------------------------
# Spark configuration inside the driver pod
# ------------------------------------------------------------------------------------------------
_JVM_UNITS = {"": 1 / (1024 * 1024), "b": 1 / (1024 * 1024), "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024**2}


def jvm_memory_to_mib(value: str) -> int:
    """'2g' / '512m' / '1536M' / '4gb' (Spark/JVM notation, binary units) -> MiB."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmgtKMGT]?)[bB]?\s*", value)
    if not match:
        raise ValueError(f"not a JVM memory size: {value!r} (use e.g. '512m' or '2g')")
    number, unit = match.groups()
    return max(1, math.ceil(int(number) * _JVM_UNITS[unit.lower()]))


def _cores(cpu: str) -> int:
    """Kubernetes CPU quantity ('500m', '1', '2.5') -> the integer `spark.executor.cores`."""
    cpu = cpu.strip()
    value = float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    return max(1, math.floor(value))


def _app_prefix(name: str) -> str:
    """A DNS-1123 prefix Spark can use for executor pod names (<= 47 chars)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return (slug[:47].rstrip("-")) or "spark"


def spark_k8s_master(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """The driver's `spark.master`: `settings.k8s_api_url` when set (a `kubectl proxy`, a stand-in),
    else the API server as the kubelet tells every pod (KUBERNETES_SERVICE_HOST/PORT, the address fabric8's
    in-cluster configuration uses too), else its DNS name."""
    env = os.environ if environ is None else environ
    if settings.k8s_api_url:
        return f"k8s://{settings.k8s_api_url.rstrip('/')}"
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if host and port:
        return f"k8s://https://{f'[{host}]' if ':' in host else host}:{port}"
    return SPARK_K8S_MASTER


def spark_conf_for_kubernetes(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Spark conf a step's SparkSession needs when it runs as the driver inside its Job's pod.

    Reads the downward-API variables the Job sets (`SPARK_DRIVER_POD_NAME`, `SPARK_DRIVER_POD_IP`)
    and `SPARK_CONF_DIR` (where the executor pod template is) from `environ` (default: the process
    environment). Executors are owned by the driver pod, find the driver at its pod IP on fixed ports,
    scale with dynamic allocation (shuffle tracking: no external shuffle service on Kubernetes) and
    read/write S3 with the IRSA web-identity token.

    No `spark.kubernetes.authenticate.*` token or CA file: Spark would read a token file once into a fixed
    token (projected service-account tokens rotate and expire). Left unset, Spark's client starts from
    fabric8's `Config.autoConfigure`, which in a pod takes the service-account token and CA and re-reads
    the token (every minute and on a 401).
    """
    env = os.environ if environ is None else environ
    pod_name = env.get("SPARK_DRIVER_POD_NAME")
    pod_ip = env.get("SPARK_DRIVER_POD_IP")
    if not pod_name or not pod_ip:
        raise RuntimeError(
            "spark_conf_for_kubernetes needs SPARK_DRIVER_POD_NAME and SPARK_DRIVER_POD_IP (downward API): "
            "it only works inside a Job created by run_step_on_kubernetes; use spark_runner=local elsewhere."
        )
    conf: dict[str, str] = {
        "spark.master": spark_k8s_master(settings, env),
        "spark.submit.deployMode": "client",
        "spark.kubernetes.namespace": settings.k8s_namespace,
        "spark.kubernetes.container.image": settings.spark_image,
        "spark.kubernetes.container.image.pullPolicy": "IfNotPresent",
        # The driver is this pod: executors get it as owner and are garbage-collected with it.
        "spark.kubernetes.driver.pod.name": pod_name,
        "spark.kubernetes.executor.podNamePrefix": _app_prefix(pod_name),
        "spark.kubernetes.executor.deleteOnTermination": "true",
        # Same service account as the driver (its IRSA role reads/writes the lake); the executor pod
        # template does not mount its Kubernetes API token, so executors cannot call the API.
        "spark.kubernetes.authenticate.executor.serviceAccountName": settings.spark_service_account,
        "spark.kubernetes.executor.podTemplateFile": str(
            Path(env.get("SPARK_CONF_DIR") or IMAGE_SPARK_CONF_DIR) / EXECUTOR_POD_TEMPLATE_NAME
        ),
        "spark.kubernetes.executor.podTemplateContainerName": "spark-executor",
        f"spark.kubernetes.executor.label.{LABEL_SPARK}": "true",
        "spark.kubernetes.executor.label.app.kubernetes.io/part-of": "vamosjuntos-lakehouse",
        "spark.kubernetes.executor.label.app.kubernetes.io/component": "spark-executor",
        # Executors connect back to the driver's pod IP (no Service needed) on fixed ports.
        "spark.driver.host": pod_ip,
        # Spark 4 tells executors the bind address, not spark.driver.host, as the driver's address
        # (spark.kubernetes.executor.useDriverPodIP, on by default): 0.0.0.0 would send them to themselves.
        "spark.driver.bindAddress": pod_ip,
        "spark.driver.port": str(DRIVER_PORT),
        "spark.driver.blockManager.port": str(BLOCK_MANAGER_PORT),
        "spark.blockManager.port": str(BLOCK_MANAGER_PORT),
        "spark.driver.memory": settings.spark_driver_memory_k8s,
        "spark.executor.memory": settings.spark_executor_memory,
        "spark.executor.cores": str(_cores(settings.spark_executor_cpu)),
        "spark.kubernetes.executor.request.cores": settings.spark_executor_cpu,
        "spark.kubernetes.executor.limit.cores": settings.spark_executor_cpu,
        "spark.dynamicAllocation.enabled": "true",
        "spark.dynamicAllocation.shuffleTracking.enabled": "true",
        "spark.dynamicAllocation.minExecutors": "0",
        "spark.dynamicAllocation.initialExecutors": "1",
        "spark.dynamicAllocation.maxExecutors": str(settings.spark_max_executors),
        "spark.dynamicAllocation.executorIdleTimeout": "60s",
        "spark.ui.enabled": "false",
        # S3A with IRSA: the EKS webhook mounts the token and sets AWS_ROLE_ARN/AWS_WEB_IDENTITY_TOKEN_FILE.
        "spark.hadoop.fs.s3a.aws.credentials.provider": WEB_IDENTITY_PROVIDER,
        "spark.hadoop.fs.s3a.endpoint.region": settings.aws_region,
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        **S3A_COMMITTER_CONF,
    }
    if settings.s3_endpoint_url:
        conf["spark.hadoop.fs.s3a.endpoint"] = settings.s3_endpoint_url
        conf["spark.hadoop.fs.s3a.path.style.access"] = "true"
    return conf


# ------------------------------------------------------------------------------------------------
# The Job manifest
# ------------------------------------------------------------------------------------------------
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
    heap = jvm_memory_to_mib(settings.spark_driver_memory_k8s)
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


# ------------------------------------------------------------------------------------------------
# A small Kubernetes API client (httpx, sync)
# ------------------------------------------------------------------------------------------------
class _KubeApi:
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
                raise RuntimeError(
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

    def request(self, method: str, path: str, *, ok=(200, 201, 202), **kwargs) -> dict[str, Any] | None:
        """JSON request; returns None on 404, raises KubernetesApiError on other non-ok statuses."""
        headers = {**self.headers(), **kwargs.pop("headers", {})}
        response = self._client.request(method, path, headers=headers, **kwargs)
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
        response = self._client.get(
            f"{self._pods}/{pod}/log",
            params={"container": DRIVER_CONTAINER, "tailLines": str(lines)},
            headers={**self.headers(), "Accept": "text/plain"},
        )
        if response.status_code != 200:
            return []
        return response.text.splitlines()[-lines:]


# ------------------------------------------------------------------------------------------------
# Following a Job
# ------------------------------------------------------------------------------------------------
def _condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def _job_outcome(job: dict[str, Any]) -> str | None:
    """'succeeded', 'failed' or None (still running)."""
    if _condition(job, "Complete") or _condition(job, "SuccessCriteriaMet"):
        return "succeeded"
    if _condition(job, "Failed") or _condition(job, "FailureTarget"):
        return "failed"
    status = job.get("status") or {}
    if status.get("succeeded", 0) >= 1:
        return "succeeded"
    if status.get("failed", 0) > job.get("spec", {}).get("backoffLimit", 0):
        return "failed"
    return None


def _driver_status(pod: dict[str, Any]) -> dict[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == DRIVER_CONTAINER:
            return status
    return {}


def _waiting_reason(pod: dict[str, Any]) -> tuple[str, str] | None:
    waiting = (_driver_status(pod).get("state") or {}).get("waiting") or {}
    if waiting.get("reason"):
        return waiting["reason"], waiting.get("message", "")
    return None


def _describe_pod_failure(pod: dict[str, Any] | None) -> tuple[str, str | None]:
    """(phase, reason) of a pod that did not succeed; reason None when the pod says nothing."""
    if pod is None:
        return "Unknown", None
    status = pod.get("status") or {}
    phase = status.get("phase") or "Unknown"
    if status.get("reason"):  # e.g. Evicted, DeadlineExceeded, NodeLost, UnexpectedAdmissionError
        message = status.get("message")
        return phase, f"{status['reason']}: {message}" if message else status["reason"]
    state = _driver_status(pod).get("state") or {}
    if terminated := state.get("terminated"):
        reason = terminated.get("reason") or "Terminated"
        text = f"{reason} (exit code {terminated.get('exitCode')})"
        if terminated.get("message"):
            text += f": {terminated['message']}"
        return phase, text
    if waiting := _waiting_reason(pod):
        reason, message = waiting
        return phase, f"{reason}: {message}" if message else reason
    return phase, None


class _LogFollower(threading.Thread):
    """Streams the driver container's log lines into the logger, keeping the last ones for a failure report.

    Reconnects with `sinceTime` when the API server drops the stream while the container still runs.
    """

    def __init__(self, api: _KubeApi, pod: str, logger, step: str, keep: int, tail: int | None) -> None:
        super().__init__(name=f"spark-log-{pod}", daemon=True)
        self.api, self.pod, self.logger, self.step = api, pod, logger, step
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self.tail = tail  # on reattach: start from the last lines, not the whole log again
        self.stop_event = threading.Event()
        self._since: str | None = None

    def _stream(self, client: httpx.Client) -> Iterator[str]:
        params = {"container": DRIVER_CONTAINER, "follow": "true", "timestamps": "true"}
        if self._since:
            params["sinceTime"] = self._since
        elif self.tail is not None:
            params["tailLines"] = str(self.tail)
        path = f"/api/v1/namespaces/{self.api.namespace}/pods/{self.pod}/log"
        headers = {**self.api.headers(), "Accept": "text/plain"}
        with client.stream("GET", path, params=params, headers=headers, timeout=None) as response:
            if response.status_code != 200:
                response.read()
                raise KubernetesApiError("GET", path, response.status_code, response.text)
            yield from response.iter_lines()

    def _still_running(self) -> bool:
        try:
            pod = self.api.get_pod(self.pod)
        except (httpx.HTTPError, KubernetesApiError):
            return True  # can't tell: try the stream again
        return pod is not None and "running" in (_driver_status(pod).get("state") or {})

    def run(self) -> None:
        last_seen: tuple[str, str] | None = None
        resume_after: tuple[str, str] | None = None  # only lines later than this after a reconnect
        with self.api.new_client() as client:
            for _attempt in range(20):
                try:
                    for raw in self._stream(client):
                        stamp, _, line = raw.partition(" ")
                        key = _timestamp_key(stamp)
                        if key is None:  # no timestamp: keep the raw line
                            line = raw
                        elif resume_after is not None and key <= resume_after:
                            continue  # delivered before the reconnect
                        else:
                            last_seen, resume_after = key, None
                        self.lines.append(line)
                        self.logger.info("[%s] %s", self.step, line)
                    if self.stop_event.is_set() or not self._still_running():
                        return  # the container finished: its log is complete
                    raise httpx.RemoteProtocolError("log stream closed while the container runs")
                except (httpx.HTTPError, KubernetesApiError) as exc:
                    if self.stop_event.is_set():
                        return
                    resume_after = last_seen
                    self._since = f"{last_seen[0]}Z" if last_seen else None
                    self.logger.debug("log stream of %s interrupted (%s); reconnecting", self.pod, exc)
                    if self.stop_event.wait(1.0):
                        return


def _timestamp_key(stamp: str) -> tuple[str, str] | None:
    """RFC3339Nano (UTC, variable-width fraction) -> a key that sorts in time order; None if not one."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z", stamp)
    if not match:
        return None
    return match.group(1), (match.group(2) or "").ljust(9, "0")


def _reported(job: dict[str, Any]) -> bool:
    return (job.get("metadata", {}).get("labels") or {}).get(LABEL_FAILURE_REPORTED) == "true"


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While following a Job, SIGTERM raises SystemExit instead of killing the process on the spot, so the
    Job is deleted first. Only where nobody handles SIGTERM yet (Prefect's flow engine already turns it
    into `TerminationSignal`) and only in the main thread (the only one that can set handlers)."""

    def _raise(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    in_main = threading.current_thread() is threading.main_thread()
    installed = in_main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    if installed:
        signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        if installed and signal.getsignal(signal.SIGTERM) is _raise:  # leave a later handler alone
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _delete_interrupted(
    api: _KubeApi,
    name: str,
    step: str,
    logger: logging.Logger | logging.LoggerAdapter,
    timing: JobTiming,
    why: BaseException,
) -> None:
    try:
        api.delete_job(name, timing.delete_timeout_s)
        logger.warning("Spark step %s interrupted (%s): deleted Job %s", step, type(why).__name__, name)
    except Exception as exc:  # never hide the interruption itself; the owner reference is the fallback
        logger.error("Spark step %s interrupted: could not delete Job %s: %s", step, name, exc)


def run_step_on_kubernetes(
    step: str,
    args: list[str],
    settings: Settings,
    *,
    flow_run_id: str,
    task_run_id: str | None = None,
    logger: logging.Logger | logging.LoggerAdapter,
    timing: JobTiming | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Run `python -m flows.spark.jobs.<step> <args>` as a Kubernetes Job and wait for it (see module doc).

    Raises SparkStepFailed when the Job fails (the failed Job is then labelled as reported, so the next
    attempt of the task starts a fresh Job), KubernetesApiError when the API refuses a call. Anything else
    that ends the wait (cancellation, TerminationSignal, SIGTERM, KeyboardInterrupt) deletes the Job, then
    propagates. `environ` (default: the process environment) says which flow-run pod owns the Job.
    """
    timing = timing or JobTiming()
    owner = OwnerPod.from_env(environ)
    if owner is not None and owner.namespace not in (None, settings.k8s_namespace):
        logger.warning(
            "Spark step %s: the flow-run pod is in namespace %s, the Job goes to %s: the Job gets no owner "
            "and outlives a deleted flow-run pod (set VAMOSJUNTOS_K8S_NAMESPACE to the pod's namespace)",
            step,
            owner.namespace,
            settings.k8s_namespace,
        )
        owner = None
    manifest = build_job_manifest(
        step, args, settings, flow_run_id=flow_run_id, task_run_id=task_run_id, owner=owner
    )
    labels = manifest["metadata"]["labels"]
    selector = ",".join(
        [f"{key}={labels[key]}" for key in (LABEL_FLOW_RUN, LABEL_STEP, LABEL_ARGS)]
        + [f"!{LABEL_FAILURE_REPORTED}"]
    )
    api = _KubeApi(settings, timing.request_timeout_s)
    name: str | None = None
    try:
        existing = [j for j in api.list_jobs(selector) if not _reported(j)]
        existing.sort(key=lambda j: j.get("metadata", {}).get("creationTimestamp") or "")
        if existing:
            job = existing[-1]
            name = job["metadata"]["name"]
            outcome = _job_outcome(job)
            logger.info(
                "Spark step %s: reattaching to Job %s of this flow run (%s)",
                step,
                name,
                outcome or "running",
            )
            if outcome == "succeeded":
                return
            reattached = True
        else:
            job = api.create_job(manifest)
            name = job["metadata"]["name"]
            reattached = False
            logger.info(
                "Spark step %s: started Job %s in namespace %s (image %s)",
                step,
                name,
                settings.k8s_namespace,
                settings.spark_image,
            )
        with _sigterm_raises():
            _follow(api, step, name, settings, logger, timing, reattached=reattached)
    except (SparkStepFailed, KubernetesApiError, httpx.HTTPError):
        raise  # the Job has ended or been dealt with; or the API failed and a retry reattaches to it
    except BaseException as interrupted:
        if name is not None:
            _delete_interrupted(api, name, step, logger, timing, interrupted)
        raise
    finally:
        api.close()


def _follow(
    api: _KubeApi,
    step: str,
    name: str,
    settings: Settings,
    logger,
    timing: JobTiming,
    *,
    reattached: bool,
) -> None:
    give_up_at = time.monotonic() + settings.spark_job_deadline_s + timing.deadline_slack_s
    follower: _LogFollower | None = None
    fatal_since: dict[str, float] = {}
    pod: dict[str, Any] | None = None

    def stop_logs(wait_s: float) -> list[str]:
        if follower is None:
            return []
        follower.join(wait_s)
        follower.stop_event.set()
        return list(follower.lines)

    def fail(phase: str, reason: str, *, mark: bool = True, wait_logs_s: float = 5.0) -> SparkStepFailed:
        lines = stop_logs(wait_logs_s)
        pod_name = (pod or {}).get("metadata", {}).get("name")
        if not lines and pod_name:
            lines = api.tail_log(pod_name, timing.log_tail_lines)
        if mark:
            try:
                api.label_job(name, {LABEL_FAILURE_REPORTED: "true"})
            except (httpx.HTTPError, KubernetesApiError) as exc:
                logger.warning("could not label failed Job %s as reported: %s", name, exc)
        error = SparkStepFailed(
            step, phase, reason, lines[-timing.log_tail_lines :], job_name=name, pod_name=pod_name
        )
        logger.error("%s", error)
        return error

    try:
        while True:
            job = api.get_job(name)
            if job is None:
                raise fail("Unknown", "JobDeleted: the Job disappeared before it finished", mark=False)
            outcome = _job_outcome(job)
            pods = api.pods_of_job(name)
            pod = pods[-1] if pods else pod
            if pod is not None and follower is None:
                phase = (pod.get("status") or {}).get("phase")
                driver = _driver_status(pod).get("state") or {}
                if phase in ("Running", "Succeeded", "Failed") and (
                    "running" in driver or "terminated" in driver
                ):
                    follower = _LogFollower(
                        api,
                        pod["metadata"]["name"],
                        logger,
                        step,
                        timing.log_tail_lines,
                        tail=timing.log_tail_lines if reattached else None,
                    )
                    follower.start()
            if outcome == "succeeded":
                stop_logs(30.0)
                logger.info("Spark step %s: Job %s succeeded", step, name)
                return
            if outcome == "failed":
                cond = _condition(job, "Failed") or _condition(job, "FailureTarget") or {}
                job_reason = cond.get("reason") or "Failed"
                if cond.get("message"):
                    job_reason += f": {cond['message']}"
                phase, pod_reason = _describe_pod_failure(pod)
                if pod is None:
                    phase = "Failed"
                raise fail(phase, pod_reason or job_reason, wait_logs_s=10.0)
            if pod is not None and (waiting := _waiting_reason(pod)) and waiting[0] in FATAL_WAITING_REASONS:
                first = fatal_since.setdefault(waiting[0], time.monotonic())
                if time.monotonic() - first >= timing.fatal_waiting_grace_s:
                    phase, reason = _describe_pod_failure(pod)
                    # it would only wait for its deadline; the next attempt starts afresh
                    api.delete_job(name)
                    raise fail(phase, reason or waiting[0], mark=False, wait_logs_s=0)
            else:
                fatal_since.clear()
            if time.monotonic() > give_up_at:
                api.delete_job(name)
                raise fail("Unknown", "Timeout: the Job outlived activeDeadlineSeconds", mark=False)
            time.sleep(timing.poll_interval_s)
    finally:  # interrupted or done: the log follower stops with the wait
        if follower is not None:
            follower.stop_event.set()
