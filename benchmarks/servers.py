"""SecantusDB data folders seeded once per size and reused: seeding 2M documents takes minutes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

from flows.sources.local_mongo import SecantusProcess, free_port
from flows.sources.local_mongo_seed import seed

DATABASE = "ibge"
COLLECTION = "pnadc20203"
SEED = 20203
MARKER = "_benchmark_seeded.json"


class Spark(NamedTuple):
    remote: str  # VAMOSJUNTOS_SPARK_REMOTE, its token included: never logged
    pid: int


def _generator_fingerprint() -> str:
    """A change to the generator invalidates every seeded folder."""
    import flows.generator

    return hashlib.sha256(Path(flows.generator.__file__).read_bytes()).hexdigest()[:16]


def seeded_store(
    work: Path, rows: int, seed_value: int = SEED, log: Callable[[str], None] = print
) -> tuple[Path, dict]:
    """The data folder of a server holding `rows` generated documents, seeding it if needed."""
    path = work / "mongo" / f"pnadc-{rows}-seed{seed_value}"
    marker = path / MARKER
    fingerprint = _generator_fingerprint()
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("rows") == rows and info.get("generator") == fingerprint:
            return path, info
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    log(f"  seeding {rows:,} documents into {path} (once; reused by later runs)")
    t0 = time.perf_counter()
    with SecantusProcess(path, log_path=path.parent / f"{path.name}.log") as server:
        inserted = seed(server.uri, DATABASE, COLLECTION, rows, seed_value)
        client: MongoClient = MongoClient(server.uri)
        count = client[DATABASE][COLLECTION].count_documents({})
        client.close()
    if inserted != rows or count != rows:
        raise RuntimeError(f"seeding {path} inserted {inserted} and counts {count}, expected {rows}")
    info = {"rows": rows, "seed": seed_value, "generator": fingerprint, "seconds": time.perf_counter() - t0}
    marker.write_text(json.dumps(info))
    log(f"  seeded in {info['seconds']:.0f} s")
    return path, info


def warm_up(uri: str) -> float:
    """Read the whole collection once so no contestant pays for a cold server cache."""
    t0 = time.perf_counter()
    client: MongoClient = MongoClient(uri, document_class=RawBSONDocument)
    try:
        for _ in client[DATABASE][COLLECTION].find({}).sort("_id", 1).hint([("_id", 1)]).batch_size(10_000):
            pass
    finally:
        client.close()
    return time.perf_counter() - t0


@contextmanager
def serving(path: Path) -> Iterator[SecantusProcess]:
    """A server on a seeded folder, warmed up; `.uri` and `.proc.pid` for the contestants."""
    with SecantusProcess(path, log_path=path.parent / f"{path.name}.log") as server:
        warm_up(server.uri)
        yield server


def wait_until_healthy(proc: subprocess.Popen[Any], url: str, log: Path, within_s: float) -> None:
    """Until the `prefect server start` in `proc` answers `url`/health; its log's tail if it dies or is late.

    `prefect_server` waits with it."""
    import httpx

    deadline = time.monotonic() + within_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"prefect server not healthy in {within_s:.0f} s: {log.read_text()[-2000:]}")
        time.sleep(0.5)


@contextmanager
def background(
    cmd: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A process in its own session, output to `log`; SIGTERM to its group on the way out, then SIGKILL
    (a `prefect server start` runs its web server as a child: the group stops both)."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


class Prefect(NamedTuple):
    api_url: str
    pid: int  # `prefect server start`'s process, whose tree is the server (its CPU is sampled apart)


@contextmanager
def prefect_server(home: Path, timeout_s: float = 180, env: dict[str, str] | None = None) -> Iterator[str]:
    """A running `prefect server start` on a free port, as Prefect users work; yields its API URL.
    (`prefect_server_with_pid` yields its pid too.)"""
    with prefect_server_with_pid(home, timeout_s, env) as server:
        yield server.api_url


@contextmanager
def prefect_server_with_pid(
    home: Path, timeout_s: float = 180, env: dict[str, str] | None = None
) -> Iterator[Prefect]:
    """A running `prefect server start` on a free port, as Prefect users work: its API URL and pid.

    Its own process group, like the MongoDB server: it belongs to no contestant and is stopped on exit.
    `env` is its environment (default: a contestant's, `clean_env`); its PREFECT_HOME is `home` and its UI
    calls this server's API. The benchmarks, the tests (tests/k8s/conftest.py) and docs/screenshots.py
    all start their server here.
    """
    from benchmarks.measure import clean_env
    from flows.server_launch import EVENT_BATCH, EVENT_BATCH_VARIABLE

    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}/api"
    # README's command, event batch included ("Skip Prefect's start-up"); a value in `env` wins.
    env = {
        EVENT_BATCH_VARIABLE: str(EVENT_BATCH),
        **(env if env is not None else clean_env()),
        "PREFECT_HOME": str(home),
        "PREFECT_UI_API_URL": url,
    }
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with background(cmd, env, home / "server.log") as proc:
        wait_until_healthy(proc, url, home / "server.log", timeout_s)
        yield Prefect(url, proc.pid)


@contextmanager
def spark_server(work: Path, timeout_s: float = 960, env: dict[str, str] | None = None) -> Iterator[Spark]:
    """A running `vamosjuntos spark-server` on a free port, as its README section has users start it (it
    says it is ready after its warm-up: `timeout_s` covers both); yields its export line's URL and the pid
    whose process tree is its JVM (sampled apart, like MongoDB's).

    Its own process group: it belongs to no contestant and is stopped (SIGTERM, its clean stop) on exit.
    """
    from benchmarks import cli
    from benchmarks.measure import clean_env
    from flows.spark.connect_server import WARM_UP_FAILED, printed_url

    work.mkdir(parents=True, exist_ok=True)
    log = work / "spark-server.log"
    log.write_bytes(b"")
    port = free_port()
    cmd = [str(Path(cli.executable())), "spark-server", "--port", str(port)]
    # In its own folder, as the contestants run in theirs: no `.env` of the harness's directory reaches it.
    with background(cmd, env if env is not None else clean_env(), log, cwd=work) as proc:
        deadline = time.monotonic() + timeout_s
        while not (url := printed_url(log.read_text(errors="replace"))):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"vamosjuntos spark-server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        if WARM_UP_FAILED in log.read_text(errors="replace"):  # it would serve, cold: not what users get
            raise RuntimeError(f"vamosjuntos spark-server's warm-up failed: {log.read_text()[-2000:]}")
        yield Spark(url, proc.pid)
