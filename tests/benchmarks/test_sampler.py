"""The sampler's CPU by process, read from real processes: the tree's root, the processes it starts (by the
module they run), and a running server whose CPU before the sampler started is not the run's."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from benchmarks.sampler import CpuLedger, Sampler, cpu_kind, tree

# Spends `s` seconds of its own CPU time; the scripts then sleep, so the sampler's last read sees all of it.
BURN = """import time
def burn(s):
    end = time.process_time() + s
    while time.process_time() < end:
        pass
"""


def test_a_trees_cpu_is_counted_whole_and_by_the_process_that_spent_it() -> None:
    child = BURN + "burn(0.4)\ntime.sleep(0.8)\n"
    root = BURN + (
        "import subprocess, sys\n"
        f"child = subprocess.Popen([sys.executable, '-c', {child!r}])\n"
        "burn(0.6)\nchild.wait()\ntime.sleep(0.8)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", root])
    sampler = Sampler(proc.pid, interval=0.1)
    sampler.start()
    proc.wait(timeout=60)
    sampler.stop()
    cpu = sampler.cpu_seconds()

    assert 0.55 <= cpu["python"] <= 1.5  # the root's own 0.6 s, its interpreter's start included
    assert 0.35 <= cpu["other"] <= 1.2  # the child's 0.4 s, counted apart from the root's
    assert "server" not in cpu  # no server was sampled


def test_a_running_servers_cpu_counts_from_the_first_read_on() -> None:
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            BURN + "import sys\nburn(0.8)\nprint('ready', flush=True)\n"
            "sys.stdin.readline()\nburn(0.3)\nprint('done', flush=True)\nsys.stdin.readline()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        assert server.stdout.readline().strip() == "ready"  # 0.8 s spent before the run
        ledger = CpuLedger(server.pid, fresh=False)
        ledger.read(tree(psutil.Process(server.pid)))
        server.stdin.write("go\n")
        server.stdin.flush()
        assert server.stdout.readline().strip() == "done"
        ledger.read(tree(psutil.Process(server.pid)))
        spent = sum(ledger.by_kind().values())

        assert 0.25 <= spent <= 0.7  # the 0.3 s it spent during the run, not the 0.8 s before it
    finally:
        server.kill()
        server.wait()


def test_processes_are_told_apart_by_program_and_module_not_by_path() -> None:
    root = psutil.Process()
    assert cpu_kind(root, root.pid) == "python"
    # The extraction's encoder worker, as the extraction starts it (it waits for batches on its stdin).
    worker = subprocess.Popen(
        [sys.executable, "-m", "flows.sources.mongo.encoder_pool"], stdin=subprocess.PIPE
    )
    # A program under a folder named like a kind is still what it runs (a checkout may be named anything).
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "/tmp/java/prefect"])
    try:
        deadline = time.monotonic() + 30
        kinds: dict[str, str] = {}
        while time.monotonic() < deadline:
            kinds = {
                "worker": cpu_kind(psutil.Process(worker.pid), root.pid),
                "other": cpu_kind(psutil.Process(other.pid), root.pid),
            }
            if kinds["worker"] == "encoders":  # read after its exec (before it, its parent's line)
                break
            time.sleep(0.05)
        assert kinds == {"worker": "encoders", "other": "other"}
    finally:
        for p in (worker, other):
            p.kill()
            p.wait()
