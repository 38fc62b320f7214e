"""A signal whose exception a finalizer swallowed is delivered again: the command still ends as it asked.

Each case runs in a process of its own (signal handlers and `sys.unraisablehook` are the process's, and
pytest installs its own hook): the signal comes while the main thread runs a finalizer, as when py4j
releases a Java object during a Spark step, which is how a `vamosjuntos run` sent SIGTERM once finished its
work and exited 0.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

PRELUDE = """
import os, signal, sys, time, weakref
from flows import termination
from flows.errors import Terminated

# A command typed at a terminal: SIGINT not ignored, whatever this test's own parent left it as (a shell
# starts background jobs with SIGINT ignored, and a command honours that: one case below).
signal.signal(signal.SIGINT, signal.default_int_handler)

class Held:
    pass

def inside_a_finalizer(signum=signal.SIGTERM, kind="weakref"):
    '''`signum` comes while a finalizer runs: its handler runs there too, and its exception is lost.'''
    def release(*_):
        os.kill(os.getpid(), signum)
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:  # the handler runs between these bytecodes
            pass
    if kind == "weakref":  # py4j's way: a weakref callback per Java object
        held = Held()
        ref = weakref.ref(held, release)
        del held
    else:
        class Finalized:
            __del__ = release
        Finalized()

def finish():
    '''Work that goes on after the finalizer: the signal must end it.'''
    time.sleep(3)
    print("finished", flush=True)
"""


def _run(body: str) -> subprocess.CompletedProcess[str]:
    script = PRELUDE + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def _ended_by(result: subprocess.CompletedProcess[str], name: str) -> None:
    assert "finished" not in result.stdout, (result.stdout, result.stderr)
    assert f"ended by {name}" in result.stdout, (result.stdout, result.stderr)
    assert "Exception ignored" not in result.stderr, result.stderr


@pytest.mark.parametrize("kind", ["weakref", "__del__"])
@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_signal_lost_in_a_finalizer_still_ends_the_command(kind: str, name: str) -> None:
    result = _run(f"""
        try:
            with termination.terminated_on_signals("run it again"):
                inside_a_finalizer(signal.{name}, {kind!r})
                finish()
        except Terminated as exc:
            print("ended by", signal.Signals(exc.signum).name, "-", exc)
    """)
    _ended_by(result, name)
    assert "run it again" in result.stdout


def test_prefect_s_termination_signal_lost_in_a_finalizer_still_unwinds_the_run_and_the_command() -> None:
    """Inside a flow run SIGTERM goes to Prefect's handler first (`capture_sigterm`, what its engine wraps
    a flow run in): its TerminationSignal is the exception lost. Delivered again, it unwinds the flow run
    and Prefect hands the signal on to our handler, as when nothing was lost."""
    result = _run("""
        from prefect.exceptions import TerminationSignal
        from prefect.utilities.engine import capture_sigterm

        try:
            with termination.terminated_on_signals("run it again"):
                with capture_sigterm():
                    inside_a_finalizer()
                    finish()
        except Terminated as exc:
            print("ended by", signal.Signals(exc.signum).name)
            print("while unwinding", type(exc.__context__).__name__)
    """)
    _ended_by(result, "SIGTERM")
    assert "while unwinding TerminationSignal" in result.stdout


def test_a_second_sigterm_after_a_flow_run_raises_again_without_one_it_ends_the_process() -> None:
    """What terminated_on_signals' docstring and docs/faults.md promise: Prefect's capture_sigterm puts back
    the handler it found (ours) when the flow run's scope ends, so a second SIGTERM in the clean-up raises
    another Terminated there; with no flow run, our handler restored the default and it ends the process."""
    result = _run("""
        from prefect.utilities.engine import capture_sigterm

        try:
            with termination.terminated_on_signals("run it again"):
                try:
                    with capture_sigterm():
                        os.kill(os.getpid(), signal.SIGTERM)
                        finish()
                finally:
                    try:
                        os.kill(os.getpid(), signal.SIGTERM)  # the clean-up after the flow run
                        time.sleep(1)
                        print("second: nothing", flush=True)
                    except Terminated:
                        print("second: Terminated in the clean-up", flush=True)
        except Terminated as exc:
            print("ended by", signal.Signals(exc.signum).name, flush=True)
        try:
            with termination.terminated_on_signals("run it again"):
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                    finish()
                finally:
                    print("clean-up", flush=True)
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(1)
                    print("second: survived", flush=True)
        except Terminated:
            pass
    """)
    assert "second: Terminated in the clean-up" in result.stdout, (result.stdout, result.stderr)
    assert "ended by SIGTERM" in result.stdout
    assert "clean-up" in result.stdout and "second: survived" not in result.stdout
    assert result.returncode == -signal.SIGTERM, (result.returncode, result.stderr)


def test_a_command_that_finishes_before_the_second_delivery_still_ends_as_the_signal_asked() -> None:
    """The moment between a lost signal and its second delivery: the command's own ending raises it, and
    no late signal follows (the delivery is called off; were it sent, the default handler would kill)."""
    result = _run("""
        termination.REDELIVER_AFTER_S = 0.5
        try:
            with termination.terminated_on_signals("run it again"):
                inside_a_finalizer()
        except Terminated as exc:
            print("ended by", signal.Signals(exc.signum).name, flush=True)
        time.sleep(1.5)
        print("no late signal", flush=True)
    """)
    _ended_by(result, "SIGTERM")
    assert "no late signal" in result.stdout
    assert result.returncode == 0


def test_a_signal_lost_again_and_again_is_delivered_until_it_ends_the_command() -> None:
    """One garbage collection can run many py4j callbacks in a row: a second delivery may land in a
    finalizer too, and is then sent again in turn."""
    result = _run("""
        import logging
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)

        def spin(*_):
            deadline = time.monotonic() + 0.02
            while time.monotonic() < deadline:
                pass

        class Losses(logging.Handler):
            seen = 0

            def emit(self, record):
                Losses.seen += 1

        logging.getLogger("flows.termination").addHandler(Losses())

        try:
            with termination.terminated_on_signals("run it again"):
                inside_a_finalizer()
                # Nearly all of it inside finalizers, until a second delivery was lost too (a deadline, not
                # a duration: a loaded machine may be slow to send it).
                deadline = time.monotonic() + 20
                while Losses.seen < 2 and time.monotonic() < deadline:
                    held = Held()
                    ref = weakref.ref(held, spin)
                    del held
                finish()
        except Terminated as exc:
            print("ended by", signal.Signals(exc.signum).name, flush=True)
    """)
    assert "finished" not in result.stdout, result.stderr
    assert "ended by SIGTERM" in result.stdout, (result.stdout, result.stderr)
    assert result.stderr.count("swallowed its exception: delivering it again") >= 2, result.stderr


def test_a_signal_whose_exception_was_swallowed_ends_the_command_when_it_would_return() -> None:
    """Prefect's engine drops a Terminated that comes once a flow run's state is final: the command then
    ends as the signal asked, when it would have returned."""
    result = _run("""
        try:
            with termination.terminated_on_signals("run it again"):
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(3)
                except BaseException:
                    pass
                print("returning", flush=True)
        except Terminated as exc:
            print("ended by", signal.Signals(exc.signum).name, flush=True)
    """)
    _ended_by(result, "SIGTERM")
    assert "returning" in result.stdout


def test_other_exceptions_in_finalizers_are_reported_as_before_and_the_hook_is_given_back() -> None:
    result = _run("""
        earlier = sys.unraisablehook
        def own(signum, frame):
            pass
        signal.signal(signal.SIGTERM, own)
        earlier_int = signal.getsignal(signal.SIGINT)
        class Broken:
            def __del__(self):
                raise ValueError("a finalizer's own bug")
        with termination.terminated_on_signals("run it again"):
            Broken()
            print("handlers taken:", signal.getsignal(signal.SIGTERM) is not own)
        print("hook given back:", sys.unraisablehook is earlier)
        print(
            "handlers given back:",
            signal.getsignal(signal.SIGTERM) is own,
            signal.getsignal(signal.SIGINT) is earlier_int,
        )
    """)
    assert result.returncode == 0, result.stderr
    assert "Exception ignored" in result.stderr and "a finalizer's own bug" in result.stderr
    assert "handlers taken: True" in result.stdout
    assert "hook given back: True" in result.stdout
    assert "handlers given back: True True" in result.stdout


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_signal_ignored_when_the_command_starts_stays_ignored(name: str) -> None:
    """A shell starts a background job with SIGINT ignored (Ctrl-C stops the script, not its jobs)."""
    result = _run(f"""
        signal.signal(signal.{name}, signal.SIG_IGN)
        with termination.terminated_on_signals("run it again"):
            os.kill(os.getpid(), signal.{name})
            time.sleep(0.2)
            print("finished", flush=True)
        print("still ignored:", signal.getsignal(signal.{name}) is signal.SIG_IGN)
    """)
    assert result.returncode == 0, result.stderr
    assert "finished" in result.stdout and "still ignored: True" in result.stdout, result.stdout


def test_a_signal_hidden_behind_a_clean_up_error_ends_the_command_as_the_signal_asked() -> None:
    """Prefect's handler took the signal, and a clean-up that failed because of it (a JVM the same group
    signal stopped) replaced its TerminationSignal: the command still ends by SIGTERM, the error that hid
    the signal as its cause (in the log's trace)."""
    result = _run("""
        from prefect.utilities.engine import capture_sigterm

        try:
            with termination.terminated_on_signals("run it again"):
                with capture_sigterm():
                    try:
                        os.kill(os.getpid(), signal.SIGTERM)
                        finish()
                    finally:
                        raise ConnectionRefusedError("the JVM the signal stopped")
        except Terminated as exc:
            print("ended by", signal.Signals(exc.signum).name, "-", exc)
            print("hidden by", type(exc.__cause__).__name__)
    """)
    _ended_by(result, "SIGTERM")
    assert "run it again" in result.stdout
    assert "hidden by ConnectionRefusedError" in result.stdout


def test_a_command_ending_with_an_error_that_hides_no_signal_ends_with_that_error() -> None:
    result = _run("""
        try:
            with termination.terminated_on_signals("run it again"):
                try:
                    raise KeyError("first")
                finally:
                    raise ValueError("a failure of its own")
        except ValueError as exc:
            print("ended with", type(exc).__name__, "-", exc)
    """)
    assert "ended with ValueError - a failure of its own" in result.stdout, (result.stdout, result.stderr)


def test_pyspark_hides_a_signal_that_stopped_its_jvm_and_the_step_raises_it_again() -> None:
    """What a signal to the run's process group does to a Spark step, on a real JVM: the handler's exception
    leaves a query, PySpark's `__exit__` tells the JVM (stopped by the same signal: here the handler stops
    it) and raises a py4j error in its place (Py4JError while the JVM is stopping; ConnectionRefusedError
    once it is gone, as here). `raise_hidden_signal`, where a step ends, raises the signal again."""
    result = _run("""
        import threading
        from pyspark.sql import SparkSession

        spark = (
            SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
        )
        jvm = spark.sparkContext._gateway.proc

        def stop_both(signum, frame):
            jvm.kill()
            jvm.wait()
            raise Terminated(signum, "run it again")

        endless = spark.range(10**12).selectExpr("sum(id)")  # minutes: the signal comes first
        spark.range(10).selectExpr("sum(id)").collect()  # the first query's planning done before the timer
        signal.signal(signal.SIGTERM, stop_both)
        threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
        try:
            try:
                endless.collect()
                print("finished", flush=True)
            except BaseException as exc:
                print("the query raised", type(exc).__name__, flush=True)
                termination.raise_hidden_signal(exc)
                raise
        except Terminated as exc:
            print("ended by", signal.Signals(exc.signum).name, flush=True)
            print("context", type(exc.__context__).__name__, flush=True)
    """)
    assert "the query raised ConnectionRefusedError" in result.stdout, (result.stdout, result.stderr[-3000:])
    assert "ended by SIGTERM" in result.stdout, result.stdout
    assert "context ConnectionRefusedError" in result.stdout
    assert "finished" not in result.stdout


def _chain(exc: BaseException) -> list[str]:
    """The exception and what it hides, by cause then context, as names; stops at a loop."""
    names, seen = [], set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        names.append(type(node).__name__)
        node = node.__cause__ or node.__context__
    return names


@pytest.mark.parametrize("link", ["__context__", "__cause__"])
def test_the_signal_behind_an_error_heads_the_chain_without_a_loop(link: str) -> None:
    from flows.errors import Terminated
    from flows.termination import hidden_signal, raise_hidden_signal

    signalled = Terminated(signal.SIGTERM)
    inner = RuntimeError("py4j: the JVM answered with an error")
    setattr(inner, link, signalled)
    outer = ConnectionError("the JVM is gone")
    outer.__context__ = inner
    assert hidden_signal(outer) is signalled

    with pytest.raises(Terminated) as raised:
        try:
            raise outer
        except BaseException as exc:
            raise_hidden_signal(exc)
            raise
    assert raised.value is signalled
    assert _chain(raised.value) == ["Terminated", "ConnectionError", "RuntimeError"]


def test_an_error_hiding_no_signal_or_a_signal_itself_is_left_to_raise() -> None:
    from flows.errors import Terminated
    from flows.termination import hidden_signal, raise_hidden_signal

    looping, other = ValueError("a"), KeyError("b")
    looping.__context__, other.__context__ = other, looping
    signalled = Terminated(signal.SIGINT)
    signalled.__context__ = Terminated(signal.SIGTERM)
    for exc in (looping, signalled, RuntimeError("alone")):
        assert hidden_signal(exc) is None
        raise_hidden_signal(exc)  # returns: the caller re-raises `exc` itself
