"""The Spark warm-up (flows/spark/warmup.py): the JVM starts while MongoDB streams, with real PySpark.

Each case runs in a fresh interpreter: a Spark session is one per process, and the test process has its
own (the `spark` fixture), which a warm-up would find and reuse instead of starting one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from flows.sources.local_mongo import SecantusProcess
from flows.sources.local_mongo_seed import seed

ROOT = Path(__file__).resolve().parents[2]
PRELUDE = """
import json, sys, time
from flows.settings import Settings
from flows.spark import warmup
settings = Settings(_env_file=None, lake_root=sys.argv[1], spark_master="local[1]", **json.loads(sys.argv[2]))
def report(**found):
    print("RESULT " + json.dumps(found), flush=True)
def java_started():
    # spark-submit's shell helpers come and go: one can end between listing it and reading its name
    import psutil
    for child in psutil.Process().children(recursive=True):
        try:
            if "java" in child.name():
                return True
        except psutil.NoSuchProcess:
            pass
    return False
"""


def _run(
    tmp_path: Path, body: str, **settings: Any
) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPARK_LOCAL_IP": "127.0.0.1"}
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + body, str(tmp_path / "lake"), json.dumps(settings)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,  # a warm-up that hangs the process at exit fails here
        cwd=ROOT,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"no result (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return json.loads(lines[-1].removeprefix("RESULT ")), done


def test_the_session_starts_while_mongodb_streams_and_the_first_step_takes_it(
    tmp_path: Path, mongo_server: SecantusProcess
) -> None:
    seed(mongo_server.uri, "ibge", "pnadc20203", 20_000, 7)
    found, done = _run(
        tmp_path,
        """
from pyspark import SparkContext
from flows.lake import Lake
from flows.sources.mongo import extract_pnadc
from flows.spark.session import spark_session
with warmup.warming_spark(settings) as warm:
    requested_before_extraction = warm.thread.is_alive() or warm.done()
    records = extract_pnadc(settings, Lake(settings), "2026-11-25").manifest["records"]
    extraction_ended = time.perf_counter()
    warmup.await_warm_up()  # what the runner does before the first local step
    session = warm.session()
    report(
        records=records,
        requested_before_extraction=requested_before_extraction,
        build_started_before_extraction_ended=warm.started < extraction_ended,
        created=warm.created,
        taken=warm.taken,
        same_session=spark_session(settings, "pnadc_to_processing") is session,
        contexts_alive=SparkContext._active_spark_context is not None,
    )
""",
        mongo_uri=mongo_server.uri,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert found["records"] == 20_000
    # Requested before the extraction began and built on the side: the step's own call finds it running.
    assert found["requested_before_extraction"] and found["build_started_before_extraction_ended"]
    assert found["created"] and found["taken"] and found["same_session"] and found["contexts_alive"]


def test_a_failed_warm_up_is_the_first_steps_error(tmp_path: Path) -> None:
    found, done = _run(
        tmp_path,
        """
from flows.spark.runner import run_step
with warmup.warming_spark(settings) as warm:
    try:
        run_step("ibge_to_processing", settings, "2026-11-25", logger=__import__("logging").getLogger("t"))
        report(raised=None)
    except BaseException as exc:
        report(raised=type(exc).__name__, message=str(exc)[:500], the_warm_ups=exc is warm.future.exception())
""",
        spark_driver_memory="not-a-size",  # the JVM refuses to start
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert found["raised"] is not None and found["the_warm_ups"], found


def test_a_run_that_fails_before_spark_stops_the_session_and_exits(tmp_path: Path) -> None:
    found, done = _run(
        tmp_path,
        """
import os, psutil
from pyspark import SparkContext
from flows.errors import SourceError
try:
    with warmup.warming_spark(settings) as warm:
        time.sleep(0.5)  # the extraction, failing early while the JVM starts
        raise SourceError("MongoDB went away")
except SourceError:
    pass
children = [p.pid for p in psutil.Process(os.getpid()).children(recursive=True)]
report(context_stopped=SparkContext._active_spark_context is None, taken=warm.taken, children=children)
""",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert found["context_stopped"] and not found["taken"]
    # The JVM gateway PySpark started leaves with the interpreter: nothing outlives the run. It leaves
    # once it sees the interpreter gone, a moment after (ci20 caught it still there): wait, as below.
    _gone, alive = psutil.wait_procs([p for pid in found["children"] if (p := _process(pid))], timeout=60)
    assert [p for p in alive if _not_a_zombie(p.pid)] == []


# A termination signal as the run meets it: Prefect's TerminationSignal, or an error that hides it (a clean-up
# that failed because the same signal stopped what it talked to: flows/termination.py).
SIGNALLED = {
    "the signal": "raise TerminationSignal(signal=15)",
    "an error hiding it": (
        "try:\n            raise TerminationSignal(signal=15)\n        finally:\n"
        "            raise ConnectionRefusedError(111, 'the JVM the signal stopped')"
    ),
}


@pytest.mark.parametrize("raised", SIGNALLED.values(), ids=SIGNALLED.keys())
def test_a_run_interrupted_by_a_signal_does_not_wait_for_the_jvm(tmp_path: Path, raised: str) -> None:
    """A termination signal (Prefect raises TerminationSignal, a BaseException; or an error hiding it) or
    Ctrl-C while the JVM starts: the run leaves at once, without waiting for the JVM to stop it, and the
    process still ends with nothing left running (the JVM goes with it)."""
    found, done = _run(
        tmp_path,
        f"""
import os, psutil
from prefect.exceptions import TerminationSignal
try:
    with warmup.warming_spark(settings) as warm:
        while not java_started():
            time.sleep(0.05)  # the JVM is starting
        {raised}
except (TerminationSignal, ConnectionRefusedError):
    pass
report(built_before_leaving=warm.done(), children=[p.pid for p in psutil.Process().children(recursive=True)])
""",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not found["built_before_leaving"]  # it did not wait for the session to be built
    _gone, alive = psutil.wait_procs([p for pid in found["children"] if (p := _process(pid))], timeout=60)
    assert [p for p in alive if _not_a_zombie(p.pid)] == []


def test_a_build_finishing_after_an_interrupted_run_says_nothing_through_the_runs_logger(
    tmp_path: Path,
) -> None:
    """The run's logger is Prefect's: a line sent to it while the process shuts down printed a traceback
    ("can't register atexit after shutdown") after the run's one summary (seen in CI)."""
    found, done = _run(
        tmp_path,
        """
import logging
from prefect.exceptions import TerminationSignal
class Recording(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []
    def emit(self, record):
        self.messages.append(record.getMessage())
run_logger = logging.getLogger("the-run")
recording = Recording()
run_logger.addHandler(recording)
run_logger.setLevel(logging.INFO)
try:
    with warmup.warming_spark(settings, run_logger) as warm:
        while not java_started():
            time.sleep(0.05)
        raise TerminationSignal(signal=15)
except TerminationSignal:
    pass
warm.thread.join(240)  # the build goes on, and ends, after the run left
report(built=warm.done() and warm.future.exception() is None, abandoned=warm.abandoned,
       said=[m for m in recording.messages if "started in the background in" in m])
""",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert found["built"] and found["abandoned"] and found["said"] == [], found


def _not_a_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_run_killed_while_the_jvm_starts_leaves_no_jvm(tmp_path: Path) -> None:
    """SIGKILL: no code of the run runs again, so nothing stops the session; PySpark's JVM ends on its own."""
    script = PRELUDE + (
        "import os, psutil\n"
        "warm = warmup.start_warm_up(settings)\n"
        "while not java_started():\n"
        "    time.sleep(0.1)\n"
        "report(children=[p.pid for p in psutil.Process().children(recursive=True)])\n"
        "time.sleep(600)\n"
    )
    run = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "lake"), "{}"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SPARK_LOCAL_IP": "127.0.0.1"},
        cwd=ROOT,
    )
    try:
        assert run.stdout is not None
        line = next(line for line in run.stdout if line.startswith("RESULT "))
        children = json.loads(line.removeprefix("RESULT "))["children"]
    finally:
        run.kill()
        run.wait()
    _gone, alive = psutil.wait_procs([p for pid in children if (p := _process(pid))], timeout=60)
    assert [p for p in alive if _not_a_zombie(p.pid)] == []


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None
