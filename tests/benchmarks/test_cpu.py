"""Whose CPU a run took, from real processes: those the project starts are told apart by program and
module; a contestant's tree counts from its start (the sampler's first read comes later), each process
apart; a running server's counts from the ledger's first read on, never what it spent before."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from benchmarks.cpu import CpuLedger, kind_of
from benchmarks.sampler import Sampler
from flows import server_launch
from flows.sources.mongo import encoder_pool

# Spends `s` seconds of its own CPU time.
BURN = """import time
def burn(s):
    end = time.process_time() + s
    while time.process_time() < end:
        pass
"""


def test_the_processes_a_run_starts_are_told_apart_by_program_and_module_not_by_path() -> None:
    # The temporary API server as flows/server_launch.py starts it: a change there must change this too.
    assert kind_of(server_launch._uvicorn_command(3)) == "prefect_api"
    assert kind_of([sys.executable, "-m", encoder_pool.__name__]) == "encoders"
    # PySpark's launcher (bash running spark-class), then the JVM it becomes.
    assert kind_of(["bash", "/opt/pyspark/bin/spark-class", "org.apache.spark.deploy.SparkSubmit"]) == "jvm"
    assert kind_of(["/usr/lib/jvm/java-17/bin/java", "-cp", "/opt/jars/*", "org.apache.spark.Main"]) == "jvm"
    # A checkout (or any path) may be named like a kind: what runs is what counts.
    assert kind_of(["/srv/java/prefect/bin/python", "-m", "flows.orphans", "1:2"]) == "other"
    assert kind_of(["/srv/uvicorn/python", "-c", "pass"]) == "other"
    assert kind_of([]) == "other"  # an ended process's empty command line


def test_a_running_servers_cpu_counts_from_the_first_read_on() -> None:
    script = (
        BURN + "import sys\nburn(0.8)\nprint('ready', flush=True)\nsys.stdin.readline()\n"
        "burn(0.3)\nprint('done', flush=True)\nsys.stdin.readline()\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        assert server.stdout.readline().strip() == "ready"  # 0.8 s spent before the run
        ledger = CpuLedger(server.pid, fresh=False)
        ledger.read([])  # a read that found nothing (the tree not listed yet) sets no baseline
        ledger.read([psutil.Process(server.pid)])
        server.stdin.write("go\n")
        server.stdin.flush()
        assert server.stdout.readline().strip() == "done"
        ledger.read([psutil.Process(server.pid)])

        assert 0.25 <= sum(ledger.by_kind().values()) <= 0.7  # the 0.3 s of the run, not the 0.8 s before
    finally:
        server.kill()
        server.wait()


def test_a_child_read_before_its_exec_takes_its_kind_once_it_runs_its_program() -> None:
    root = psutil.Process()
    ledger = CpuLedger(root.pid, fresh=True)
    worker = subprocess.Popen([sys.executable, "-m", encoder_pool.__name__], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ledger.read([root, psutil.Process(worker.pid)])  # its first reads may see our command line
            if "encoders" in ledger.by_kind():
                break
            time.sleep(0.02)
        kinds = ledger.by_kind()
        assert set(kinds) == {"python", "encoders"}  # the worker counted once, under what it became
        assert kinds["python"] > 0  # this process's CPU since it started (a fresh ledger counts it whole)
    finally:
        worker.kill()
        worker.wait()


def test_a_trees_cpu_is_counted_whole_and_by_the_process_that_spent_it() -> None:
    child = BURN + "burn(0.4)\ntime.sleep(0.5)\n"  # asleep long enough to be read after its work
    root = BURN + (
        "import subprocess, sys\n"
        "burn(0.6)\nprint('ready', flush=True)\nsys.stdin.readline()\n"  # spent before the first read
        f"child = subprocess.Popen([sys.executable, '-c', {child!r}])\nchild.wait()\n"
        "print('done', flush=True)\nsys.stdin.readline()\n"  # waits while the sampler reads it again
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", root], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    sampler = Sampler(proc.pid, interval=0.05)
    sampler.start()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "done"
    read = len(sampler.samples)
    deadline = time.monotonic() + 30
    while len(sampler.samples) < read + 2 and time.monotonic() < deadline:  # the root read again, all done
        time.sleep(0.05)
    proc.stdin.write("end\n")
    proc.stdin.flush()
    proc.wait(timeout=60)
    sampler.stop()
    cpu = sampler.cpu_seconds()

    assert 0.55 <= cpu["python"] <= 1.5  # the root's 0.6 s, spent before the sampler started, counted
    assert 0.35 <= cpu.get("other", 0.0) <= 1.2  # the child's 0.4 s, counted apart
    assert "server" not in cpu  # no server was sampled
