"""The step runner (flows/spark/kubernetes/step_runner.py) against a real HTTP stand-in of the Kubernetes API:
start or reattach, retries, and a Job deleted when the wait is interrupted."""

from __future__ import annotations

import _thread
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from flows.spark.kubernetes.errors import KubernetesApiError, SparkStepFailed
from flows.spark.kubernetes.manifest import build_job_manifest
from flows.spark.kubernetes.names import (
    LABEL_FAILURE_REPORTED,
    LABEL_FLOW_RUN,
)
from tests.k8s.conftest import REPO, prefect_env, validate_strict
from tests.k8s.kube_standin import KubeStandIn, Scenario
from tests.spark.kubernetes.support import (
    ARGS,
    FAST,
    FLOW_RUN,
    STEP,
    cloud_settings,
    run,
)


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
            from flows.spark.kubernetes.step_runner import run_step_on_kubernetes
            from flows.spark.kubernetes.timing import JobTiming
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
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(t >= 3 for t in kube.ticks.values()):
            time.sleep(0.01)
        _thread.interrupt_main()

    # Python's own Ctrl-C: a SparkContext started earlier in this process (other tests) leaves PySpark's
    # SIGINT handler installed, which fails with another error once that context is stopped.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt_when_running, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            run(kube, run_logger)
    finally:
        signal.signal(signal.SIGINT, previous)
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
from flows.spark.kubernetes.step_runner import run_step_on_kubernetes
from flows.spark.kubernetes.timing import JobTiming
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
