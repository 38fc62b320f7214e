"""`vamosjuntos spark-server`'s warm-up: before it says it is ready, the server runs the steps of a small
run (flows/spark/small_run.py) twice, so that a user's first run finds its JVM about as later runs do.

A server's JVM is cold when it starts: its first run spends more CPU compiling Spark's code than on the
data, as a run's own JVM does (docs/spark-performance.md). Runs on the server got faster for their first
few: at 368,210 documents 34-35 s for the first and 23-24 s from the second on, here. The warm-up pays that
once, at the server's start, on 20,000 generated documents (docs/spark-performance.md, "Kept,
opt-in").

The small run is a child process (`python -m flows.spark.server_warm_up`): its imports and memory leave with
it, and its environment holds none of the user's settings that say where data is (`child_environment`: it
keeps Spark's tuning), only the server's URL, so its lake and its MongoDB are its own, in a temporary folder
removed after it. It needs the embedded
MongoDB stand-in (the `local` extra). A warm-up that fails leaves a server that works, cold: `serve` says
so and goes on.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from flows.spark.small_run import child_environment, run_small
from flows.termination import stop_child

WARM_UP_ROWS = 20_000
WARM_UP_ROUNDS = 2
WARM_UP_TIMEOUT_S = 600.0  # 15-20 s here
STOP_WAIT_S = 30.0
RECORDS = "warm-up records: "  # the child's line the parent reads back (anything else it prints is not)
SAID_LINES = 5  # of a failed child's output, in the failure's message
# The removal of the warm-up's folder is bounded: the server waits for it before it serves (or stops).
REMOVE_WITHIN_S = 10.0
SETTLE_S = 0.5  # an interrupted task's last write lands within it


class WarmUpFailed(Exception):
    """The warm-up did not finish; the message says why (the child's last lines, the token masked)."""


@dataclass(frozen=True)
class WarmedUp:
    seconds: float
    records: dict[str, int]  # the last round's records per table, "zone/table": what the steps wrote


def warm_up(remote: str, rows: int = WARM_UP_ROWS, rounds: int = WARM_UP_ROUNDS) -> WarmedUp:
    """Run the small run `rounds` times on `rows` documents against the server at `remote` (a
    VAMOSJUNTOS_SPARK_REMOTE URL, token included: handed over in the child's environment, never its command
    line).

    The child runs in a session of its own: Ctrl-C in the server's terminal reaches the server alone, which
    then stops the child once (a second signal mid-cleanup would leave its folder or its MongoDB behind)."""
    from flows.spark.connect_server import REMOTE_VARIABLE

    started = time.monotonic()
    # The child's folder is made and removed here: a child killed at the end of its stop (SIGKILL) removes
    # nothing, and its folder would stay.
    work = Path(tempfile.mkdtemp(prefix="vamosjuntos-warm-up-"))
    command = [sys.executable, "-m", "flows.spark.server_warm_up", f"--rows={rows}", f"--rounds={rounds}"]
    command.append(f"--work={work}")
    environment = child_environment(**{REMOTE_VARIABLE: remote})
    with tempfile.TemporaryFile() as output:
        child = subprocess.Popen(
            command, env=environment, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        code: int | None = None
        try:
            code = child.wait(WARM_UP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
        finally:  # a timeout, or Ctrl-C / SIGTERM stopping the server meanwhile: the child goes too
            stop_child(child, STOP_WAIT_S)  # SIGTERM: it cleans up (`_leave`)
            _remove(work)
        output.seek(0)
        said = output.read().decode(errors="replace").splitlines()
    records = [line.removeprefix(RECORDS) for line in said if line.startswith(RECORDS)]
    if code == 0 and records:
        try:
            return WarmedUp(time.monotonic() - started, json.loads(records[-1]))
        except ValueError:
            pass
    why = f"it took over {WARM_UP_TIMEOUT_S:.0f} s: stopped" if code is None else f"exit code {code}"
    raise WarmUpFailed(f"{why}: " + _last_lines(said, remote))


def _last_lines(said: list[str], remote: str) -> str:
    """The child's last lines that say something (no JVM stack frames), with the server's token masked."""
    token = remote.partition(";token=")[2].split(";", 1)[0]
    lines = [line for line in said if line.strip() and not line.lstrip().startswith("at ")]
    text = "\n".join(lines[-SAID_LINES:]) or "(it said nothing)"
    return text.replace(token, "…") if token else text


def main(argv: list[str] | None = None) -> int:
    """The child: the small run on the server its environment names, in a temporary folder."""
    from flows.errors import VamosJuntosError
    from flows.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m flows.spark.server_warm_up")
    parser.add_argument("--rows", type=int, default=WARM_UP_ROWS)
    parser.add_argument("--rounds", type=int, default=WARM_UP_ROUNDS)
    parser.add_argument("--work", type=Path, required=True, help="its folder (the server removes it)")
    args = parser.parse_args(argv)
    # Stopped by the server (`warm_up`), it leaves as Ctrl-C would: its MongoDB stopped, its session on the
    # server released; a second signal meanwhile is ignored, so that nothing cuts that short.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _leave)
    remote = Settings(_env_file=None).spark_remote  # type: ignore[call-arg]
    if remote is None:
        print("no VAMOSJUNTOS_SPARK_REMOTE: no server to warm up", file=sys.stderr)
        return 2
    try:
        counts = run_small(args.work, args.rows, args.rounds, spark_remote=remote)
    except VamosJuntosError as exc:  # said in one line; anything else with its traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        # Released at exit anyway, but now: a step it left running on the server (stopped, or failed while
        # another query ran) would go on writing into the folder the server is about to remove.
        from flows.spark.session import release_remote_sessions

        release_remote_sessions()
    print(RECORDS + json.dumps({f"{c['zone']}/{c['table']}": c["records"] for c in counts}), flush=True)
    return 0


def _remove(work: Path) -> None:
    """Remove the child's folder, again until it stays gone: the server's tasks of a step the child's
    released session interrupted can still write there a moment, and Hadoop's writer makes a file's
    folders again (ci76: a warm-up stopped over its time left its folder, "Directory not empty:
    'processing'"). A write later than SETTLE_S after the last removal is not waited for; a folder that
    cannot be removed within REMOVE_WITHIN_S is said and left."""
    deadline = time.monotonic() + REMOVE_WITHIN_S
    while True:
        shutil.rmtree(work, ignore_errors=True)
        time.sleep(SETTLE_S)
        if not work.exists():
            return
        if time.monotonic() > deadline:
            print(f"could not remove {work}: something still writes there", file=sys.stderr)
            return


def _leave(signum: int, frame: object) -> None:
    for each in (signal.SIGINT, signal.SIGTERM):
        signal.signal(each, signal.SIG_IGN)
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
