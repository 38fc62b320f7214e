"""Running one contestant in a fresh subprocess while sampling the memory of its whole process tree.

The parent (this module) starts `python -m benchmarks.worker SPEC RESULT`, samples every ~50 ms the RSS
of that process plus all its descendants (the Spark JVM is a child of the Python driver), and, apart,
the RSS of the MongoDB-protocol server, which belongs to no contestant. The worker reports when each of
its stages started and ended (wall-clock `time.time()`, the same clock as the samples), so the peak of
every stage can be read off the same samples afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

INTERVAL_S = 0.05
PSS_PROBE_EVERY = 200  # samples between two PSS reads of the tree (~10 s): each can take seconds
MB = 1024 * 1024


class BenchmarkError(RuntimeError):
    """A contestant failed: the message carries the tail of its log."""


def tree_rss(proc: psutil.Process) -> tuple[int, int]:
    """(RSS of a process and all its live descendants, RSS of the process alone), in bytes.

    A child still running its parent's command line is a clone that has not exec'd yet (the JVM spawns
    `chmod` and friends through posix_spawn): it shares its parent's memory, so it is not counted again.
    Otherwise pages shared between processes count once per process, as RSS does.
    """
    try:
        children = proc.children(recursive=True)
        own = proc.memory_info().rss
        command = {proc.pid: proc.cmdline()}
    except psutil.Error:
        return 0, 0
    parents: dict[int, int] = {}
    for p in children:
        with contextlib.suppress(psutil.Error):  # exited between the listing and the read
            command[p.pid], parents[p.pid] = p.cmdline(), p.ppid()
    total = own
    for p in children:
        cmd = command.get(p.pid)
        if not cmd or command.get(parents[p.pid]) == cmd:
            continue  # gone already, or a clone sharing its parent's memory
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total, own


def tree_pss(proc: psutil.Process) -> tuple[int, int]:
    """(PSS of a process and all its live descendants, PSS of the process alone), in bytes.

    PSS (proportional set size) splits each shared page between the processes sharing it, so the sum over
    a tree counts every page once: a JVM forking a helper (posix_spawn of `chmod`) no longer shows its whole
    RSS twice for an instant, and pages shared with the parent are not counted per process as RSS counts
    them. Read from /proc/PID/smaps_rollup, which walks the process's page tables: for a Spark JVM that
    costs up to seconds on a loaded machine, too slow to sample every 50 ms, so the sampler only probes it.
    """
    try:
        children = proc.children(recursive=True)
        own = proc.memory_full_info().pss
    except psutil.Error:
        return 0, 0
    total = own
    for p in children:
        with contextlib.suppress(psutil.Error):  # exited between the listing and the read
            total += p.memory_full_info().pss
    return total, own


class Sampler(threading.Thread):
    """Samples (time, RSS of the contestant's tree, of its root process alone, of the server); probes PSS."""

    def __init__(self, pid: int, server_pid: int | None = None, interval: float = INTERVAL_S) -> None:
        super().__init__(daemon=True, name=f"rss-sampler-{pid}")
        self.proc = psutil.Process(pid)
        self.server = psutil.Process(server_pid) if server_pid else None
        self.interval = interval
        self.samples: list[tuple[float, int, int, int]] = []
        self.probes: list[tuple[float, int, int]] = []  # (seconds one PSS read took, tree PSS, tree RSS)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            now = time.time()
            server = tree_rss(self.server)[0] if self.server is not None else 0
            tree, own = tree_rss(self.proc)
            self.samples.append((now, tree, own, server))
            if len(self.samples) % PSS_PROBE_EVERY == 0:
                t0 = time.perf_counter()
                pss = tree_pss(self.proc)[0]
                self.probes.append((time.perf_counter() - t0, pss, tree))
            self._stop_event.wait(self.interval)

    def stop(self) -> list[tuple[float, int, int, int]]:
        self._stop_event.set()
        self.join(timeout=5)
        return self.samples


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
    peak_mem: int  # bytes, max over the run of the summed RSS of the contestant's process tree
    server_peak_mem: int
    peak_mem_python: int  # the root (Python) process alone
    stages: list[Stage]
    extra: dict[str, Any]
    trace: list[tuple[float, int, int, int]]  # (s since start, tree, root, server RSS), thinned
    pss_probes: list[tuple[float, int, int]] = field(default_factory=list)  # Sampler.probes

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
        data["pss_probes"] = [tuple(t) for t in data.get("pss_probes", [])]
        return cls(**data)


Sample = tuple[float, int, int, int]


def _peak_between(samples: list[Sample], start: float, end: float, column: int = 1) -> int:
    inside = [s[column] for s in samples if start <= s[0] <= end]
    if not inside:  # a stage shorter than the interval: the samples around it
        before = [s[column] for s in samples if s[0] <= start][-1:]
        after = [s[column] for s in samples if s[0] >= end][:1]
        inside = before + after
    return max(inside, default=0)


def _thin(samples: list[Sample], t0: float, keep: int = 600) -> list[Sample]:
    step = max(1, len(samples) // keep)
    return [(round(t - t0, 3), tree, own, srv) for t, tree, own, srv in samples[::step]]


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
        }
    )
    env.update(extra or {})
    return env


def run_worker(
    spec: dict[str, Any],
    run_dir: Path,
    *,
    label: str,
    size: int,
    repetition: int = 0,
    server_pid: int | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 3600,
) -> Run:
    """Run one contestant to completion in a fresh interpreter and measure it from the outside."""
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_path, result_path, log_path = run_dir / "spec.json", run_dir / "result.json", run_dir / "worker.log"
    spec_path.write_text(json.dumps(spec, indent=2))
    result_path.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.worker", str(spec_path), str(result_path)]
    repo_root = Path(__file__).resolve().parent.parent
    env = clean_env(env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo_root), env.get("PYTHONPATH")]))
    with open(log_path, "wb") as log:
        t0 = time.time()
        proc = subprocess.Popen(cmd, cwd=run_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
        sampler = Sampler(proc.pid, server_pid)
        sampler.start()
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = -9
        except BaseException:  # interrupted: the contestant and its children (the JVM) go too
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(proc.pid).children(recursive=True):
                    child.kill()
            proc.kill()
            proc.wait()
            sampler.stop()
            raise
        t1 = time.time()
        samples = sampler.stop()
        probes = sampler.probes
    if rc != 0 or not result_path.exists():
        tail = log_path.read_text(errors="replace")[-3000:]
        raise BenchmarkError(f"{label} (size {size}) exited with {rc}; last log lines:\n{tail}")
    result = json.loads(result_path.read_text())
    marks = result["stages"]

    def stage(name: str, start: float, end: float, info: dict[str, Any] | None = None) -> Stage:
        return Stage(
            name,
            end - start,
            _peak_between(samples, start, end),
            start=start - t0,
            peak_mem_python=_peak_between(samples, start, end, column=2),
            info=info or {},
        )

    stages: list[Stage] = []
    if marks:  # interpreter start and imports, before the first mark
        stages.append(stage("startup", t0, marks[0]["start"]))
    stages += [stage(m["name"], m["start"], m["end"], m.get("info")) for m in marks]
    if marks:  # JVM and interpreter shutdown
        stages.append(stage("shutdown", marks[-1]["end"], t1))
    return Run(
        task=spec["task"],
        label=label,
        size=size,
        repetition=repetition,
        wall_s=t1 - t0,
        peak_mem=max((s[1] for s in samples), default=0),
        server_peak_mem=max((s[3] for s in samples), default=0),
        peak_mem_python=max((s[2] for s in samples), default=0),
        stages=stages,
        extra=result.get("extra", {}),
        trace=_thin(samples, t0),
        pss_probes=probes,
    )


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
