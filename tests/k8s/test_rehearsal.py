"""The rehearsal: the cloud topology on this machine (tests/k8s/rehearse.py says what runs where).

One run of the daily `lakehouse` deployment through a real Prefect server, the real prefect-kubernetes
worker, the flow-run Job and pod, a Spark driver Job per step whose executors are pods, an S3 lake on moto
and Glue tables on moto; then a `transform` run cancelled mid-step; then every Kubernetes API call the
stand-in recorded against k8s/rbac-*.yaml.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.spark import runner
from tests.k8s.kubelet_standin import Call, service_account_user
from tests.k8s.rehearsal_cluster import NAMESPACE, REPO, WORKER_USER, rendered_manifests
from tests.k8s.rehearse import BUCKETS, DATE, LABEL_SPARK, Rehearsal, local_answers, rehearsal, say

# The whole rehearsal takes minutes (five Spark drivers and their executors, a local run, a cancelled run).
pytestmark = pytest.mark.timeout(3600)

FLOWS_SA = service_account_user(NAMESPACE, "prefect-flows")
SPARK_SA = service_account_user(NAMESPACE, "spark-driver")
STEPS = len(runner.STEPS)  # each Spark step once per run (IBGE beside the stream, then PNAD, consumer)
RUN_TIMEOUT_S = 2400


@pytest.fixture(scope="module")
def rehearsed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Rehearsal, dict[str, Any]]]:
    state = tmp_path_factory.mktemp("rehearsal")
    with rehearsal(state) as r:
        t0 = time.monotonic()
        run_id = r.run_deployment("lakehouse/lakehouse-daily", ingestion_date=DATE)
        run = r.wait_flow_run(run_id, RUN_TIMEOUT_S)
        r.timings["lakehouse"] = time.monotonic() - t0
        say(f"lakehouse-daily: {run['state']['type']} in {r.timings['lakehouse']:.0f} s")
        try:
            yield r, run
        finally:
            say(f"timings: {json.dumps({k: round(v) for k, v in r.timings.items()})}")
            calls = [vars(c) for c in r.cluster.record]
            (state / "record.json").write_text(json.dumps(calls, indent=1))
            say(f"the stand-in's record: {state / 'record.json'}")


def spark_calls(r: Rehearsal, who: str, verb: str, resource: str) -> list[Call]:
    return [c for c in r.cluster.record if (c.identity, c.verb, c.resource) == (who, verb, resource)]


def container(r: Rehearsal, pod: str) -> dict[str, Any]:
    return json.loads((r.state / "cluster" / "pods" / pod / "container.json").read_text())


def pod_log(r: Rehearsal, pod: str) -> str:
    return (r.state / "cluster" / "pods" / pod / "container.log").read_text(errors="replace")


def test_the_daily_deployment_runs_on_the_cluster_and_answers_like_a_local_run(
    rehearsed: tuple[Rehearsal, dict[str, Any]], tmp_path: Path
) -> None:
    r, run = rehearsed
    assert run["state"]["type"] == "COMPLETED", r.diagnostics()

    # The worker created the flow-run Job (its kubeconfig user); the flow-run pod (service account
    # prefect-flows) created one Spark Job per step; each driver (spark-driver) created executor pods.
    worker_jobs = spark_calls(r, WORKER_USER, "create", "jobs")
    assert len(worker_jobs) == 1, r.diagnostics()
    step_jobs = spark_calls(r, FLOWS_SA, "create", "jobs")
    assert len(step_jobs) == STEPS, r.diagnostics()
    flow_pod = step_jobs[0].pod
    assert flow_pod and {c.pod for c in step_jobs} == {flow_pod}
    executors = spark_calls(r, SPARK_SA, "create", "pods")
    drivers = {c.pod for c in executors}
    assert len(drivers) == STEPS, "every step's driver created its executors through the API"

    # Executors started through the Spark image's entrypoint, registered with their driver and ran tasks.
    started = sorted(p.name for p in (r.state / "cluster" / "pods").iterdir() if "-exec-" in p.name)
    assert started
    for pod in started:
        argv = container(r, pod)["argv"]
        assert argv[0] == str(REPO / "images" / "spark" / "entrypoint.sh") and argv[1] == "executor", argv
    logs = [pod_log(r, pod) for pod in started]
    assert all("Successfully registered with driver" in log for log in logs)
    assert any("Finished task" in log for log in logs)
    for pod in started:  # told to reach the driver at its pod IP (0.0.0.0 would be themselves in EKS)
        driver_ip = container(r, pod.rsplit("-exec-", 1)[0])["env"]["SPARK_DRIVER_POD_IP"]
        assert (
            container(r, pod)["env"]["SPARK_DRIVER_URL"] == f"spark://CoarseGrainedScheduler@{driver_ip}:7078"
        )

    # Each Spark Job is owned by the flow-run pod (downward API), so deleting that pod deletes the Job.
    flow_pod_uid = next(o for o in r.cluster.created if o["metadata"]["name"] == flow_pod)["metadata"]["uid"]
    spark_jobs = [
        o for o in r.cluster.created if o["kind"] == "Job" and LABEL_SPARK in o["metadata"]["labels"]
    ]
    assert len(spark_jobs) == STEPS
    for created in spark_jobs:
        assert [o["uid"] for o in created["metadata"]["ownerReferences"]] == [flow_pod_uid]

    # AWS only through IRSA (the pod identity webhook's web-identity token, STS on moto): no keys in any pod.
    for pod in (r.state / "cluster" / "pods").iterdir():
        env = container(r, pod.name)["env"]
        assert "AWS_ACCESS_KEY_ID" not in env and env["AWS_WEB_IDENTITY_TOKEN_FILE"], pod.name

    # The lake is S3: every zone's bucket holds committed units; Glue tables point into the consumer bucket.
    tables = r.glue_tables()
    assert tables and all(loc.startswith(f"s3://{BUCKETS['consumer']}/") for loc in tables.values()), tables

    # Same documents, same IBGE data, run locally (Spark local mode, a lake folder): the same answers.
    cloud = r.answers()
    local = local_answers(r, tmp_path / "local-lake")
    assert [(a["id"], a["rows"]) for a in cloud] == [(a["id"], a["rows"]) for a in local]
    for got, want in zip(cloud, local, strict=True):
        assert got["answer"] == pytest.approx(want["answer"]), (got, want)
    say("answers: " + "; ".join(f"{a['id']}={a['answer']}" for a in cloud))


def test_cancelling_a_flow_run_mid_step_removes_its_spark_job_and_pods(
    rehearsed: tuple[Rehearsal, dict[str, Any]],
) -> None:
    r, _ = rehearsed
    t0 = time.monotonic()
    run_id = r.run_deployment("transform/transform", ingestion_date=DATE)

    def executor_running() -> bool:
        pods = r.pods(f"{LABEL_SPARK}=true")
        return any("-exec-" in name and phase == "Running" for name, phase in pods.items())

    deadline = time.monotonic() + 900
    while not executor_running():
        assert r.flow_run(run_id)["state"]["type"] not in {"COMPLETED", "FAILED", "CRASHED"}, r.diagnostics()
        assert time.monotonic() < deadline, r.diagnostics()
        time.sleep(1)
    say(f"cancelling {run_id} with Spark pods {r.pods(f'{LABEL_SPARK}=true')}")
    # What the UI's Cancel button does.
    r.api("POST", f"/flow_runs/{run_id}/set_state", {"state": {"type": "CANCELLING", "name": "Cancelling"}})
    run = r.wait_flow_run(run_id, 300, until={"CANCELLED", "COMPLETED", "FAILED", "CRASHED"})
    assert run["state"]["type"] == "CANCELLED", r.diagnostics()

    def spark_gone() -> bool:  # this run's Spark Jobs, and any Spark pod still alive (earlier runs' ended)
        jobs = r.cluster.list(("batch", "jobs"), NAMESPACE, f"vamosjuntos.io/flow-run-id={run_id}")
        alive = [p for p, phase in r.pods(f"{LABEL_SPARK}=true").items() if phase in ("Pending", "Running")]
        return not jobs and not alive

    deadline = time.monotonic() + 180
    while not spark_gone():
        assert time.monotonic() < deadline, f"Spark Job or pods left behind:\n{r.diagnostics()}"
        time.sleep(1)
    r.timings["cancel"] = time.monotonic() - t0


# Grants a run may not use, each with the path that needs it (seen in other rehearsal runs or tests).
NOT_ALWAYS_USED: dict[str, dict[tuple[str, str, str], str]] = {
    FLOWS_SA: {
        ("batch", "jobs", "patch"): "labels a failed Job as reported (test_images_and_manifests.py: failure)",
    },
    SPARK_SA: {
        ("", "pods", "delete"): "dynamic allocation removes an executor idle for executorIdleTimeout (60 s)",
        (
            "",
            "pods",
            "deletecollection",
        ): "executors deleted at stop, when the JVM's shutdown hook gets that far",
        ("", "configmaps", "deletecollection"): "the executor ConfigMap deleted at stop, likewise",
        ("", "persistentvolumeclaims", "deletecollection"): "the executors' PVCs deleted at stop, likewise",
    },
}


def granted() -> dict[str, set[tuple[str, str, str]]]:
    """(apiGroup, resource, verb) each service account is granted by the Roles of k8s/rbac-*.yaml, as
    `kubectl kustomize k8s` renders them."""
    docs = rendered_manifests()
    roles = {d["metadata"]["name"]: d["rules"] for d in docs if d["kind"] == "Role"}
    grants: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for binding in (d for d in docs if d["kind"] == "RoleBinding"):
        assert binding["metadata"]["namespace"] == NAMESPACE
        for subject in binding["subjects"]:
            user = service_account_user(subject["namespace"], subject["name"])
            for rule in roles[binding["roleRef"]["name"]]:
                grants[user] |= {
                    (g, res, v) for g in rule["apiGroups"] for res in rule["resources"] for v in rule["verbs"]
                }
    return grants


def test_every_recorded_call_is_granted_by_k8s_rbac_and_every_grant_is_used(
    rehearsed: tuple[Rehearsal, dict[str, Any]],
) -> None:
    """Who called what, as the stand-in recorded it (pods by their service account). The worker's own
    service account is the Helm chart's (its Role is not ours): its calls must stay in the namespace."""
    r, _ = rehearsed
    grants = granted()
    used: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for call in r.cluster.record:
        used[call.identity].add((call.group, call.resource, call.verb))
        if call.identity in grants:
            assert call.namespace == NAMESPACE, f"{call}: outside the namespace its Role covers"
        if call.identity == WORKER_USER:
            assert call.namespace == NAMESPACE, f"{call}: the worker's chart Role is namespaced"
    for user, calls in sorted(used.items()):
        say(f"{user}: {sorted(calls)}")
        if user in grants:
            say(f"  not granted: {sorted(calls - grants[user])}")
            say(f"  granted, unused: {sorted(grants[user] - calls)}")
    for user in (FLOWS_SA, SPARK_SA):
        assert used[user] - grants[user] == set(), f"{user} used what k8s/rbac-*.yaml does not grant"
        unused = grants[user] - used[user] - set(NOT_ALWAYS_USED.get(user, {}))
        assert unused == set(), f"{user} is granted what the rehearsal never used"
    assert set(grants) == {FLOWS_SA, SPARK_SA}
    pod_users = {c.identity for c in r.cluster.record if c.pod}
    assert pod_users <= {FLOWS_SA, SPARK_SA}, "executors never call the API (no token mounted)"
