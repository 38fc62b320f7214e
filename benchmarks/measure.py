"""Running one contestant in a fresh subprocess while sampling the memory and CPU of its whole process tree.

The parent (this module) starts the contestant (`python -m benchmarks.worker SPEC RESULT`, or a command
such as `vamosjuntos run`) and samples every ~0.3-0.5 s (a read takes time) the PSS of that process
plus all its descendants (the Spark JVM is a child of the Python driver), and, apart, the PSS of the
MongoDB-protocol server, which belongs to no contestant; at each sample also the CPU of every process of the
tree, and every few samples the server's (benchmarks/cpu.py). The worker reports when each of its stages
started and ended (wall-clock `time.time()`, the same clock as the samples), so the peak of every stage
can be read off the same samples afterwards.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from benchmarks.sampler import Sample, Sampler, peak_between, thin

MB = 1024 * 1024


class BenchmarkError(RuntimeError):
    """A contestant failed: the message carries the tail of its log, the attributes what it reached."""

    def __init__(self, message: str, wall_s: float = 0.0, peak_mem: int = 0) -> None:
        super().__init__(message)
        self.wall_s = wall_s
        self.peak_mem = peak_mem


@dataclass
class Stage:
    name: str
    seconds: float
    peak_mem: int  # bytes, the contestant's tree during this stage
    start: float = 0.0  # seconds since the subprocess started
    peak_mem_python: int = 0  # the root (Python) process alone; the rest is its children (the JVM)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    """One contestant, one repetition."""

    task: str
    label: str
    size: int
    repetition: int
    wall_s: float  # subprocess start to exit: interpreter, imports, work, JVM shutdown
    peak_mem: int  # bytes, max over the run of the summed PSS of the contestant's process tree
    server_peak_mem: int
    peak_mem_python: int  # the root (Python) process alone
    stages: list[Stage]
    extra: dict[str, Any]
    trace: list[tuple[float, int, int, int]]  # (s since start, tree, root, server PSS), thinned
    sampling: dict[str, float] = field(default_factory=dict)  # samples taken, median read and interval (s)
    # CPU seconds by process kind (benchmarks/cpu.py: python, jvm, prefect_api, encoders, other) and of
    # the servers it used, sampled apart over its run (server: MongoDB's; spark_server, prefect_server)
    cpu: dict[str, float] = field(default_factory=dict)

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def stage_seconds(self, *names: str) -> float:
        return sum(s.seconds for s in self.stages if s.name in names)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        data = dict(data)
        data["stages"] = [Stage(**s) for s in data["stages"]]
        data["trace"] = [tuple(t) for t in data["trace"]]
        data.pop("pss_probes", None)  # results saved when PSS was only probed
        return cls(**data)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a contestant: no project settings or Prefect server leaking in from ours."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VAMOSJUNTOS_", "PREFECT_API_", "PYSPARK_SUBMIT_", "SPARK_CONF"))
    }
    env.update(
        {
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYTHONHASHSEED": "0",
            # Prefect gives its temporary API server 20 s to answer, which a loaded machine can exceed; a
            # longer wait changes no timing, it only keeps such a run from failing.
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        }
    )
    env.update(extra or {})
    return env


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """The contestant and its children (the JVM, Prefect's temporary server) go together."""
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
    proc.kill()
    proc.wait()


@dataclass
class Measured:
    """What the parent saw of one command: its exit code, start and end (wall clock) and PSS samples."""

    rc: int
    t0: float
    t1: float
    samples: list[Sample]
    read_s: list[float]
    cpu: dict[str, float] = field(default_factory=dict)

    def stage(self, name: str, start: float, end: float, info: dict[str, Any] | None = None) -> Stage:
        return Stage(
            name,
            end - start,
            peak_between(self.samples, start, end),
            start=start - self.t0,
            peak_mem_python=peak_between(self.samples, start, end, column=2),
            info=info or {},
        )

    def peak(self, column: int = 1) -> int:
        return max((s[column] for s in self.samples), default=0)

    def sampling(self) -> dict[str, float]:
        starts = [s[0] for s in self.samples]
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        return {
            "n": len(self.samples),
            "read_s": statistics.median(self.read_s) if self.read_s else float("nan"),
            "interval_s": statistics.median(gaps) if gaps else float("nan"),
        }

    def run(self, task: str, label: str, size: int, repetition: int, stages: list[Stage], extra: dict) -> Run:
        return Run(
            task=task,
            label=label,
            size=size,
            repetition=repetition,
            wall_s=self.t1 - self.t0,
            peak_mem=self.peak(1),
            server_peak_mem=self.peak(3),
            peak_mem_python=self.peak(2),
            stages=stages,
            extra=extra,
            trace=thin(self.samples, self.t0),
            sampling=self.sampling(),
            cpu=self.cpu,
        )


def measure(
    cmd: list[str],
    run_dir: Path,
    log_path: Path,
    env: dict[str, str],
    server_pid: int | None,
    timeout_s: float,
) -> Measured:
    """Run `cmd` to completion (or its timeout) in `run_dir`, sampling its process tree's PSS and CPU."""
    with open(log_path, "wb") as out:
        t0 = time.time()
        proc = subprocess.Popen(cmd, cwd=run_dir, env=env, stdout=out, stderr=subprocess.STDOUT)
        sampler = Sampler(proc.pid, server_pid)
        sampler.start()
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            rc = -9
        except BaseException:  # interrupted: stop the contestant's whole tree before going
            _kill_tree(proc)
            sampler.stop()
            raise
        t1 = time.time()
        samples = sampler.stop()
    return Measured(rc, t0, t1, samples, sampler.read_s, sampler.cpu_seconds())


def _failed(what: str, m: Measured, log_path: Path) -> BenchmarkError:
    tail = log_path.read_text(errors="replace")[-3000:]
    return BenchmarkError(
        f"{what} exited with {m.rc} after {m.t1 - m.t0:.0f} s; last log lines:\n{tail}", m.t1 - m.t0, m.peak()
    )


def run_worker(spec: dict[str, Any], run_dir: Path, *, label: str, size: int, **how: Any) -> Run:
    """Run one contestant to completion in a fresh interpreter and measure it from the outside.

    `how`: run_command's repetition, server_pid, env, timeout_s."""
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_path, result_path = run_dir / "spec.json", run_dir / "result.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    result_path.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.worker", str(spec_path), str(result_path)]
    repo_root = str(Path(__file__).resolve().parent.parent)
    env = dict(how.pop("env", None) or {})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo_root, os.environ.get("PYTHONPATH")]))
    result: dict[str, Any] = {}

    def marks(t0: float, t1: float) -> list[dict[str, Any]]:
        if not result_path.exists():
            raise BenchmarkError(f"{label} (size {size}) exited without its result", t1 - t0)
        result.update(json.loads(result_path.read_text()))
        return result["stages"]

    run = run_command(
        cmd, run_dir, task=spec["task"], label=label, size=size, env=env, marks=marks, log="worker.log", **how
    )
    run.extra = result.get("extra", {})
    return run


def run_command(
    cmd: list[str],
    run_dir: Path,
    *,
    task: str,
    label: str,
    size: int,
    repetition: int = 0,
    server_pid: int | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 3600,
    marks: Callable[[float, float], list[dict[str, Any]]] | None = None,
    log: str = "command.log",
) -> Run:
    """Run a command as its user would (e.g. `vamosjuntos run`) and measure it from the outside.

    `marks(t0, t1)`, called after it exited, names stages inside it (wall-clock bounds and an optional
    `info`); the time before the first and after the last are `startup` and `shutdown`.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / log
    m = measure(cmd, run_dir, log_path, clean_env(env), server_pid, timeout_s)
    if m.rc != 0:
        raise _failed(f"{label} (size {size}): {' '.join([Path(cmd[0]).name, *cmd[1:3]])}", m, log_path)
    found = marks(m.t0, m.t1) if marks else []
    if not found:
        stages = [m.stage("whole command", m.t0, m.t1)]
    else:
        stages = [m.stage("startup", m.t0, found[0]["start"])]  # interpreter start and imports
        stages += [m.stage(x["name"], x["start"], x["end"], x.get("info")) for x in found]
        stages.append(m.stage("shutdown", found[-1]["end"], m.t1))  # JVM and interpreter shutdown
    return m.run(task, label, size, repetition, stages, {"log": str(log_path)})


# --- statistics ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Summary:
    median: float
    low: float
    high: float
    n: int

    @property
    def spread(self) -> float:
        """(max - min) / median: how much the repetitions disagree."""
        return (self.high - self.low) / self.median if self.median else 0.0


def summarize(values: list[float]) -> Summary:
    if not values:
        return Summary(float("nan"), float("nan"), float("nan"), 0)
    return Summary(statistics.median(values), min(values), max(values), len(values))
