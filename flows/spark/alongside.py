"""A Spark step run alongside other work, and stopped when that work fails (issue 13, item 1).

`ibge_to_processing` needs only the raw IBGE units, so on Kubernetes the `lakehouse` run starts it as soon
as they are committed and streams MongoDB meanwhile: its Job's pod runs while the flow-run pod streams.
Not in local mode: there the stream already keeps both cores of the machine busy (the MongoDB stand-in
and our reader), and a Spark step beside it slowed both (measured side by side: docs/operations.md, "What
a run did"), so the steps run one after the other, as `transform` runs them.

If the streaming fails or is interrupted, the step must not go on alone (its Job would outlive the run):
`alongside` marks it abandoned, the Kubernetes wait sees the mark at its next poll and deletes the Job
(`StepAbandoned`, like any interrupted wait), a step not started yet does not start, a retry deletes the
Job its first attempt kept after an API error, and the run waits for the step to end before it fails.
A local step would run in this process and commit all or nothing: it would be waited for, not stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

from flows.settings import Settings
from flows.termination import interrupts


class StepAbandoned(Exception):
    """The work a step ran alongside failed: the step stopped (its Job deleted) and is not retried."""


class Started(Protocol):  # a Prefect future or a concurrent.futures.Future
    def result(self, timeout: float | None = None) -> Any: ...


S = TypeVar("S", bound=Started)


# How long an interrupted run (a termination signal, Ctrl-C) waits for the step to see the mark and delete
# its Job: within the kubelet's grace period (30 s), the Job's delete taking up to 5 s of it.
INTERRUPTED_WAIT_S = 15.0
# Set in the context the step is started from (Prefect's task runner and the benchmark copy it).
_abandoned: ContextVar[threading.Event | None] = ContextVar("vamosjuntos_step_abandoned", default=None)


def raise_if_abandoned(step: str) -> None:
    """In a step started `alongside`: raise once the work beside it has failed."""
    mark = _abandoned.get()
    if mark is not None and mark.is_set():
        raise StepAbandoned(f"Spark step {step} stopped: the work it ran alongside failed")


def alongside_stream(settings: Settings) -> bool:
    """Whether the `lakehouse` run builds the IBGE dimensions while MongoDB streams (module docstring)."""
    return settings.spark_runner == "kubernetes"


@contextmanager
def alongside(start: Callable[[], S], when: bool = True) -> Iterator[S | None]:
    """Start a step (`start` submits it, copying this context), run the body, then wait for the step and
    raise its failure. A body that fails abandons the step, waits for it, and raises its own error.
    With `when` false, only the body runs."""
    if not when:
        yield None
        return
    mark = threading.Event()
    token = _abandoned.set(mark)
    try:
        started = start()
    finally:
        _abandoned.reset(token)
    try:
        yield started
    except BaseException as exc:
        mark.set()
        with suppress(Exception):  # the body's failure is the run's: the step's own error is logged
            started.result(INTERRUPTED_WAIT_S if interrupts(exc) else None)
        raise
    started.result()
