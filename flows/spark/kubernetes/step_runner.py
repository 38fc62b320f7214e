"""Run one Spark step as a Kubernetes Job and wait for it: start it or reattach to it, and delete it when
the wait is cancelled (a cancelled task, TerminationSignal, SIGTERM, Ctrl-C)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import httpx

from flows.settings import Settings
from flows.spark.alongside import raise_if_abandoned
from flows.spark.kubernetes.api import KubeApi
from flows.spark.kubernetes.errors import KubernetesApiError, SparkStepFailed
from flows.spark.kubernetes.job_follower import follow_job
from flows.spark.kubernetes.job_status import failure_reported, job_outcome
from flows.spark.kubernetes.manifest import build_job_manifest
from flows.spark.kubernetes.names import LABEL_ARGS, LABEL_FAILURE_REPORTED, LABEL_FLOW_RUN, LABEL_STEP
from flows.spark.kubernetes.owner_pod import OwnerPod
from flows.spark.kubernetes.timing import JobTiming


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
    api: KubeApi,
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
    """Run `python -m flows.spark.jobs.<step> <args>` as a Kubernetes Job and wait for it (see the package).

    Raises SparkStepFailed when the Job fails (the failed Job is then labelled as reported, so the next
    attempt of the task starts a fresh Job), KubernetesApiError when the API refuses a call or cannot be
    reached, ConfigurationError when there is no API to call (neither a pod nor `k8s_api_url`). Anything else
    that ends the wait (cancellation, TerminationSignal, SIGTERM, KeyboardInterrupt, StepAbandoned: the work
    it ran `alongside` failed, even before an attempt reattaches) deletes the Job, then propagates.
    `environ` (default: the process environment) says which flow-run pod owns the Job.
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
    api = KubeApi(settings, timing.request_timeout_s)
    name: str | None = None
    try:
        existing = [j for j in api.list_jobs(selector) if not failure_reported(j)]
        existing.sort(key=lambda j: j.get("metadata", {}).get("creationTimestamp") or "")
        if existing:
            job = existing[-1]
            name = job["metadata"]["name"]
        # A retry after the run beside it failed: nothing starts, and the Job an API error kept for this
        # retry is deleted below (it would commit after the run failed and released its date).
        raise_if_abandoned(step)
        if existing:
            outcome = job_outcome(job)
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
            follow_job(api, step, name, settings, logger, timing, reattached=reattached)
    except (SparkStepFailed, KubernetesApiError, httpx.HTTPError):
        raise  # the Job has ended or been dealt with; or the API failed and a retry reattaches to it
    except BaseException as interrupted:
        if name is not None:
            _delete_interrupted(api, name, step, logger, timing, interrupted)
        raise
    finally:
        api.close()
