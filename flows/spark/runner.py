"""Start a Spark step where the settings say: in this process (local mode) or as a Kubernetes Job."""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from flows.errors import (
    NOT_RETRIED,
    ChecksumMismatch,
    ConfigurationError,
    DamagedLakeFile,
    InputTooLarge,
    LakeError,
)
from flows.layout import SPARK_STEPS
from flows.settings import Settings
from flows.spark.alongside import raise_if_abandoned
from flows.spark.warmup import await_warm_up
from flows.termination import raise_hidden_signal

if TYPE_CHECKING:
    from flows.spark.kubernetes.errors import SparkStepFailed

STEPS = SPARK_STEPS  # flows/layout.py names them, and what each commits


def step_args(ingestion_date: str, **flags: str) -> list[str]:
    args = ["--ingestion-date", ingestion_date]
    for key, value in flags.items():
        args += [f"--{key.replace('_', '-')}", value]
    return args


SPARK_MISSING = (
    "Spark steps run in this process (VAMOSJUNTOS_SPARK_RUNNER=local), but PySpark is not installed: it is "
    "the package's `spark` extra. Install it with `pip install 'vamosjuntos-lakehouse[spark]'` (`bash "
    ".ci/setup` does), or run the steps as Kubernetes Jobs (VAMOSJUNTOS_SPARK_RUNNER=kubernetes)."
)


def require_local_spark() -> None:
    """PySpark is an extra (the flow-run image has none): say so before a local step needs it."""
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(SPARK_MISSING) from exc


def not_retried(failed: SparkStepFailed) -> LakeError | None:
    """A driver that exited with the code of a failure no retry can fix (flows/errors.py, NOT_RETRIED: a
    checksum mismatch, a raw unit too large, a damaged lake file), as that error again, with the driver's
    message from its log: a retry would fail the same way."""
    for error in NOT_RETRIED:
        if f"(exit code {error.exit_code})" in failed.reason:
            marker = f"{error.__name__}: "
            said = next(
                (line.split(marker, 1)[1] for line in reversed(failed.last_log_lines) if marker in line),
                _UNSAID[error],
            )
            return error(f"Spark step {failed.step!r} on Kubernetes (job {failed.job_name}): {said}")
    return None


_UNSAID: dict[type[LakeError], str] = {
    ChecksumMismatch: "a raw part does not match its manifest's sha256 (the driver's log says which)",
    InputTooLarge: "a raw unit holds more records than the step takes (the driver's log says which)",
    DamagedLakeFile: "a lake file was changed outside the pipeline (the driver's log says which)",
}


def run_step(
    step: str,
    settings: Settings,
    ingestion_date: str,
    *,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    flow_run_id: str = "local",
    task_run_id: str | None = None,
    **flags: str,
) -> None:
    """Run one step to completion; its results are read back from the lake's manifests, wherever it ran."""
    if step not in STEPS:
        raise ValueError(f"unknown Spark step {step!r}; known: {', '.join(STEPS)}")
    if settings.spark_runner == "kubernetes":
        from flows.spark.kubernetes.errors import SparkStepFailed
        from flows.spark.kubernetes.step_runner import run_step_on_kubernetes

        try:
            run_step_on_kubernetes(
                step,
                step_args(ingestion_date, **flags),
                settings,
                flow_run_id=flow_run_id,
                task_run_id=task_run_id,
                logger=logger,
            )
        except SparkStepFailed as exc:
            if (known := not_retried(exc)) is None:
                raise
            raise known from exc
        return
    # Local mode: same entrypoint code, in-process, reusing one SparkSession across steps.
    raise_if_abandoned(step)  # e.g. a retry after the run beside it failed: nothing starts
    require_local_spark()
    await_warm_up()  # the session a `lakehouse` run started while MongoDB streamed (flows/spark/warmup.py)
    module = importlib.import_module(f"flows.spark.jobs.{step}")
    try:
        result = module.run(settings, ingestion_date=ingestion_date, **flags)
    except BaseException as exc:
        # A py4j error from a JVM the same signal stopped hides it (flows/termination.py): raised as the
        # signal, the task crashes instead of being retried against a dead JVM.
        raise_hidden_signal(exc)
        raise
    logger.info("%s %s: %s", step, " ".join(f"{k}={v}" for k, v in flags.items()), result)
