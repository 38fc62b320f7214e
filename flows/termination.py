"""SIGTERM and SIGINT end a command through its `finally` blocks, and are never lost on the way.

A Python signal handler runs in the main thread between two bytecodes, wherever that thread is. When it is
inside a finalizer (a weakref callback or a `__del__`: py4j releases Java objects from one each time the
garbage collector frees their Python side, many times a second during a Spark step), the exception the
handler raises cannot propagate: Python prints "Exception ignored in ..." and the code goes on as if no
signal had come. A `vamosjuntos run` sent SIGTERM then finished its work and exited 0. So while a command
runs, an exception of a signal that is lost that way is noticed (`sys.unraisablehook`) and the signal
delivered again, to the same handler, a moment later, when the thread is out of the finalizer.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from flows.errors import Terminated

log = logging.getLogger(__name__)

# Long enough for the thread to leave the finalizer that swallowed the signal's exception (a py4j release
# is a socket round trip to the JVM, well under this); short enough that nobody waits on it.
REDELIVER_AFTER_S = 0.05

SignalHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def signal_of(exc: BaseException | None) -> int | None:
    """The signal an exception stands for: ours (Terminated) or Prefect's (TerminationSignal, raised by
    the SIGTERM handler it installs for a flow run's length); None for any other exception."""
    if isinstance(exc, Terminated):
        return exc.signum
    prefect_exceptions = sys.modules.get("prefect.exceptions")  # never imported here just to compare
    if prefect_exceptions is not None and isinstance(exc, prefect_exceptions.TerminationSignal):
        return int(exc.signal)
    return None


@contextmanager
def terminated_on_signals(advice: str) -> Iterator[None]:
    """SIGTERM, and SIGINT (Ctrl-C), raise Terminated (saying `advice`: what to do next, which depends on
    the command) in the main thread: the command ends through its `finally` blocks, with one summary (not
    KeyboardInterrupt's traceback). Inside a flow run Prefect's own SIGTERM handler takes that signal
    first (its run crashes, reported to its server) and then sends it again to this one.

    A signal whose exception a finalizer swallowed is delivered again (the module's docstring says why).

    A second signal of the same kind: outside a flow run, or once every flow run has ended, it ends the
    process at once (this handler restored the default). While a flow run unwinds, Prefect's handler is
    still installed: a second SIGTERM raises another TerminationSignal inside the clean-up under way (that
    clean-up step is cut short, the run still ends with one summary and 143); a second SIGINT ends the
    process at once."""

    def terminate(signum: int, frame: FrameType | None) -> None:
        signal.signal(signum, signal.SIG_DFL)
        raise Terminated(signum, advice)

    signums = (signal.SIGTERM, signal.SIGINT)
    previous: dict[int, SignalHandler] = {signum: signal.signal(signum, terminate) for signum in signums}
    redeliveries: list[tuple[threading.Timer, int]] = []
    earlier_hook = sys.unraisablehook

    def redeliver_lost_signals(unraisable: Any) -> None:
        signum = signal_of(unraisable.exc_value)
        if signum is None:
            earlier_hook(unraisable)
            return
        if isinstance(unraisable.exc_value, Terminated):
            signal.signal(signum, terminate)  # it had restored the default, for a second signal
        log.debug(
            "%s came while Python ran a finalizer (%r), which swallowed its exception: delivering it again",
            signal.Signals(signum).name,
            unraisable.object,
        )
        # From another thread, a moment later: delivered now, the handler could run before this hook
        # returns, and an exception raised in the hook is lost as well.
        timer = threading.Timer(REDELIVER_AFTER_S, os.kill, (os.getpid(), signum))
        timer.daemon = True
        redeliveries.append((timer, signum))
        timer.start()

    sys.unraisablehook = redeliver_lost_signals
    try:
        yield
    finally:
        sys.unraisablehook = earlier_hook
        undelivered = [signum for timer, signum in redeliveries if timer.is_alive()]
        for timer, _ in redeliveries:
            timer.cancel()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    # The command finished in the moment between a lost signal and its second delivery: it still ends as
    # the signal asked (with an exception on its way out already, that one ends it).
    if undelivered:
        raise Terminated(undelivered[0], advice)
