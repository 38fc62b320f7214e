"""The local SparkSession, started by a background thread while MongoDB streams (issue 13, item 5).

Starting Spark's JVM takes seconds of CPU, and in local mode nothing else ran meanwhile: the run waited
for it after the extraction. While SecantusDB builds its answer (and while a real MongoDB streams) one
core is idle, so the `lakehouse` run starts the session first (`warming_spark`) and the first Spark step
takes it (`await_warm_up`, in the runner). On Kubernetes every step is a Job with its own driver: there is
no local session to warm, and nothing changes.

A warm-up that fails is the first step's error, raised where the step would have started Spark itself.
A run that fails before any step needs Spark stops the session the warm-up built, so no JVM outlives it;
a run interrupted by a signal does not wait for it (the JVM ends with the process); the thread is a
daemon, so a process that exits meanwhile never waits for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

from flows.settings import Settings
from flows.termination import interrupts

log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter[Any]
THREAD_NAME = "spark-warm-up"
# How long a run that failed before Spark waits for a JVM still starting, to stop it. Past that the daemon
# thread is left behind: the JVM gateway exits with this process anyway.
DISCARD_WAIT_S = 120.0


def _local(settings: Settings) -> bool:
    if settings.spark_runner != "local" or settings.spark_master.startswith("k8s://"):
        return False
    if settings.spark_remote:  # a running Spark Connect server: no JVM here to start early
        return False
    try:
        import pyspark  # noqa: F401  (an extra: without it the first step says so, as before)
    except ImportError:
        return False
    return True


class SparkWarmUp:
    """One background build of the session `flows.spark.session.spark_session` gives every local step."""

    def __init__(self, settings: Settings, logger: Logger = log) -> None:
        self.settings = settings
        self.logger = logger
        self.future: Future[Any] = Future()
        self.requested_at = time.time()  # wall clock, to compare with a manifest's started_at
        self.taken = False
        self.created = False  # whether this build started the session (else it found one running)
        self.started: float | None = None  # time.perf_counter() when the build began
        self.seconds: float | None = None  # how long building the session took
        # Set when the run was interrupted and left without it: the build then says nothing through the
        # run's logger (Prefect's), which may be starting its log worker while the process shuts down
        # ("can't register atexit after shutdown": a traceback after the run's one summary)
        self.abandoned = False
        self._reporting = threading.Lock()
        self.thread = threading.Thread(target=self._build, name=THREAD_NAME, daemon=True)

    def start(self) -> SparkWarmUp:
        self.future.set_running_or_notify_cancel()
        self.thread.start()
        return self

    def _build(self) -> None:
        from pyspark import SparkContext

        from flows.spark.session import spark_session

        self.started = started = time.perf_counter()
        try:
            self.created = SparkContext._active_spark_context is None
            session = spark_session(self.settings)
        except BaseException as exc:  # handed to the step that needs the session
            self.future.set_exception(exc)
            return
        self.seconds = time.perf_counter() - started
        with self._reporting:
            logger = log if self.abandoned else self.logger
            logger.info("Spark session started in the background in %.1f s", self.seconds)
        self.future.set_result(session)

    def abandon(self) -> None:
        """The run left without the session: from now on the build reports to this module's logger only."""
        with self._reporting:
            self.abandoned = True

    def done(self) -> bool:
        return self.future.done()

    def session(self) -> Any:
        """The session, once built (waiting if need be); the build's exception if it failed."""
        self.taken = True
        return self.future.result()

    def discard(self) -> None:
        """Nobody took the session (the run failed before Spark): stop it, if this build started it."""
        self.thread.join(DISCARD_WAIT_S)
        if self.thread.is_alive():
            self.abandon()  # left behind: it may finish while the process shuts down
        if not self.future.done() or self.future.exception() is not None or not self.created:
            return
        try:
            self.future.result().stop()
        except Exception as exc:  # the run's own failure is what matters
            self.logger.warning("stopping the unused Spark session failed: %s", exc)


_lock = threading.Lock()
_current: SparkWarmUp | None = None


def start_warm_up(settings: Settings, logger: Logger = log) -> SparkWarmUp | None:
    """Start building the local session in the background (local mode only; once per process)."""
    global _current
    if not _local(settings):
        return None
    with _lock:
        if _current is None or _current.taken:  # a later run: finds the session running, or starts it again
            logger.info("Starting the Spark session in the background")
            _current = SparkWarmUp(settings, logger).start()
        return _current


def latest_warm_up() -> SparkWarmUp | None:
    """The warm-up this process started last (None after one was discarded): for reports and tests."""
    return _current


def await_warm_up() -> None:
    """Before a local step starts Spark: wait for a warm-up nobody took yet; raise its failure, once."""
    with _lock:
        warm = _current if _current is not None and not _current.taken else None
    if warm is not None:
        warm.session()


@contextmanager
def warming_spark(settings: Settings, logger: Logger = log) -> Iterator[SparkWarmUp | None]:
    """The session starts while the body runs; if the body never took it, it is stopped on the way out."""
    global _current
    warm = start_warm_up(settings, logger)
    interrupted = False
    try:
        yield warm
    except BaseException as exc:
        # A termination signal (Prefect's TerminationSignal), Ctrl-C or exit: the process is ending, and
        # the JVM with it (its gateway exits when our end of its stdin closes). Waiting here for a JVM
        # still starting, then stopping it over py4j while the same signal tears it down, kept a
        # terminated run alive for minutes.
        interrupted = interrupts(exc)
        raise
    finally:
        if warm is not None and not warm.taken:
            if interrupted:
                warm.abandon()
            else:
                warm.discard()
            with _lock:
                if _current is warm:
                    _current = None
