"""prefect.yaml against a real Prefect server: `prefect deploy --all` on the Kubernetes pool, and one
deployment run end to end by a real (process) worker."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import yaml

from flows.k8s.deploy_env import main as deploy_env_main
from flows.k8s.deploy_env import problems
from tests.k8s.conftest import REPO, prefect, prefect_env, validate_strict

POOL = "vamosjuntos-eks"
IMAGE_TAG = "3f2a9c1d0e4b"
DEPLOY_ENV = {
    "IMAGE_TAG": IMAGE_TAG,
    "FLOW_RUN_REPOSITORY": "123456789012.dkr.ecr.us-east-1.amazonaws.com/vamosjuntos-flow-run",
    "SPARK_REPOSITORY": "123456789012.dkr.ecr.us-east-1.amazonaws.com/vamosjuntos-spark",
    "VAMOSJUNTOS_RAW_ROOT": "s3://vj-raw-123",
    "VAMOSJUNTOS_PROCESSING_ROOT": "s3://vj-processing-123",
    "VAMOSJUNTOS_CONSUMER_ROOT": "s3://vj-consumer-123",
    "VAMOSJUNTOS_AWS_REGION": "sa-east-1",
    "VAMOSJUNTOS_GLUE_DATABASE": "vamosjuntos",
    "VAMOSJUNTOS_ATHENA_WORKGROUP": "vamosjuntos",
}
EXPECTED = {  # deployment name -> (flow name, entrypoint)
    "lakehouse-daily": ("lakehouse", "flows/pipeline.py:lakehouse"),
    "ingest-ibge": ("ingest_ibge", "flows/pipeline.py:ingest_ibge"),
    "ingest-pnadc": ("ingest_pnadc", "flows/pipeline.py:ingest_pnadc"),
    "transform": ("transform", "flows/pipeline.py:transform"),
    "publish": ("publish", "flows/pipeline.py:publish"),
    "answer": ("answer", "flows/pipeline.py:answer"),
    "backfill": ("backfill", "flows/ops/backfill_flow.py:backfill"),
    "rollback": ("rollback", "flows/ops/rollback_flow.py:rollback"),
}


def api(url: str, method: str, path: str, body: Any = None) -> Any:
    response = httpx.request(method, f"{url}{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def deployments(url: str, pool: str = POOL) -> dict[str, dict[str, Any]]:
    """The deployments on one pool (the session's server is shared: tests/ops registers one of its own)."""
    on_pool = {"work_pools": {"name": {"any_": [pool]}}}
    return {d["name"]: d for d in api(url, "POST", "/deployments/filter", on_pool)}


@pytest.fixture(scope="module")
def deployed(prefect_server, tmp_path_factory):
    """The Kubernetes pool from the committed template, then `prefect deploy --all --no-prompt`."""
    home = tmp_path_factory.mktemp("deploy-home")
    env = prefect_env(home, prefect_server)
    created = prefect(
        [
            "work-pool",
            "create",
            "--type",
            "kubernetes",
            "--base-job-template",
            str(REPO / "k8s" / "work-pool-base-job-template.json"),
            POOL,
        ],
        env,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    result = prefect(["deploy", "--all", "--no-prompt"], {**env, **DEPLOY_ENV})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_deploy_all_registers_every_flow_on_the_kubernetes_pool(prefect_server, deployed):
    output = deployed.stdout + deployed.stderr
    assert "/opt/prefect" not in output, "deploy warned about the working directory: pull step missing?"
    assert "Warning" not in output and "FutureWarning" not in output, output[-2000:]
    found = deployments(prefect_server)
    assert set(found) == set(EXPECTED)
    flows = {f["id"]: f["name"] for f in api(prefect_server, "POST", "/flows/filter", {})}
    for name, (flow_name, entrypoint) in EXPECTED.items():
        d = found[name]
        assert flows[d["flow_id"]] == flow_name
        assert d["entrypoint"] == entrypoint
        assert d["work_pool_name"] == POOL
        assert d["pull_steps"] == [
            {
                "prefect.deployments.steps.set_working_directory": {
                    "directory": "/opt/prefect/vamosjuntos-lakehouse"
                }
            }
        ]
        jv = d["job_variables"]
        assert jv["image"] == f"{DEPLOY_ENV['FLOW_RUN_REPOSITORY']}:{IMAGE_TAG}"
        assert jv["namespace"] == "vamosjuntos"
        assert jv["service_account_name"] == "prefect-flows"
        for key in ("cpu_request", "cpu_limit", "memory_request", "memory_limit", "active_deadline_seconds"):
            assert jv[key], f"{name}: {key} unset"
        env = jv["env"]
        assert env["VAMOSJUNTOS_SPARK_RUNNER"] == "kubernetes"
        assert env["VAMOSJUNTOS_SPARK_IMAGE"] == f"{DEPLOY_ENV['SPARK_REPOSITORY']}:{IMAGE_TAG}"
        assert env["VAMOSJUNTOS_RAW_ROOT"] == "s3://vj-raw-123"
        assert env["VAMOSJUNTOS_AWS_REGION"] == "sa-east-1"
        assert "{{" not in json.dumps(jv), f"{name}: unresolved template in job variables"


def test_schedules_and_parameters(prefect_server, deployed):
    found = deployments(prefect_server)
    daily = found["lakehouse-daily"]
    assert [s["schedule"]["cron"] for s in daily["schedules"]] == ["0 6 * * *"]
    assert daily["schedules"][0]["schedule"]["timezone"] == "America/Sao_Paulo"
    assert daily["schedules"][0]["active"] is True
    assert daily["global_concurrency_limit"]["limit"] == 1
    for name in set(EXPECTED) - {"lakehouse-daily"}:
        assert found[name]["schedules"] == [], f"{name} should run on demand only"
    # parameters as declared, and the schemas Prefect read from the flows' signatures
    assert found["ingest-pnadc"]["parameters"] == {"full_refresh": False}
    import importlib
    import inspect

    for name, (flow_name, entrypoint) in EXPECTED.items():
        module = importlib.import_module(entrypoint.split(":")[0].removesuffix(".py").replace("/", "."))
        signature = inspect.signature(getattr(module, flow_name).fn)
        assert set(found[name]["parameter_openapi_schema"]["properties"]) == set(signature.parameters), name
        assert set(found[name]["parameters"]) <= set(signature.parameters), name
    assert "ingestion_date" in found["lakehouse-daily"]["parameter_openapi_schema"]["properties"]


def test_pool_has_the_committed_template(prefect_server, deployed):
    pool = api(prefect_server, "GET", f"/work_pools/{POOL}")
    committed = json.loads((REPO / "k8s" / "work-pool-base-job-template.json").read_text())
    assert pool["type"] == "kubernetes"
    assert pool["base_job_template"] == committed


def test_the_job_the_worker_would_submit_is_strictly_valid(prefect_server, deployed):
    """`resolve_for_flow_run` renders exactly what the Kubernetes worker sends, from the server's pool and
    deployment: a scheduled run of the daily deployment becomes a strictly valid Job on our image."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    async def render() -> dict[str, Any]:
        async with get_client() as client:
            d = await client.read_deployment_by_name("lakehouse/lakehouse-daily")
            run = await client.create_flow_run_from_deployment(
                d.id, parameters={"ingestion_date": "2026-11-25"}
            )
            pool = await client.read_work_pool(POOL)
            config = await KubernetesWorkerJobConfiguration.resolve_for_flow_run(
                run, client=client, work_pool=pool, worker_name="test-worker", deployment=d
            )
            return config.job_manifest

    with temporary_settings({PREFECT_API_URL: prefect_server}):
        manifest = asyncio.run(render())
    validate_strict(manifest)
    pod = manifest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == f"{DEPLOY_ENV['FLOW_RUN_REPOSITORY']}:{IMAGE_TAG}"
    assert pod["serviceAccountName"] == "prefect-flows"
    assert container["resources"]["limits"]["memory"] == "2Gi"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["VAMOSJUNTOS_SPARK_IMAGE"] == f"{DEPLOY_ENV['SPARK_REPOSITORY']}:{IMAGE_TAG}"
    assert env["DO_NOT_TRACK"] == "1" and env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert env["PREFECT__FLOW_RUN_ID"]
    assert manifest["metadata"]["labels"]["prefect.io/deployment-name"] == "lakehouse-daily"


def test_deploy_refuses_an_incomplete_environment(prefect_server, deployed, tmp_path):
    env = {**prefect_env(tmp_path, prefect_server), **DEPLOY_ENV}
    del env["IMAGE_TAG"]
    result = prefect(["deploy", "--all", "--no-prompt"], env)
    assert result.returncode != 0
    assert "IMAGE_TAG is not set" in result.stdout + result.stderr
    for d in deployments(prefect_server).values():  # the registered deployments are untouched
        assert d["job_variables"]["image"].endswith(f":{IMAGE_TAG}")


def test_deploy_env_check():
    assert problems(["IMAGE_TAG"], {"IMAGE_TAG": IMAGE_TAG}) == []
    assert problems(["IMAGE_TAG"], {"IMAGE_TAG": "latest"}) == [
        "IMAGE_TAG='latest' is not a pinned image tag (use the git SHA)"
    ]
    assert problems(["SPARK_REPOSITORY"], {"SPARK_REPOSITORY": "{{ $X }}"})[0].startswith(
        "SPARK_REPOSITORY still"
    )
    assert "terraform" in problems(["VAMOSJUNTOS_RAW_ROOT"], {})[0]
    assert deploy_env_main(["A"], {"A": "x"}) == 0
    assert deploy_env_main(["A", "B"], {"A": "x"}) == 1


# --- end to end on a process worker ---------------------------------------------------------------
def test_ingest_ibge_deployment_runs_end_to_end_on_a_worker(prefect_server, deployed, tmp_path):
    """The same prefect.yaml deployment (entrypoint, parameters, env templating, build guard), on a local
    process pool instead of EKS and with the code's working directory here instead of the image's."""
    env = prefect_env(tmp_path / "home", prefect_server)
    created = prefect(["work-pool", "create", "--type", "process", "local-process"], env)
    assert created.returncode == 0, created.stdout + created.stderr

    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    config["pull"] = [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
    for d in config["deployments"]:
        d["name"] += "-local"  # leave the Kubernetes deployments alone
    local_yaml = tmp_path / "prefect.yaml"
    local_yaml.write_text(yaml.safe_dump(config, sort_keys=False))

    raw_zone = tmp_path / "raw-zone"  # from the deployment's env (job variables), not the worker's
    deploy_env = {**DEPLOY_ENV, "VAMOSJUNTOS_RAW_ROOT": str(raw_zone)}
    result = prefect(
        [
            "deploy",
            "--prefect-file",
            str(local_yaml),
            "--name",
            "ingest-ibge-local",
            "--pool",
            "local-process",
            "--no-prompt",
        ],
        {**env, **deploy_env},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    run = prefect(
        ["deployment", "run", "ingest_ibge/ingest-ibge-local", "--param", "ingestion_date=2026-11-25"], env
    )
    assert run.returncode == 0, run.stdout + run.stderr

    worker_env = {
        **env,
        "VAMOSJUNTOS_IBGE_SOURCE": "snapshot",
        "VAMOSJUNTOS_LAKE_ROOT": str(tmp_path / "lake"),
    }
    worker = prefect(["worker", "start", "--pool", "local-process", "--run-once"], worker_env, timeout=300)
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]

    local = deployments(prefect_server, "local-process")["ingest-ibge-local"]
    runs = api(prefect_server, "POST", "/flow_runs/filter", {"deployments": {"id": {"any_": [local["id"]]}}})
    assert [r["state"]["type"] for r in runs] == ["COMPLETED"], worker.stdout[-3000:] + worker.stderr[-5000:]
    assert runs[0]["parameters"] == {"ingestion_date": "2026-11-25"}

    expected = {"regioes": 5, "mesorregioes": 137, "microrregioes": 558}
    for entity, records in expected.items():
        partition = raw_zone / "ibge" / entity / "ingestion_date=2026-11-25"
        manifest = json.loads((partition / "_manifest.json").read_text())
        assert (manifest["entity"], manifest["source"], manifest["records"]) == (entity, "snapshot", records)
        body = json.loads(next(partition.glob(f"run=*/{entity}.json")).read_text())
        assert len(body) == records
    assert not (tmp_path / "lake" / "raw").exists(), "the run ignored the deployment's env"


def test_a_deployment_run_stays_scheduled_without_a_kubernetes_worker(prefect_server, deployed, tmp_path):
    env = prefect_env(tmp_path, prefect_server)
    run = prefect(["deployment", "run", "transform/transform", "--param", "ingestion_date=2026-11-25"], env)
    assert run.returncode == 0, run.stdout + run.stderr
    time.sleep(1)
    d = deployments(prefect_server)["transform"]
    runs = api(prefect_server, "POST", "/flow_runs/filter", {"deployments": {"id": {"any_": [d["id"]]}}})
    assert runs and all(r["state"]["type"] == "SCHEDULED" for r in runs)
    assert runs[-1]["parameters"] == {"ingestion_date": "2026-11-25"}
