"""SIGTERM and SIGINT end a command through its `finally` blocks, also when their exception is lost.

A Python signal handler runs in the main thread between two bytecodes, wherever that thread is. When it is
inside a finalizer (a weakref callback or a `__del__`: py4j releases Java objects from one each time the
garbage collector frees their Python side, many times a second during a Spark step), the exception the
handler raises cannot propagate: Python prints "Exception ignored in ..." and the code goes on as if no
signal had come. A `vamosjuntos run` sent SIGTERM then finished its work and exited 0. So while a command
runs, an exception of a signal that is lost that way is noticed (`sys.unraisablehook`) and the signal
delivered again a moment later, to the handler installed then, when the thread is out of the finalizer.
And a command whose signal never unwound it (lost, or our Terminated swallowed: Prefect's engine drops a
BaseException other than its own TerminationSignal once a flow run's state is final) still ends as the
signal asked, when it would have returned.

A signal's exception can also be replaced on its way out, by the error of a clean-up step that fails
because of the same signal. PySpark's does: a query tells the JVM it ended (in an `__exit__`), the JVM is
stopping too (a signal to the run's process group reaches both), and the py4j error raised there
(Py4JError while it stops, ConnectionRefusedError once it is gone) hides the signal as its context. The
step then looked like an ordinary failure: Prefect retried it against a dead JVM and the command exited 1,
"Connection refused". So the signal behind such an error is raised again where a Spark step ends
(`raise_hidden_signal`), and a command ending with one ends as the signal asked.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn, TypeAlias

from flows.errors import Terminated

log = logging.getLogger(__name__)

# How soon a lost signal comes again. A delivery that lands in a finalizer again (one garbage collection can
# run many py4j callbacks in a row) is lost and sent again in turn; this only bounds how often that happens.
REDELIVER_AFTER_S = 0.05

SignalHandler: TypeAlias = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def signal_of(exc: BaseException | None) -> int | None:
    """The signal an exception stands for: ours (Terminated) or Prefect's (TerminationSignal, raised by
    the SIGTERM handler it installs for a flow run's length); None for any other exception."""
    if isinstance(exc, Terminated):
        return exc.signum
    # A TerminationSignal only exists once Prefect is imported, and importing it here would cost seconds
    # to a command that does not use it (`answers`, `report`).
    prefect_exceptions = sys.modules.get("prefect.exceptions")
    if prefect_exceptions is not None and isinstance(exc, prefect_exceptions.TerminationSignal):
        return int(exc.signal)
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every exception behind it (causes and contexts), each once: a chain can loop. Not the
    members of an exception group (none on the paths a signal takes today)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        node = todo.pop()
        if id(node) not in seen:
            seen.add(id(node))
            yield node
            todo.extend(e for e in (node.__cause__, node.__context__) if e is not None)


def hidden_signal(exc: BaseException | None) -> BaseException | None:
    """The termination signal's exception (Terminated, TerminationSignal) that `exc` replaced on its way
    out, if any (the module's docstring says how); None when `exc` is one itself or hides none."""
    if exc is None or signal_of(exc) is not None:
        return None
    return next((e for e in _chain(exc) if signal_of(e) is not None), None)


def interrupts(exc: BaseException) -> bool:
    """Whether `exc` ends the process rather than fails the work: a signal's exception, Ctrl-C, an exit, or
    an error that hides a signal's (`hidden_signal`)."""
    return not isinstance(exc, Exception) or hidden_signal(exc) is not None


def raise_hidden_signal(exc: BaseException) -> None:
    """In an `except` block for `exc`: raise the signal's exception `exc` hides instead, with `exc` as its
    context, so the run crashes as terminated rather than fails (Prefect retries no task a signal ended).
    Returns when `exc` hides none."""
    signalled = hidden_signal(exc)
    if signalled is None:
        return
    # The signal now heads the chain, so every link back to it goes. CPython, raising, cuts only a link
    # it meets following `__context__` from `exc`; any other (a `__cause__`: `raise … from`) would loop.
    for node in list(_chain(exc)):
        if node.__cause__ is signalled:
            node.__cause__ = None
            node.__suppress_context__ = False  # its context, if any, still shows in its trace
        if node.__context__ is signalled:
            node.__context__ = None
    raise signalled


@contextmanager
def terminated_on_signals(advice: str) -> Iterator[None]:
    """SIGTERM, and SIGINT (Ctrl-C), raise Terminated (saying `advice`: what to do next, which depends on
    the command) in the main thread: the command ends through its `finally` blocks, with one summary (not
    KeyboardInterrupt's traceback). Inside a flow run Prefect's own SIGTERM handler takes that signal
    first (its run crashes, reported to its server) and then sends it again to this one.

    A signal ignored when the command starts keeps being ignored by this handler (a shell starts a
    background job with SIGINT ignored). Prefect's SIGTERM handler does not: inside a flow run an ignored
    SIGTERM still crashes the run.

    A signal whose exception a finalizer swallowed is delivered again (the module's docstring says why).
    A command that would return normally after a signal, because its exception was lost or swallowed on
    the way, raises Terminated instead; so does one ending with an exception that hides a signal's (the
    module's docstring says how). One ending with another exception ends with that one.

    A second signal of the same kind: outside a flow run it ends the process at once (this handler
    restored the default), and so does a second SIGINT anywhere. A second SIGTERM once a flow run began
    does not: Prefect's handler is installed while the run unwinds, and when the run's scope ends Prefect
    puts back the handler it found (this one), so that SIGTERM raises another TerminationSignal or
    Terminated inside the clean-up under way. That clean-up step is cut short; the command still ends
    with one summary and 143."""
    lock = threading.Lock()
    pending: set[int] = set()  # lost signals waiting for their second delivery
    received: list[int] = []  # signals this handler took
    closed = False

    def terminate(signum: int, frame: FrameType | None) -> NoReturn:
        received.append(signum)
        # Delivered: a second delivery of a lost one would act as a second signal. No lock: this handler
        # may run while the main thread holds it.
        pending.discard(signum)
        signal.signal(signum, signal.SIG_DFL)
        raise Terminated(signum, advice)

    def redeliver(signum: int) -> None:
        with lock:
            if closed or signum not in pending:
                return
            pending.discard(signum)
            # os.kill, not _thread.interrupt_main: a signal also interrupts a blocking system call of the
            # main thread (py4j waiting on its socket), where interrupt_main waits for the call to return.
            os.kill(os.getpid(), signum)

    def redeliver_lost_signals(unraisable: sys.UnraisableHookArgs) -> None:
        signum = signal_of(unraisable.exc_value)
        # Signal handlers run in the main thread only: anything else is not a lost signal.
        if signum is None or threading.current_thread() is not threading.main_thread():
            earlier_hook(unraisable)
            return
        if isinstance(unraisable.exc_value, Terminated) and signum in previous:
            signal.signal(signum, terminate)  # it had restored the default, for a second signal
        pending.add(signum)
        # From another thread, a moment later: delivered now, the handler could run before this hook
        # returns, and an exception raised in the hook is lost as well.
        timer = threading.Timer(REDELIVER_AFTER_S, redeliver, (signum,))
        timer.daemon = True
        timer.start()
        log.debug(
            "%s came while Python ran a finalizer (%r), which swallowed its exception: delivering it again",
            signal.Signals(signum).name,
            unraisable.object,
        )

    earlier_hook = sys.unraisablehook
    sys.unraisablehook = redeliver_lost_signals
    previous: dict[int, SignalHandler] = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            # An ignored signal stays ignored: a shell starts a background job (`vamosjuntos run … &` in a
            # script) with SIGINT ignored, so that Ctrl-C stops the script and not its jobs.
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, terminate)
        try:
            yield
        except BaseException as exc:
            # Our handler may not have run (Prefect's took the signal), so `received` cannot tell.
            hidden = signal_of(hidden_signal(exc))
            if hidden is not None:
                raise Terminated(hidden, advice) from exc
            raise
    finally:
        try:
            with lock:  # no second delivery after this
                closed = True
                undelivered = sorted(pending)
        finally:
            sys.unraisablehook = earlier_hook
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    if received or undelivered:
        raise Terminated((received or undelivered)[0], advice)


def stop_child(child: subprocess.Popen[bytes], wait_s: float) -> None:
    """Stop a child process on the way out of a command: SIGTERM, then SIGKILL after `wait_s`. A second
    Ctrl-C or SIGTERM meanwhile (or one Python received but had not acted on yet) is ignored until it is
    gone, so it cannot cut the wait short and leave the child running (in the main thread: elsewhere
    signals are the main thread's to handle)."""
    kept: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        kept = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(wait_s)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    finally:
        for signum, handler in kept.items():
            signal.signal(signum, handler)
