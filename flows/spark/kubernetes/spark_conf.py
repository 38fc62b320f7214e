"""The Spark conf of a step's driver inside its Job's pod (the driver side: no HTTP client here)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from flows.errors import ConfigurationError
from flows.settings import Settings
from flows.spark.jvm import JVM_OPTIONS
from flows.spark.kubernetes.names import (
    BLOCK_MANAGER_PORT,
    DRIVER_PORT,
    EXECUTOR_POD_TEMPLATE_NAME,
    IMAGE_SPARK_CONF_DIR,
    LABEL_SPARK,
    SPARK_K8S_MASTER,
)
from flows.spark.kubernetes.quantities import cpu_to_cores

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


def _app_prefix(name: str) -> str:
    """A DNS-1123 prefix Spark can use for executor pod names (<= 47 chars)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return (slug[:47].rstrip("-")) or "spark"


def _executor_cores(cpu: str) -> int:
    try:
        return cpu_to_cores(cpu)
    except ValueError:
        raise ConfigurationError(
            f"VAMOSJUNTOS_SPARK_EXECUTOR_CPU={cpu!r} is not a Kubernetes CPU quantity (e.g. '1' or '1500m')"
        ) from None


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
        raise ConfigurationError(
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
        # The executors run the tasks here: they need the JIT option most (flows/spark/session.py).
        "spark.driver.extraJavaOptions": JVM_OPTIONS,
        "spark.executor.extraJavaOptions": JVM_OPTIONS,
        "spark.executor.memory": settings.spark_executor_memory,
        "spark.executor.cores": str(_executor_cores(settings.spark_executor_cpu)),
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
