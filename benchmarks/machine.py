"""The machine a benchmark ran on: CPU, memory, OS, versions, commit and load, recorded with its results."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from flows.sources.mongo.encoder_pool import usable_cpu_time


def _java_version() -> str:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
        return (out.stderr or out.stdout).splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "not found"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def _git(*args: str) -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict[str, Any]:
    packages = ["vamosjuntos-lakehouse", "pyspark", "pymongo", "SecantusDB", "duckdb", "pyarrow", "sqlglot"]
    packages += ["prefect", "psutil", "matplotlib"]
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cpus_logical": psutil.cpu_count(logical=True),
        "cpus_physical": psutil.cpu_count(logical=False),
        "cpu_affinity": len(psutil.Process().cpu_affinity() or [])
        if hasattr(psutil.Process, "cpu_affinity")
        else None,
        # What the contestants may use: the affinity within the cgroup's quota (a container, a pod's limit).
        "cpus_usable": usable_cpu_time(),
        "cpu_model": _cpu_model(),
        "ram_bytes": psutil.virtual_memory().total,
        "os": _os_name(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "java": _java_version(),
        "versions": versions,
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty_flows": bool(_git("status", "--porcelain", "--", "flows")),
        "load_average_start": list(os.getloadavg()),
        "memory_metric": "pss",  # what benchmarks.measure samples
    }


SPEED_LOOPS = 1_000_000
SPEED_ROUNDS = 3


def speed_probe() -> float:
    """Wall seconds a fixed pure-Python loop takes now, in the harness's process between two contestants.

    Timed before every contestant, so the report shows whether the machine kept its speed through the run:
    a host that throttles its guest shows no steal time in it (`vmstat`'s `st`), only slower code. On
    2026-12-01 a run's contestants slowed 4.7× from one hour to the next, with no steal shown. During the
    end-to-end size the harness's running Prefect and Spark servers may take some CPU between runs too.

    The fastest of a few rounds: one round of a tenth of a second also times whatever else woke up in that
    instant, while a slowdown that lasts through a contestant lasts through all of them."""
    best = float("inf")
    for _ in range(SPEED_ROUNDS):
        t0 = time.perf_counter()
        total = 0
        for i in range(SPEED_LOOPS):
            total += i
        best = min(best, time.perf_counter() - t0)
    return best
