"""The Job manifest of a Spark step (flows/spark/kubernetes/manifest.py): pure, strictly valid."""

from __future__ import annotations

import kubernetes_validate
import pytest

from flows.errors import ConfigurationError
from flows.spark.kubernetes.manifest import build_job_manifest
from flows.spark.kubernetes.names import (
    LABEL_ARGS,
    LABEL_FLOW_RUN,
    LABEL_SPARK,
    LABEL_STEP,
)
from tests.k8s.conftest import validate_strict
from tests.spark.kubernetes.support import (
    ARGS,
    FLOW_RUN,
    STEP,
    cloud_settings,
)


# --- the Job manifest --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("step", "args"),
    [
        ("ibge_to_processing", ["--ingestion-date", "2026-11-25"]),
        ("pnadc_to_processing", ["--ingestion-date", "2026-11-25"]),
        ("processing_to_consumer", ["--ingestion-date", "2026-11-25", "--lake-root", "s3://vj"]),
    ],
)
def test_rendered_job_is_strictly_valid_and_runs_the_step_as_driver(step, args):
    settings = cloud_settings()
    job = build_job_manifest(step, args, settings, flow_run_id=FLOW_RUN, task_run_id="t-1")
    validate_strict(job)
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["python", "-m", f"flows.spark.jobs.{step}", *args]
    assert container["image"] == settings.spark_image
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == settings.spark_job_deadline_s
    assert spec["ttlSecondsAfterFinished"] == settings.spark_job_ttl_s
    assert spec["completions"] == spec["parallelism"] == 1
    assert "completions" not in pod and "parallelism" not in pod
    assert pod["serviceAccountName"] == "spark-driver"
    labels = job["metadata"]["labels"]
    assert labels[LABEL_FLOW_RUN] == FLOW_RUN and labels[LABEL_STEP] == step
    assert job["spec"]["template"]["metadata"]["labels"][LABEL_SPARK] == "true"
    # non-root, locked down
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["capabilities"]["drop"] == ["ALL"] and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    # env: the step's settings, the runner mode, the downward API; never a secret
    env = {e["name"]: e for e in container["env"]}
    assert env["VAMOSJUNTOS_SPARK_RUNNER"]["value"] == "kubernetes"
    assert env["VAMOSJUNTOS_RAW_ROOT"]["value"] == "s3://vj-raw"
    assert env["SPARK_DRIVER_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["SPARK_DRIVER_POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert "VAMOSJUNTOS_MONGO_URI" not in env and "VAMOSJUNTOS_K8S_API_URL" not in env
    assert "s3cr3t" not in str(job)
    # memory: JVM notation turned into a Kubernetes quantity with room for overhead
    assert container["resources"]["limits"]["memory"] == "2868Mi"  # 2048Mi heap + ceil(40%)
    assert container["resources"]["requests"] == container["resources"]["limits"]


def test_strict_validation_catches_what_prefects_default_gets_wrong():
    """The check is real: completions under the pod spec (Prefect's default template) is rejected."""
    job = build_job_manifest(STEP, ARGS, cloud_settings(), flow_run_id=FLOW_RUN)
    job["spec"]["template"]["spec"]["completions"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_strict(job)


def test_different_arguments_are_different_jobs():
    settings = cloud_settings()
    a = build_job_manifest(STEP, ["--ingestion-date", "2026-11-25"], settings, flow_run_id=FLOW_RUN)
    b = build_job_manifest(STEP, ["--ingestion-date", "2026-11-26"], settings, flow_run_id=FLOW_RUN)
    assert a["metadata"]["labels"][LABEL_ARGS] != b["metadata"]["labels"][LABEL_ARGS]


def test_invalid_step_name_is_refused():
    with pytest.raises(ValueError, match="invalid step"):
        build_job_manifest("../../bin/sh", [], cloud_settings(), flow_run_id=FLOW_RUN)


def test_a_driver_memory_kubernetes_spells_is_a_configuration_error():
    """`2Gi` is Kubernetes' notation, not the JVM's: the error names the variable to fix."""
    with pytest.raises(ConfigurationError, match=r"VAMOSJUNTOS_SPARK_DRIVER_MEMORY_K8S.*'2Gi'"):
        build_job_manifest(STEP, ARGS, cloud_settings(spark_driver_memory_k8s="2Gi"), flow_run_id=FLOW_RUN)
