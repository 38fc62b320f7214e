"""A local Spark step whose error hides a termination signal (a py4j error from the JVM the same signal
stopped: flows/termination.py) ends as that signal, once: Prefect crashes the task instead of retrying it
against a dead JVM."""

from __future__ import annotations

import logging
import signal
import sys
import types
import uuid
from typing import Any

import pytest
from prefect.exceptions import TerminationSignal
from prefect.states import Failed

from flows.layout import IBGE_TO_PROCESSING
from flows.settings import Settings
from flows.spark.retry import worth_retrying
from flows.spark.runner import run_step

DATE = "2026-11-25"


def _hiding_a_signal() -> ConnectionRefusedError:
    """What PySpark raises when a query's clean-up tells a JVM the signal stopped (context: the signal)."""
    try:
        try:
            raise TerminationSignal(signal=signal.SIGTERM)
        finally:
            raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError as exc:
        return exc


@pytest.fixture
def step_hiding_a_signal(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The IBGE step, replaced by one whose query meets a signal that also stopped its JVM; its calls."""
    calls: list[str] = []

    def run(settings: Settings, ingestion_date: str, **flags: Any) -> dict[str, Any]:
        calls.append(ingestion_date)
        raise _hiding_a_signal()

    fake = types.ModuleType(f"flows.spark.jobs.{IBGE_TO_PROCESSING}")
    fake.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    return calls


def test_a_local_step_whose_error_hides_a_signal_raises_the_signal(step_hiding_a_signal: list[str]) -> None:
    with pytest.raises(TerminationSignal) as raised:
        run_step(IBGE_TO_PROCESSING, Settings(), DATE, logger=logging.getLogger("step"))
    assert isinstance(raised.value.__context__, ConnectionRefusedError)  # what hid it, still in the trace
    assert step_hiding_a_signal == [DATE]


def test_the_step_task_crashes_on_it_and_is_not_retried(
    step_hiding_a_signal: list[str], prefect_harness: None, tmp_path: Any
) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import TaskRunFilter
    from prefect.client.schemas.objects import StateType

    from flows.pipeline import spark_step

    tag = f"hidden-signal-{uuid.uuid4().hex}"
    with pytest.raises(TerminationSignal):
        spark_step.with_options(tags=[tag])(IBGE_TO_PROCESSING, Settings(lake_root=str(tmp_path)), DATE)
    with get_client(sync_client=True) as client:
        (task_run,) = client.read_task_runs(task_run_filter=TaskRunFilter(tags={"all_": [tag]}))
    assert task_run.state_type == StateType.CRASHED, task_run.state
    # One attempt: a retry would have met a dead JVM, and the run ended as failed, not terminated.
    assert task_run.run_count == 1 and step_hiding_a_signal == [DATE]


def test_an_error_hiding_a_signal_is_not_worth_a_retry() -> None:
    assert not worth_retrying(None, None, Failed(data=_hiding_a_signal()))
    assert worth_retrying(None, None, Failed(data=ConnectionRefusedError(111, "Connection refused")))
