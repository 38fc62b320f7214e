"""The work pool's base job template, rendered as the Prefect Kubernetes worker renders it, no cluster."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from typing import Any

import pytest
import yaml
from prefect.client.schemas.objects import Flow, FlowRun, WorkPool
from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL, temporary_settings
from prefect.utilities.templating import find_placeholders
from prefect_kubernetes.worker import KubernetesWorker, KubernetesWorkerJobConfiguration

from flows.settings import Settings
from flows.spark.kubernetes.manifest import build_job_manifest
from flows.spark.kubernetes.names import OWNER_POD_ENV
from flows.spark.kubernetes.owner_pod import OwnerPod
from flows.spark.kubernetes.timing import spark_time_budget_s
from tests.k8s.conftest import REPO, validate_strict
from tests.k8s.kube_standin import KubeStandIn
from tests.k8s.prefect_worker_chart import worker_env

TEMPLATE_PATH = REPO / "k8s" / "work-pool-base-job-template.json"
API_KEY = "pnu_SENTINEL0secret0api0key0do0not0leak"

# One sentinel per job variable, of the variable's type and distinct from its default.
SENTINELS: dict[str, Any] = {
    "image": "registry.example/sentinel-image:var-image",
    "namespace": "sentinel-namespace",
    "service_account_name": "sentinel-service-account",
    "image_pull_policy": "Never",
    "cpu_request": "1111m",
    "cpu_limit": "2222m",
    "memory_request": "3333Mi",
    "memory_limit": "4444Mi",
    "env": {"SENTINEL_ENV": "sentinel-env-value"},
    "labels": {"sentinel-label": "sentinel-label-value"},
    "annotations": {"sentinel.io/annotation": "sentinel-annotation-value"},
    "name": "sentinel-name",
    "command": "python -m sentinel_command --flag",
    "finished_job_ttl": 40001,
    "active_deadline_seconds": 40002,
    "tmp_size_limit": "5555Mi",
    "job_watch_timeout_seconds": 40003,
    "pod_watch_timeout_seconds": 40004,
    "stream_output": False,
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return json.loads(TEMPLATE_PATH.read_text())


# The worker has an API URL; with none, resolving {{ prefect.blocks/variables }} placeholders would start
# an ephemeral server. No request is made when a template has no such placeholder (ours has none).
WORKER_API_URL = "http://127.0.0.1:9/api"


def render(template: dict[str, Any], values: dict[str, Any]) -> KubernetesWorkerJobConfiguration:
    """What the worker builds from the pool's template and a deployment's job variables (its own code)."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url or WORKER_API_URL
    with temporary_settings({PREFECT_API_URL: url}):
        return asyncio.run(KubernetesWorkerJobConfiguration.from_template_and_values(template, values))


def prepare(config: KubernetesWorkerJobConfiguration, flow_name: str = "lakehouse") -> dict[str, Any]:
    flow = Flow(id=uuid.uuid4(), name=flow_name)
    flow_run = FlowRun(id=uuid.uuid4(), name="brave-otter", flow_id=flow.id)
    pool = WorkPool(name="vamosjuntos-eks", type="kubernetes")
    config.prepare_for_flow_run(flow_run, flow=flow, work_pool=pool, worker_name="worker-1")
    return config.job_manifest


def leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in (k, *leaves(v))]
    if isinstance(value, list):
        return [x for v in value for x in leaves(v)]
    return [value]


def test_every_variable_is_referenced_and_every_placeholder_declared(template):
    declared = set(template["variables"]["properties"])
    used = {p.name for p in find_placeholders(template["job_configuration"])}
    assert declared == used
    assert set(SENTINELS) == declared, "give every variable a sentinel"


def test_every_variable_reaches_the_rendered_job(template):
    config = render(template, SENTINELS)
    manifest = prepare(config)
    everything = leaves(manifest) + leaves(config.model_dump(exclude={"job_manifest"}))
    for name, sentinel in SENTINELS.items():
        expected = list(sentinel.values()) if isinstance(sentinel, dict) else [sentinel]
        if name == "command":
            assert manifest["spec"]["template"]["spec"]["containers"][0]["args"] == sentinel.split()
            continue
        if name == "name":
            assert manifest["metadata"]["generateName"] == "sentinel-name-"
            continue
        for value in expected:
            assert value in everything, f"job variable {name!r} ({value!r}) does not reach the Job"
    assert config.stream_output is False
    validate_strict(manifest)


@pytest.mark.parametrize("name", sorted(SENTINELS))
def test_each_variable_changes_the_rendering(template, name):
    """Differential proof, one variable at a time: a variable the template drops would render the same."""
    baseline = render(template, {})
    changed = render(template, {name: SENTINELS[name]})
    assert baseline.model_dump(mode="json") != changed.model_dump(mode="json")


def test_defaults_render_a_strictly_valid_locked_down_job(template):
    manifest = prepare(render(template, {"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:abc"}))
    validate_strict(manifest)
    spec = manifest["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] == 3600
    assert (
        spec["activeDeadlineSeconds"]
        == template["variables"]["properties"]["active_deadline_seconds"]["default"]
    )
    assert spec["completions"] == spec["parallelism"] == 1
    assert "completions" not in pod and "parallelism" not in pod
    assert manifest["metadata"]["namespace"] == "vamosjuntos"
    assert pod["serviceAccountName"] == "prefect-flows"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DO_NOT_TRACK"] == "1" and env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert env["PREFECT_HOME"].startswith("/tmp")
    # the MongoDB URI comes from a Kubernetes Secret, by reference (optional: only ingest needs it)
    mongo = next(e for e in container["env"] if e["name"] == "VAMOSJUNTOS_MONGO_URI")
    assert mongo == {
        "name": "VAMOSJUNTOS_MONGO_URI",
        "valueFrom": {"secretKeyRef": {"name": "vamosjuntos-mongo", "key": "uri", "optional": False}},
    }
    assert pod["nodeSelector"] == {"vamosjuntos.io/pool": "flows"}  # terraform's on-demand node group
    # the worker's own eviction handling: backoffLimit 0 -> the run is rescheduled on SIGTERM
    assert env["PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR"] == "reschedule"
    assert container["args"][:3] == ["prefect", "flow-run", "execute"]


def test_deployment_env_is_merged_with_the_offline_defaults(template):
    manifest = prepare(render(template, {"env": {"VAMOSJUNTOS_RAW_ROOT": "s3://vj-raw"}}))
    entries = manifest["spec"]["template"]["spec"]["containers"][0]["env"]
    env = {e["name"]: e.get("value") for e in entries}
    assert env["VAMOSJUNTOS_RAW_ROOT"] == "s3://vj-raw"
    assert env["DO_NOT_TRACK"] == "1"
    assert [e["name"] for e in entries].count("VAMOSJUNTOS_MONGO_URI") == 1


def test_prefects_default_template_fails_strict_validation():
    """Why the committed template differs from `prefect work-pool get-default-base-job-template`."""
    import kubernetes_validate
    from prefect_kubernetes.worker import KubernetesWorkerVariables  # noqa: F401

    default = KubernetesWorker.get_default_base_job_template()
    manifest = prepare(
        render(
            default,
            {
                "image": "x:1",
                "cpu_request": "1",
                "cpu_limit": "1",
                "memory_request": "1Gi",
                "memory_limit": "1Gi",
            },
        )
    )
    with pytest.raises(kubernetes_validate.ValidationError, match=r"completions|parallelism"):
        validate_strict(manifest)


def test_worker_refuses_a_template_without_the_job_basics(template):
    """The worker's own manifest check still passes for ours (it is fragile: it needs the prefect-job
    container and accepts completions/parallelism moved to the Job spec); removing them must fail."""
    broken = copy.deepcopy(template)
    spec = broken["job_configuration"]["job_manifest"]["spec"]
    del spec["completions"], spec["parallelism"]
    with pytest.raises(ValueError, match="missing required attributes"):
        render(broken, {})


# --- secrets of the rendering (worker) process ----------------------------------------------------
def test_worker_api_key_leaks_into_a_plain_render(template):
    """Documents Prefect's behaviour: every PREFECT_* setting of the worker process, the API key
    included, is copied into the Job env by prepare_for_flow_run. Hence the next test."""
    with temporary_settings({PREFECT_API_KEY: API_KEY, PREFECT_API_URL: "https://prefect.example/api"}):
        manifest = prepare(render(template, {}))
    env = {e["name"]: e.get("value") for e in manifest["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PREFECT_API_KEY"] == API_KEY
    assert env["PREFECT_API_URL"] == "https://prefect.example/api"


def test_worker_submits_the_api_key_as_a_secret_reference(template, monkeypatch):
    """With the worker settings from k8s/prefect-worker-values.yaml, the Job the worker really POSTs to the
    API carries PREFECT_API_KEY as a secretKeyRef, never as text (worker code, run against the stand-in)."""
    from kubernetes_asyncio.client import ApiClient, Configuration

    # The chart derives these from the values (cloudApiConfig.apiKeySecret, jobApiKeyPropagation).
    values = yaml.safe_load((REPO / "k8s" / "prefect-worker-values.yaml").read_text())
    chart_env = worker_env(values, release_namespace="vamosjuntos")
    secret_name = chart_env.get("PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_NAME")
    secret_key = chart_env.get("PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_KEY")
    assert secret_name and secret_key, "the Helm values must point the worker at the API key Secret"
    monkeypatch.setenv("PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_NAME", secret_name)
    monkeypatch.setenv("PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_KEY", secret_key)

    with temporary_settings({PREFECT_API_KEY: API_KEY, PREFECT_API_URL: "https://prefect.example/api"}):
        config = render(template, {"image": "x.example/flow-run:abc"})
        prepare(config)

    async def submit(url: str):
        conf = Configuration(host=url)
        worker = KubernetesWorker(work_pool_name="vamosjuntos-eks")  # not entered: no Prefect API needed
        async with ApiClient(conf) as client:
            await worker._create_job(config, client)

    with KubeStandIn() as kube:
        asyncio.run(submit(kube.url))
        posted = kube.job_posts
        assert len(posted) == 1
        body = posted[0].body
    assert API_KEY not in json.dumps(body)
    env = {e["name"]: e for e in body["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PREFECT_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": secret_name, "key": secret_key}
    validate_strict(body)


# --- the flow-run pod owns its Spark Jobs, and lives long enough for them ------------------------------
def _kubelet_env(container: dict[str, Any], pod_metadata: dict[str, str]) -> dict[str, str]:
    """The env a kubelet gives the container: plain values, and downward-API fields from the pod."""
    env = {}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        elif field := entry.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath"):
            env[entry["name"]] = pod_metadata[field.removeprefix("metadata.")]
    return env


def test_the_flow_run_pod_knows_itself_and_owns_the_spark_jobs_it_starts(template):
    """The template hands the flow-run container its pod's name, uid and namespace (downward API); the
    runner reads them and makes that pod the owner of each Spark Job."""
    manifest = prepare(render(template, {"image": "x.example/flow-run:abc"}))
    validate_strict(manifest)
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    refs = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in container["env"]
        if "fieldRef" in e.get("valueFrom", {})
    }
    assert {refs.get(OWNER_POD_ENV[k]) for k in ("name", "uid", "namespace")} == {
        "metadata.name",
        "metadata.uid",
        "metadata.namespace",
    }
    pod = {
        "name": "lakehouse-abc12-x7k2p",
        "uid": "6c1f3e0a-9b8d-4c2e-a1f0-3d5e7b9c1a2f",
        "namespace": "vamosjuntos",
    }
    owner = OwnerPod.from_env(_kubelet_env(container, pod))
    job = build_job_manifest(
        "pnadc_to_processing", [], Settings(_env_file=None), flow_run_id="f-1", owner=owner
    )
    validate_strict(job)
    [ref] = job["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"], ref["blockOwnerDeletion"]) == (
        "Pod",
        pod["name"],
        pod["uid"],
        True,
    )


def test_flow_run_deadlines_cover_the_spark_steps_they_start(template):
    """A flow-run pod's activeDeadlineSeconds (prefect.yaml, else the template's default) is at least the
    time its Spark steps may take (`spark_time_budget_s`: steps x attempts x the step deadline + slack), so
    Kubernetes never stops a flow run while a step it may still finish is running. `lakehouse` ingests
    first: it gets ingest-pnadc's deadline on top."""
    from flows.pipeline import spark_step
    from flows.spark.runner import STEPS

    deployments = {d["name"]: d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]}
    default = template["variables"]["properties"]["active_deadline_seconds"]["default"]

    def deadline(name: str) -> int:
        return deployments[name]["work_pool"]["job_variables"].get("active_deadline_seconds", default)

    def budget(env: dict[str, str]) -> int:
        step_deadline = env.get("VAMOSJUNTOS_SPARK_JOB_DEADLINE_S")  # the flow-run pod's settings
        settings = Settings(
            _env_file=None, **({"spark_job_deadline_s": step_deadline} if step_deadline else {})
        )
        # transform (flows/pipeline.py) runs each Spark step once, one after another (a run starts one Job
        # per step: tests/spark/test_steps.py counts them); a task is tried 1 + retries times.
        return spark_time_budget_s(
            len(STEPS),
            1 + spark_step.retries,
            settings,
            retry_delay_s=float(spark_step.retry_delay_seconds or 0),
        )

    entrypoints = {d["entrypoint"].rsplit(":", 1)[1]: name for name, d in deployments.items()}
    for flow_name, extra in (("transform", 0), ("lakehouse", deadline(entrypoints["ingest_pnadc"]))):
        name = entrypoints[flow_name]
        needed = budget(deployments[name]["work_pool"]["job_variables"].get("env") or {}) + extra
        assert deadline(name) >= needed, f"{name}: flow-run pod deadline {deadline(name)} s < {needed} s"
    # a deployment of the Spark flow that sets no deadline gets enough from the template
    assert default >= budget({}), f"template default {default} s < {budget({})} s"
