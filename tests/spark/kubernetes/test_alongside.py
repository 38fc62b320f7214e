"""A Spark step run alongside other work (flows/spark/alongside.py), on the Kubernetes API stand-in: a failed
body stops the step's Job; a failed step fails once the body has ended; an abandoned step never starts, and
its retry deletes the Job an API error kept; and the same through Prefect, in a `lakehouse` run."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import Context, copy_context
from typing import Any

import pytest
from prefect import get_client
from prefect.client.schemas.filters import TaskRunFilter
from prefect.client.schemas.objects import StateType
from prefect.exceptions import TerminationSignal
from prefect.states import Failed

from flows.errors import DamagedLakeFile, InputTooLarge, SourceUnavailable
from flows.layout import IBGE_TO_PROCESSING
from flows.pipeline import lakehouse
from flows.settings import Settings
from flows.sources.local_mongo import SecantusProcess
from flows.spark.alongside import INTERRUPTED_WAIT_S, StepAbandoned, alongside, alongside_stream
from flows.spark.kubernetes.errors import KubernetesApiError, SparkStepFailed
from flows.spark.retry import worth_retrying
from flows.spark.runner import run_step
from tests.k8s.kube_standin import KubeStandIn, Scenario
from tests.sources.mongo.support import drop_next_getmore
from tests.spark.kubernetes.support import FLOW_RUN, STEP, cloud_settings, run
from tests.spark.test_runner import _hiding_a_signal


class StreamFailed(Exception):
    """What the work beside the step raises here (e.g. MongoDB going away mid-stream)."""


def _alongside(pool: ThreadPoolExecutor, fn: Callable[..., Any], *args: Any) -> Any:
    return alongside(lambda: pool.submit(copy_context().run, fn, *args))


def _until_running(kube: KubeStandIn) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(t >= 3 for t in kube.ticks.values()):
        time.sleep(0.01)
    assert kube.ticks, "the step never started its Job"


def test_a_failed_body_deletes_the_running_job_and_raises_its_own_error(kube, run_logger):
    kube.next_scenario = Scenario("success", running_ticks=100_000)
    pool = ThreadPoolExecutor(1)
    with pytest.raises(StreamFailed), _alongside(pool, run, kube, run_logger) as step:
        _until_running(kube)
        raise StreamFailed("the stream broke")
    assert step.done()  # the run waited for the step to stop before it failed
    assert isinstance(step.exception(), StepAbandoned)
    pool.shutdown()
    deletes = kube.calls("DELETE", "/jobs/")
    assert [d.path.rsplit("/", 1)[1] for d in deletes] == list(kube.ticks)  # the one Job it created
    assert not kube.jobs and not kube.pods
    assert any("interrupted (StepAbandoned): deleted Job" in m for m in run_logger.handler.messages)


def test_a_failed_step_fails_after_the_body_has_finished(kube, run_logger):
    kube.next_scenario = Scenario("failure")
    finished = []
    with ThreadPoolExecutor(1) as pool, pytest.raises(SparkStepFailed):  # noqa: SIM117 (one line is too long)
        with _alongside(pool, run, kube, run_logger) as step:
            while not step.done():
                time.sleep(0.01)
            finished.append("body")  # the step's failure did not cut the body short
    assert finished == ["body"]
    assert not kube.calls("DELETE", "/jobs/")  # a failed Job is kept (labelled), as without `alongside`


def test_a_step_started_after_the_body_failed_starts_no_job(kube, run_logger):
    """E.g. the task's retry after the stream beside it failed: it runs in the context the step was
    submitted with, and starts nothing."""
    contexts: list[Context] = []
    with ThreadPoolExecutor(1) as pool, pytest.raises(StreamFailed):  # noqa: SIM117 (one line is too long)
        with _alongside(pool, lambda: contexts.append(copy_context())):
            raise StreamFailed("the stream broke")
    (retry_context,) = contexts
    with pytest.raises(StepAbandoned, match=f"Spark step {STEP} stopped"):
        retry_context.run(_attempt, kube, run_logger)
    assert not kube.job_posts and not kube.jobs  # it looked for a Job to delete, and started none


def _attempt(kube: KubeStandIn, logger: Any) -> None:
    """One attempt of the `spark_step` task (a retry is another)."""
    run_step(STEP, cloud_settings(kube.url), "2026-11-25", logger=logger, flow_run_id=FLOW_RUN)


def test_a_retry_after_the_body_failed_deletes_the_job_an_api_error_kept(kube, run_logger):
    """An API error keeps the Job for the retry to reattach; if the body fails meanwhile, the retry
    deletes it: it would run on alone and commit after the run failed and released its date."""
    kube.next_scenario = Scenario("success", running_ticks=100_000)
    contexts: list[Context] = []
    with ThreadPoolExecutor(1) as pool, pytest.raises(StreamFailed):  # noqa: SIM117 (one line is too long)
        with _alongside(pool, lambda: contexts.append(copy_context())) as step:
            step.result()
            threading.Thread(target=_break_api_once_running, args=(kube,), daemon=True).start()
            with pytest.raises(KubernetesApiError):
                contexts[0].run(_attempt, kube, run_logger)  # the first attempt
            assert len(kube.jobs) == 1 and not kube.calls("DELETE", "/jobs/")  # kept for the retry
            kube.fail_with = None
            raise StreamFailed("the stream broke")
    (job,) = kube.jobs
    with pytest.raises(StepAbandoned, match=f"Spark step {STEP} stopped"):
        contexts[0].run(_attempt, kube, run_logger)  # the retry
    assert [d.path.rsplit("/", 1)[1] for d in kube.calls("DELETE", "/jobs/")] == [job]
    assert not kube.jobs and not kube.pods and len(kube.job_posts) == 1
    assert any("interrupted (StepAbandoned): deleted Job" in m for m in run_logger.handler.messages)


def _break_api_once_running(kube: KubeStandIn) -> None:
    _until_running(kube)
    kube.fail_with = 500  # every later request answers 500


def test_an_abandoned_step_a_raw_unit_too_large_or_a_damaged_lake_file_is_not_retried():
    assert not worth_retrying(None, None, Failed(data=StepAbandoned("stopped")))
    assert not worth_retrying(None, None, Failed(data=InputTooLarge("raw/ibge/regioes holds 10,000,000")))
    assert not worth_retrying(None, None, Failed(data=DamagedLakeFile("raw/pnadc/_manifest.json: an array")))
    assert worth_retrying(None, None, Failed(data=RuntimeError("the API timed out")))


class _Waited:
    """A started step that records how long the run waits for it."""

    def __init__(self) -> None:
        self.timeouts: list[float | None] = []

    def result(self, timeout: float | None = None) -> None:
        self.timeouts.append(timeout)


@pytest.mark.parametrize(
    ("failure", "waited"),
    [
        (StreamFailed("MongoDB went away"), None),  # the step's Job goes at its next poll: wait for it
        (TerminationSignal(signal=15), INTERRUPTED_WAIT_S),  # within the kubelet's grace period
        (_hiding_a_signal(), INTERRUPTED_WAIT_S),  # a signal all the same (flows/termination.py)
    ],
    ids=["a failure", "a signal", "an error hiding a signal"],
)
def test_an_interrupted_body_waits_for_the_step_only_within_the_grace_period(
    failure: BaseException, waited: float | None
) -> None:
    step = _Waited()
    with pytest.raises(type(failure)), alongside(lambda: step):
        raise failure
    assert step.timeouts == [waited]


def test_locally_the_dimensions_wait_for_the_stream() -> None:
    """Local mode runs the steps one after the other (the stream has the cores): nothing starts beside it."""
    assert alongside_stream(cloud_settings())
    assert not alongside_stream(Settings(_env_file=None, spark_runner="local"))  # type: ignore[call-arg]
    with alongside(lambda: pytest.fail("started"), when=False) as started:
        assert started is None


class _HeldUntil:
    """A TCP proxy to a port that holds each connection, unanswered, until `ready()`: a client with large
    timeouts waits for it instead of failing before then (what the order of the test needs)."""

    def __init__(self, port: int, ready: Callable[[], bool]) -> None:
        self.target, self.ready, self.closed = port, ready, False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.sockets.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        while not self.ready() and not self.closed:
            time.sleep(0.01)
        if self.closed:  # the test ended before the step got there: nothing left to hold
            client.close()
            return
        try:
            server = socket.create_connection(("127.0.0.1", self.target))
        except OSError:
            client.close()
            if self.closed:  # the test ended while connecting, its MongoDB server with it
                return
            raise
        self.sockets.append(server)
        for a, b in ((client, server), (server, client)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        for s in self.sockets:
            s.close()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    with contextlib.suppress(OSError):  # a socket closed under it
        while data := a.recv(65536):
            b.sendall(data)
    for s in (a, b):  # one side closed: so is the other (the shutdown wakes the other pipe's recv)
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def mongo_after_the_job(kube: KubeStandIn, seeded: Callable[[int], SecantusProcess]) -> Iterator[str]:
    """A MongoDB URI that answers only once the step's Job exists, then drops the connection of the first
    getMore: the stream fails after the Job was created, however slowly the step got there."""
    server = seeded(3_000)
    drop_next_getmore(server)
    proxy = _HeldUntil(server.port, lambda: bool(kube.ticks))
    try:
        yield f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true"
    finally:
        proxy.close()


@pytest.mark.integration
def test_a_lakehouse_run_whose_stream_fails_stops_the_dimensions_job(
    prefect_harness: None, kube: KubeStandIn, ibge_server: Any, settings_for: Any, mongo_after_the_job: str
) -> None:
    """Through Prefect itself: `lakehouse` on the Kubernetes runner starts ibge_to_processing's Job, then
    the MongoDB stream breaks (its connection dropped on a getMore, no reconnect allowed): the step is
    stopped once, not retried, its Job deleted, and the run fails with the stream's error."""
    kube.next_scenario = Scenario("success", running_ticks=100_000)
    cloud = cloud_settings()
    settings = settings_for(
        ibge_base_url=ibge_server.base_url,
        mongo_uri=mongo_after_the_job,
        mongo_batch_size=500,  # pages of 500: the getMore comes after the first 500 documents
        mongo_server_selection_timeout_ms=600_000,  # held until the Job exists, however long that takes
        mongo_connect_timeout_ms=600_000,
        mongo_reconnects=0,
        spark_runner="kubernetes",
        k8s_api_url=kube.url,
        **{k: getattr(cloud, k) for k in ("spark_image", "k8s_namespace", "spark_job_deadline_s")},
    )
    state = lakehouse(ingestion_date="2026-11-25", settings=settings, return_state=True)

    assert state.is_failed()
    with pytest.raises(SourceUnavailable):
        state.result()
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id={"any_": [state.state_details.flow_run_id]})
        )
        (step,) = [t for t in tasks if t.name == IBGE_TO_PROCESSING]
    assert step.state_type == StateType.FAILED and step.run_count == 1
    assert step.state is not None and "StepAbandoned" in (step.state.message or ""), step.state
    (job,) = kube.ticks  # the one Job the step started
    assert [d.path.rsplit("/", 1)[1] for d in kube.calls("DELETE", "/jobs/")] == [job]
    assert not kube.jobs and not kube.pods
