"""The Spark step runner on Kubernetes, against a real HTTP stand-in of the Kubernetes API."""

from __future__ import annotations

import _thread
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import kubernetes_validate
import pytest

from flows.settings import Settings
from flows.spark.kubernetes import (
    LABEL_ARGS,
    LABEL_FAILURE_REPORTED,
    LABEL_FLOW_RUN,
    LABEL_SPARK,
    LABEL_STEP,
    OWNER_POD_ENV,
    S3A_COMMITTER_CONF,
    JobTiming,
    KubernetesApiError,
    OwnerPod,
    SparkStepFailed,
    build_job_manifest,
    jvm_memory_to_mib,
    run_step_on_kubernetes,
    spark_conf_for_kubernetes,
)
from tests.k8s.conftest import REPO, prefect_env, validate_strict
from tests.k8s.kube_standin import KubeStandIn, Scenario

FAST = JobTiming(poll_interval_s=0.01, fatal_waiting_grace_s=0.0, deadline_slack_s=5.0, log_tail_lines=5)
FLOW_RUN = "0b5e7c9a-1f0e-4d3b-9a51-3c1d2e4f5a6b"
STEP = "pnadc_to_processing"
ARGS = ["--ingestion-date", "2026-11-25"]


@pytest.fixture
def kube():
    with KubeStandIn() as standin:
        yield standin


def cloud_settings(api_url: str | None = None, **overrides) -> Settings:
    values = dict(
        spark_runner="kubernetes",
        spark_image="123456789012.dkr.ecr.us-east-1.amazonaws.com/vamosjuntos-spark:3f2a9c1",
        k8s_namespace="vamosjuntos",
        k8s_api_url=api_url,
        raw_root="s3://vj-raw",
        processing_root="s3://vj-processing",
        consumer_root="s3://vj-consumer",
        spark_job_deadline_s=600,
        mongo_uri="mongodb://user:s3cr3t-pass@mongo.example:27017",
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


def run(kube: KubeStandIn, logger, step=STEP, args=ARGS, **kw):
    run_step_on_kubernetes(
        step,
        list(args),
        cloud_settings(kube.url),
        flow_run_id=FLOW_RUN,
        task_run_id="task-1",
        logger=logger,
        timing=FAST,
        **kw,
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


@pytest.mark.parametrize(("text", "mib"), [("2g", 2048), ("512m", 512), ("1536M", 1536), ("4gb", 4096)])
def test_jvm_memory(text, mib):
    assert jvm_memory_to_mib(text) == mib


def test_jvm_memory_rejects_kubernetes_notation():
    with pytest.raises(ValueError):
        jvm_memory_to_mib("2Gi")


# --- the Spark conf inside the driver pod ----------------------------------------------------------
def test_spark_conf_for_kubernetes():
    settings = cloud_settings(spark_max_executors=7, spark_executor_cpu="1500m")
    conf = spark_conf_for_kubernetes(
        settings, {"SPARK_DRIVER_POD_NAME": "vj-pnadc-to-processing-x7k2p", "SPARK_DRIVER_POD_IP": "10.1.2.3"}
    )
    assert conf["spark.master"] == "k8s://https://kubernetes.default.svc:443"
    assert conf["spark.kubernetes.container.image"] == settings.spark_image
    assert conf["spark.kubernetes.namespace"] == "vamosjuntos"
    assert conf["spark.kubernetes.driver.pod.name"] == "vj-pnadc-to-processing-x7k2p"
    assert conf["spark.driver.host"] == "10.1.2.3"
    # Spark 4 gives executors the driver's bind address (useDriverPodIP): it must be the pod IP too
    assert conf["spark.driver.bindAddress"] == "10.1.2.3"
    assert conf["spark.dynamicAllocation.enabled"] == "true"
    assert conf["spark.dynamicAllocation.shuffleTracking.enabled"] == "true"
    assert conf["spark.dynamicAllocation.maxExecutors"] == "7"
    assert conf["spark.executor.cores"] == "1"
    assert conf["spark.kubernetes.executor.request.cores"] == "1500m"
    assert conf["spark.hadoop.fs.s3a.aws.credentials.provider"].endswith(
        "WebIdentityTokenFileCredentialsProvider"
    )
    assert conf["spark.kubernetes.executor.label." + LABEL_SPARK] == "true"
    for key, value in S3A_COMMITTER_CONF.items():
        assert conf[key] == value
    assert all(isinstance(v, str) for v in conf.values())


# What a kubelet gives the driver container: the downward API of the Job, and the API server's address.
IN_CLUSTER = {
    "SPARK_DRIVER_POD_NAME": "vj-pnadc-to-processing-x7k2p",
    "SPARK_DRIVER_POD_IP": "10.1.2.3",
    "KUBERNETES_SERVICE_HOST": "172.20.0.1",
    "KUBERNETES_SERVICE_PORT": "443",
}


def test_in_cluster_the_driver_leaves_its_credentials_to_the_kubernetes_client():
    """No token file read once into a fixed token: fabric8's in-cluster configuration reads, refreshes it."""
    conf = spark_conf_for_kubernetes(cloud_settings(), IN_CLUSTER)
    credentials = ("oauthToken", "oauthTokenFile", "caCertFile", "clientKeyFile", "clientCertFile")
    assert not [k for k in conf if k.startswith("spark.kubernetes.authenticate") and k.endswith(credentials)]
    assert conf["spark.master"] == "k8s://https://172.20.0.1:443"  # where fabric8's in-cluster config points
    assert conf["spark.kubernetes.executor.podTemplateFile"] == "/opt/spark/conf/executor-pod-template.yaml"


def test_with_an_api_url_the_driver_uses_it_as_master(monkeypatch):
    """`k8s_api_url` (a kubectl proxy, the rehearsal's API stand-in) reaches the driver through its Job's env
    and becomes its master; the executor pod template follows SPARK_CONF_DIR."""
    url = "http://127.0.0.1:18080/"
    job = build_job_manifest(STEP, ARGS, cloud_settings(url), flow_run_id=FLOW_RUN)
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "VAMOSJUNTOS_K8S_API_URL", "value": url} in env
    for entry in env:  # the driver reads its settings from that env, as in its pod
        if entry["name"].startswith("VAMOSJUNTOS_") and "value" in entry:
            monkeypatch.setenv(entry["name"], entry["value"])
    driver_settings = Settings(_env_file=None)
    conf = spark_conf_for_kubernetes(driver_settings, {**IN_CLUSTER, "SPARK_CONF_DIR": "/tmp/rehearsal/conf"})
    assert conf["spark.master"] == "k8s://http://127.0.0.1:18080"
    template = conf["spark.kubernetes.executor.podTemplateFile"]
    assert template == "/tmp/rehearsal/conf/executor-pod-template.yaml"


def test_spark_conf_outside_a_driver_pod_says_what_to_do():
    with pytest.raises(RuntimeError, match="SPARK_DRIVER_POD_NAME"):
        spark_conf_for_kubernetes(cloud_settings(), {})


# --- running against the API stand-in -----------------------------------------------------------
def test_success_streams_logs_and_creates_one_valid_job(kube, run_logger):
    kube.next_scenario = Scenario("success", log_lines=["reading raw", "wrote processing/pnadc", "done"])
    run(kube, run_logger)
    assert len(kube.job_posts) == 1
    posted = kube.job_posts[0].body
    validate_strict(posted)
    assert posted["spec"]["template"]["spec"]["containers"][0]["args"][2] == f"flows.spark.jobs.{STEP}"
    # the lookup by labels came first, and excluded failures already reported
    first = kube.requests[0]
    assert first.method == "GET" and first.path.endswith("/jobs")
    selector = first.query["labelSelector"][0]
    assert f"{LABEL_FLOW_RUN}={FLOW_RUN}" in selector and f"!{LABEL_FAILURE_REPORTED}" in selector
    messages = run_logger.handler.messages
    for line in ("reading raw", "wrote processing/pnadc", "done"):
        assert messages.count(f"[{STEP}] {line}") == 1, messages
    assert any("succeeded" in m for m in messages)


def test_failure_reports_exit_code_and_last_log_lines(kube, run_logger):
    lines = [f"line {i}" for i in range(8)] + ["Traceback (most recent call last):", "ValueError: bad row"]
    kube.next_scenario = Scenario("failure", log_lines=lines, exit_code=1)
    with pytest.raises(SparkStepFailed) as caught:
        run(kube, run_logger)
    err = caught.value
    assert err.step == STEP
    assert err.phase == "Failed"
    assert err.reason == "Error (exit code 1)"
    assert err.last_log_lines == lines[-5:]  # log_tail_lines=5
    assert "ValueError: bad row" in str(err)
    # the failed Job is marked as reported, so a later attempt starts afresh
    patch = kube.calls("PATCH", "/jobs/")[-1]
    assert patch.body == {"metadata": {"labels": {LABEL_FAILURE_REPORTED: "true"}}}
    # picklable, as Prefect stores exceptions
    again = pickle.loads(pickle.dumps(err))
    assert (again.step, again.reason, again.last_log_lines) == (err.step, err.reason, err.last_log_lines)


def test_oom_killed_is_named(kube, run_logger):
    kube.next_scenario = Scenario("oom", exit_code=137)
    with pytest.raises(SparkStepFailed) as caught:
        run(kube, run_logger)
    assert caught.value.reason == "OOMKilled (exit code 137)"


def test_eviction_is_reported_as_such(kube, run_logger):
    kube.next_scenario = Scenario("evicted", log_lines=["started", "shuffling"])
    with pytest.raises(SparkStepFailed) as caught:
        run(kube, run_logger)
    err = caught.value
    assert err.phase == "Failed"
    assert err.reason.startswith("Evicted: The node was low on resource: memory")
    assert err.last_log_lines == ["started", "shuffling"]


def test_image_pull_error_fails_fast_and_deletes_the_job(kube, run_logger):
    kube.next_scenario = Scenario("image_pull")
    started = time.monotonic()
    with pytest.raises(SparkStepFailed) as caught:
        run(kube, run_logger)
    assert time.monotonic() - started < 10  # not the 600 s deadline
    err = caught.value
    assert err.phase == "Pending"
    assert err.reason.startswith(("ErrImagePull", "ImagePullBackOff"))
    assert "vamosjuntos-spark:3f2a9c1" in err.reason
    assert err.last_log_lines == []
    deletes = kube.calls("DELETE", "/jobs/")
    assert len(deletes) == 1 and deletes[0].query["propagationPolicy"] == ["Background"]
    assert not kube.jobs


def test_retry_after_a_reported_failure_starts_a_new_job(kube, run_logger):
    kube.next_scenario = Scenario("failure")
    with pytest.raises(SparkStepFailed):
        run(kube, run_logger)
    kube.next_scenario = Scenario("success")
    run(kube, run_logger)
    assert len(kube.job_posts) == 2


def test_an_unreported_failed_job_is_raised_not_rerun(kube, run_logger):
    """The flow-run pod died while its Job failed: the retry reports that failure (and does not rerun)."""
    manifest = build_job_manifest(STEP, ARGS, cloud_settings(), flow_run_id=FLOW_RUN)
    job = kube.add_job(manifest, Scenario("failure", pending_ticks=0, running_ticks=0, log_lines=["boom"]))
    with pytest.raises(SparkStepFailed) as caught:
        run(kube, run_logger)
    assert caught.value.job_name == job["metadata"]["name"]
    assert caught.value.last_log_lines == ["boom"]
    assert kube.job_posts == []


def test_a_succeeded_job_of_the_same_run_is_not_rerun(kube, run_logger):
    manifest = build_job_manifest(STEP, ARGS, cloud_settings(), flow_run_id=FLOW_RUN)
    kube.add_job(manifest, Scenario("success", pending_ticks=0, running_ticks=0))
    kube.ticks[next(iter(kube.jobs))] = 5
    kube._advance(next(iter(kube.jobs)))
    run(kube, run_logger)
    assert kube.job_posts == []
    assert not kube.calls("GET", "/log")  # nothing to follow


def test_other_flow_runs_jobs_are_not_reattached(kube, run_logger):
    other = build_job_manifest(STEP, ARGS, cloud_settings(), flow_run_id="another-flow-run")
    kube.add_job(other, Scenario("success", running_ticks=100))
    run(kube, run_logger)
    assert len(kube.job_posts) == 1


def test_a_retried_task_reattaches_to_the_running_job(kube, run_logger, tmp_path):
    """First attempt: a separate process that is killed (as an evicted flow-run pod would be) while its
    Job runs. Second attempt: reattaches and follows the same Job. Exactly one Job is ever created."""
    kube.next_scenario = Scenario(
        "success", pending_ticks=1, running_ticks=60, log_lines=[f"progress {i}" for i in range(120)]
    )
    script = tmp_path / "attempt.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import logging, sys
            from flows.settings import Settings
            from flows.spark.kubernetes import JobTiming, run_step_on_kubernetes
            logging.basicConfig(level=logging.INFO, stream=sys.stdout)
            run_step_on_kubernetes(
                {STEP!r}, {ARGS!r},
                Settings(_env_file=None, k8s_api_url={kube.url!r}, spark_job_deadline_s=600),
                flow_run_id={FLOW_RUN!r}, task_run_id="task-1", logger=logging.getLogger("attempt-1"),
                timing=JobTiming(poll_interval_s=0.05),
            )
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if kube.job_posts and any(t >= 3 for t in kube.ticks.values()):
                break
            assert proc.poll() is None, "the first attempt ended on its own"
            time.sleep(0.05)
        else:
            pytest.fail("the first attempt never created its Job")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    assert len(kube.job_posts) == 1
    name = next(iter(kube.jobs))
    assert kube.ticks[name] < 61, "the Job finished before the first attempt was killed"

    run(kube, run_logger)  # the retry, in this process

    assert len(kube.job_posts) == 1
    messages = run_logger.handler.messages
    assert any(f"reattaching to Job {name}" in m for m in messages), messages
    assert f"[{STEP}] progress 119" in messages
    # on reattach the log is followed from its tail, not replayed from the start
    follow = [r for r in kube.calls("GET", "/log") if r.query.get("follow") == ["true"]][-1]
    assert follow.query["tailLines"] == [str(FAST.log_tail_lines)]


def test_job_deleted_underneath_is_a_failure(kube, run_logger):
    kube.next_scenario = Scenario("success", running_ticks=1000)

    import threading

    def delete_soon():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(t >= 3 for t in kube.ticks.values()):
            time.sleep(0.01)
        with kube.lock:
            kube.jobs.clear()

    killer = threading.Thread(target=delete_soon)
    killer.start()
    with pytest.raises(SparkStepFailed) as caught:
        run(kube, run_logger)
    killer.join()
    assert caught.value.reason.startswith("JobDeleted")


def test_forbidden_says_which_rbac_is_missing(run_logger):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Forbidden(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            body = b'{"kind":"Status","reason":"Forbidden","code":403}'
            self.send_response(403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forbidden)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(KubernetesApiError, match="rbac-flow-runs") as caught:
            run_step_on_kubernetes(
                STEP, ARGS, cloud_settings(url), flow_run_id=FLOW_RUN, logger=run_logger, timing=FAST
            )
        assert caught.value.status == 403
    finally:
        server.shutdown()
        server.server_close()


def test_without_cluster_or_url_the_error_says_what_to_do(run_logger):
    if Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists():
        pytest.fail("this test assumes it does not run inside a Kubernetes pod")
    with pytest.raises(RuntimeError, match="VAMOSJUNTOS_K8S_API_URL"):
        run_step_on_kubernetes(STEP, ARGS, cloud_settings(None), flow_run_id=FLOW_RUN, logger=run_logger)


def test_log_stream_closed_midway_is_resumed_without_duplicates(kube, run_logger):
    """The API server may close a follow stream while the container runs: resume from the last line."""
    lines = [f"row batch {i}" for i in range(30)]
    kube.next_scenario = Scenario("success", running_ticks=20, log_lines=lines, drop_log_stream_after=7)
    run(kube, run_logger)
    messages = [m for m in run_logger.handler.messages if m.startswith(f"[{STEP}]")]
    assert messages == [f"[{STEP}] {line}" for line in lines]
    follows = [r for r in kube.calls("GET", "/log") if r.query.get("follow") == ["true"]]
    assert len(follows) >= 2 and "sinceTime" in follows[1].query


# --- ownership and interruption: a Spark Job never outlives its flow run -------------------------
FLOW_RUN_POD = "transform-7f9c2-x4k8q"


def in_flow_run_pod(kube: KubeStandIn, namespace: str = "vamosjuntos") -> dict[str, str]:
    """The environment the work pool's job template gives the flow-run container (downward API)."""
    pod = kube.add_pod(FLOW_RUN_POD, {"app.kubernetes.io/component": "flow-run"})
    return {
        OWNER_POD_ENV["name"]: pod["metadata"]["name"],
        OWNER_POD_ENV["uid"]: pod["metadata"]["uid"],
        OWNER_POD_ENV["namespace"]: namespace,
    }


def test_the_job_is_owned_by_the_flow_run_pod_and_goes_with_it(kube, run_logger):
    env = in_flow_run_pod(kube)
    kube.next_scenario = Scenario("success", running_ticks=1000)
    deleter = threading.Thread(target=_delete_pod_when_running, args=(kube, FLOW_RUN_POD))
    deleter.start()
    with pytest.raises(SparkStepFailed, match="JobDeleted"):  # the garbage collector took it
        run(kube, run_logger, environ=env)
    deleter.join()
    posted = kube.job_posts[0].body
    validate_strict(posted)
    assert posted["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": FLOW_RUN_POD,
            "uid": env[OWNER_POD_ENV["uid"]],
            "blockOwnerDeletion": True,
        }
    ]
    assert not kube.jobs and not kube.pods  # the Job and its driver pod went with the flow-run pod


def _delete_pod_when_running(kube: KubeStandIn, pod: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(t >= 3 for t in kube.ticks.values()):
        time.sleep(0.01)
    httpx.delete(f"{kube.url}/api/v1/namespaces/{kube.namespace}/pods/{pod}", timeout=5)


def test_outside_a_flow_run_pod_the_job_has_no_owner(kube, run_logger):
    run(kube, run_logger, environ={})
    assert "ownerReferences" not in kube.job_posts[0].body["metadata"]


def test_an_owner_in_another_namespace_is_refused_not_sent(kube, run_logger):
    """An owner outside the Job's namespace counts as absent: the garbage collector would delete the Job."""
    owner = OwnerPod(FLOW_RUN_POD, "6c1f3e0a-9b8d-4c2e-a1f0-3d5e7b9c1a2f", "prefect")
    with pytest.raises(ValueError, match="namespace"):
        build_job_manifest(STEP, ARGS, cloud_settings(), flow_run_id=FLOW_RUN, owner=owner)
    run(kube, run_logger, environ=in_flow_run_pod(kube, namespace="prefect"))
    assert "ownerReferences" not in kube.job_posts[0].body["metadata"]
    assert any("gets no owner" in m for m in run_logger.handler.messages)


def _assert_job_deleted(kube: KubeStandIn) -> None:
    deletes = kube.calls("DELETE", "/jobs/")
    assert len(deletes) == 1, [d.path for d in kube.requests]
    assert [d.path.rsplit("/", 1)[1] for d in deletes] == list(kube.ticks)  # the Job it created
    assert deletes[0].query["propagationPolicy"] == ["Background"]
    assert not kube.jobs and not kube.pods


def test_an_interrupted_wait_deletes_the_job(kube, run_logger):
    """An exception raised into the task while it follows the Job (here KeyboardInterrupt, as a cancelled
    task or Ctrl-C would) deletes the Job, then propagates."""
    kube.next_scenario = Scenario("success", running_ticks=1000)

    def interrupt_when_running() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(t >= 3 for t in kube.ticks.values()):
            time.sleep(0.01)
        _thread.interrupt_main()

    threading.Thread(target=interrupt_when_running, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run(kube, run_logger)
    _assert_job_deleted(kube)
    assert any("interrupted (KeyboardInterrupt): deleted Job" in m for m in run_logger.handler.messages)


def test_an_api_error_keeps_the_job_for_the_retry_to_reattach(kube, run_logger):
    kube.next_scenario = Scenario("success", running_ticks=1000)
    stop = threading.Event()

    def break_the_api() -> None:
        while not stop.is_set() and not any(t >= 3 for t in kube.ticks.values()):
            time.sleep(0.01)
        kube.fail_with = 500  # every later request answers 500

    threading.Thread(target=break_the_api, daemon=True).start()
    with pytest.raises(KubernetesApiError):
        run(kube, run_logger)
    stop.set()
    assert kube.calls("DELETE", "/jobs/") == [] and len(kube.jobs) == 1


ATTEMPT = """
import logging, os, sys
from flows.settings import Settings
from flows.spark.kubernetes import JobTiming, run_step_on_kubernetes
logging.basicConfig(level=logging.INFO, stream=sys.stdout)

def step():
    run_step_on_kubernetes(
        {step!r}, {args!r}, Settings(_env_file=None, k8s_api_url={url!r}, spark_job_deadline_s=600),
        flow_run_id={flow_run!r}, task_run_id="task-1", logger=logging.getLogger("attempt"),
        timing=JobTiming(poll_interval_s=0.05),
    )
"""
FLOW = """
from prefect import flow, task

@task
def spark_step():
    step()

@flow
def transform():
    spark_step()
"""
RUNS = {  # how the attempt is started, and what it runs
    "plain": "step()\n",
    "prefect-flow": FLOW + "\ntransform()\n",
    "prefect-flow-run-execute": FLOW,
}


def _post(url: str, body: dict) -> dict:
    """POST to the Prefect API, retrying its 503 (SQLite busy under load), as Prefect's own client does."""
    for _ in range(10):
        response = httpx.post(url, json=body, timeout=30)
        if response.status_code != 503:
            break
        time.sleep(1)
    response.raise_for_status()
    return response.json()


def _flow_run_of_a_deployment(api_url: str, directory: Path) -> str:
    """A flow run of a deployment whose code is attempt.py:transform in `directory` (a pull step, as
    prefect.yaml's), for `prefect flow-run execute` to load and run."""
    flow_id = _post(f"{api_url}/flows/", {"name": "transform"})["id"]
    deployment = _post(
        f"{api_url}/deployments/",
        {
            "name": f"sigterm-{directory.name}",
            "flow_id": flow_id,
            "entrypoint": "attempt.py:transform",
            "pull_steps": [
                {"prefect.deployments.steps.set_working_directory": {"directory": str(directory)}}
            ],
        },
    )
    return _post(f"{api_url}/deployments/{deployment['id']}/create_flow_run", {})["id"]


@pytest.mark.parametrize("runs_under", sorted(RUNS))
def test_sigterm_deletes_the_job(kube, tmp_path, runs_under, request):
    """The kubelet stopping the flow-run pod (the worker deleting its Job on cancellation, a drain) sends
    SIGTERM to the container's first process. Whether that is a plain process (the runner turns SIGTERM into
    SystemExit), a Prefect flow (the flow engine turns it into TerminationSignal inside the task) or, as in
    the pod, `prefect flow-run execute` (with the template's PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR; it
    passes the signal on to the flow engine), the Job is deleted before the process exits."""
    kube.next_scenario = Scenario("success", running_ticks=100_000)
    script = tmp_path / "attempt.py"
    body = ATTEMPT.format(step=STEP, args=ARGS, url=kube.url, flow_run=FLOW_RUN)
    script.write_text(body + RUNS[runs_under])
    command = [sys.executable, str(script)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if runs_under.startswith("prefect"):
        api_url = request.getfixturevalue("prefect_server")
        env = prefect_env(tmp_path / "home", api_url, PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR="reschedule")
        if runs_under == "prefect-flow-run-execute":
            flow_run_id = _flow_run_of_a_deployment(api_url, tmp_path)
            command = [sys.executable, "-m", "prefect", "flow-run", "execute", flow_run_id]
    log = (tmp_path / "attempt.log").open("w")
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not any(t >= 3 for t in kube.ticks.values()):
            assert proc.poll() is None, (tmp_path / "attempt.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the attempt never followed its Job"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
    output = (tmp_path / "attempt.log").read_text()
    _assert_job_deleted(kube)
    assert "deleted Job" in output, output[-3000:]
    if runs_under != "prefect-flow-run-execute":  # the supervisor exits 0 once it has rescheduled the run
        assert code != 0, output[-3000:]


DRIVER = """
import os
from flows.settings import Settings
from flows.spark.session import spark_session
spark_session(Settings(_env_file=None))  # no kubelet here: its executors never start; the test stops it
"""


def test_a_real_spark_driver_uses_the_api_url_without_a_token_and_the_conf_dirs_pod_template(kube, tmp_path):
    """PySpark 4.3 as the driver, configured the way its Job's pod configures it (the Job's env, the
    downward API, SPARK_CONF_DIR): its Kubernetes client calls `k8s_api_url` with no bearer token, and the
    executor pods it asks for come from the pod template in SPARK_CONF_DIR, owned by the driver pod."""
    import yaml

    driver = kube.add_pod("vj-pnadc-to-processing-drv01")
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    template = yaml.safe_load((REPO / "images" / "spark" / "executor-pod-template.yaml").read_text())
    template["metadata"]["labels"]["vamosjuntos.io/template-from"] = "spark-conf-dir"
    (conf_dir / "executor-pod-template.yaml").write_text(yaml.safe_dump(template))
    settings = cloud_settings(kube.url, spark_driver_memory_k8s="512m", spark_executor_memory="512m")
    job = build_job_manifest(STEP, ARGS, settings, flow_run_id=FLOW_RUN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAMOSJUNTOS_")}
    env.update(
        {
            e["name"]: e["value"]
            for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
            if "value" in e
        }
    )
    env.update(
        PYTHONPATH=str(REPO),
        HOME=str(tmp_path),
        SPARK_LOCAL_DIRS=str(tmp_path / "spark-local"),
        SPARK_DRIVER_POD_NAME=driver["metadata"]["name"],
        SPARK_DRIVER_POD_IP="127.0.0.1",
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_CONF_DIR=str(conf_dir),
    )
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    log = (tmp_path / "driver.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not kube.calls("POST", f"/namespaces/{kube.namespace}/pods"):
            assert proc.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the driver never asked for an executor pod"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        log.close()
    first = kube.requests[0]
    assert (first.method, first.path) == (
        "GET",
        f"/api/v1/namespaces/vamosjuntos/pods/{driver['metadata']['name']}",
    )
    assert not [r for r in kube.requests if "authorization" in {h.lower() for h in r.headers}]
    executor = kube.calls("POST", f"/namespaces/{kube.namespace}/pods")[0].body
    assert executor["metadata"]["labels"]["vamosjuntos.io/template-from"] == "spark-conf-dir"
    assert executor["metadata"]["labels"][LABEL_SPARK] == "true"
    assert executor["spec"]["automountServiceAccountToken"] is False
    [owner] = executor["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "Pod",
        driver["metadata"]["name"],
        driver["metadata"]["uid"],
    )
