"""Whose CPU a run took, from real processes: those the project starts are told apart by program and
module; a contestant's tree counts from its start (the sampler's first read comes later), each process
apart; a running server's counts from the ledger's first read on, never what it spent before."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

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


@pytest.mark.timeout(60)
def test_a_child_read_before_its_exec_takes_its_kind_once_it_runs_its_program() -> None:
    root = psutil.Process()
    ledger = CpuLedger(root.pid, fresh=True)
    release_r, release_w = os.pipe()
    stdin_r, stdin_w = os.pipe()  # the worker's stdin, held open so it stays until we close it
    pid = os.fork()
    if pid == 0:  # the child: waits for the word, then becomes an encoder worker
        try:
            os.read(release_r, 1)
            os.dup2(stdin_r, 0)
            os.execv(sys.executable, [sys.executable, "-m", encoder_pool.__name__])
        finally:
            os._exit(1)
    os.close(release_r)
    os.close(stdin_r)
    try:
        child = psutil.Process(pid)
        ledger.read([root, child])  # between its fork and its exec: this process's command line
        assert ledger.by_kind().keys() == {"python", "other"}
        os.write(release_w, b"x")
        deadline = time.monotonic() + 30
        while encoder_pool.__name__ not in child.cmdline() and time.monotonic() < deadline:
            time.sleep(0.02)
        ledger.read([root, child])

        assert ledger.by_kind().keys() == {"python", "encoders"}  # counted once, as what it became
    finally:
        os.close(release_w)
        os.close(stdin_w)  # the worker leaves when its stdin closes
        os.waitpid(pid, 0)


@pytest.mark.timeout(60)
def test_a_trees_cpu_is_counted_whole_and_by_the_process_that_spent_it() -> None:
    # The child burns, says so and waits (its stdin is the root's, ours): it is read after its work.
    child = BURN + "import sys\nburn(0.4)\nprint('burnt', flush=True)\nsys.stdin.readline()\n"
    root = BURN + (
        "import subprocess, sys\n"
        "burn(0.6)\nprint('ready', flush=True)\nsys.stdin.readline()\n"  # spent before the first read
        f"subprocess.run([sys.executable, '-c', {child!r}])\n"
        "print('done', flush=True)\nsys.stdin.readline()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", root], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    sampler = Sampler(proc.pid, interval=0.05)
    sampler.start()

    def after_two_more_reads(line: str) -> None:
        read = len(sampler.samples)
        while len(sampler.samples) < read + 2:
            time.sleep(0.02)
        assert proc.stdin is not None
        proc.stdin.write(line)
        proc.stdin.flush()

    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "burnt"
    after_two_more_reads("on\n")  # the child, done burning, read twice: it may leave
    assert proc.stdout.readline().strip() == "done"
    after_two_more_reads("end\n")
    proc.wait(timeout=30)
    sampler.stop()
    cpu = sampler.cpu_seconds()

    assert 0.55 <= cpu["python"] <= 1.5  # the root's 0.6 s, spent before the sampler started, counted
    assert 0.35 <= cpu.get("other", 0.0) <= 1.2  # the child's 0.4 s, counted apart
    assert "server" not in cpu  # no server was sampled
