"""Which failures of a Spark step a retry can fix (the `spark_step` task's retry condition)."""

from __future__ import annotations

from typing import Any

from flows.errors import NOT_RETRIED
from flows.spark.alongside import StepAbandoned
from flows.termination import hidden_signal


def worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """Not a raw part that fails its checksum, a raw unit too large for its step or a damaged lake file
    (each fails the same way every time), nor a step stopped because the run beside it failed
    (flows/spark/alongside.py), nor one whose error hides a termination signal (flows/termination.py):
    anything else may pass a second time."""
    try:
        state.result(raise_on_failure=True)
    except (*NOT_RETRIED, StepAbandoned):
        return False
    except BaseException as exc:
        return hidden_signal(exc) is None  # a JVM the signal stopped fails the same way again
    return True
