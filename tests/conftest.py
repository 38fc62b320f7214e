"""Shared fixtures: real servers on real sockets (SecantusDB, an IBGE stand-in), real Spark, real Prefect."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from flows.settings import Settings
from flows.sources.local_mongo import SecantusProcess, free_port
from flows.sources.local_mongo_seed import seed
from tests.support import cloud_lake
from tests.support.ibge_server import IbgeServer
from tests.support.local_run import local_run  # noqa: F401 (a session fixture for every test folder)
from tests.support.sources import PASSWORD, USER


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test server for the whole session (it takes ~10 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from flows.spark.session import spark_session

    # This process's own JVM, even if the shell exported a Spark Connect server (VAMOSJUNTOS_SPARK_REMOTE).
    session = spark_session(
        Settings(spark_master="local[2]", spark_shuffle_partitions=4, spark_remote=None), "tests"
    )
    yield session
    session.stop()


@pytest.fixture
def ibge_server() -> Iterator[IbgeServer]:
    with IbgeServer() as server:
        yield server


@pytest.fixture
def settings_for(tmp_path: Path):
    """Settings on a fresh lake under tmp_path, with any overrides."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "lake_root": str(tmp_path / "lake"),
            "spark_master": "local[2]",
            "spark_shuffle_partitions": 4,
            "ibge_source": "api",
            "spark_remote": None,
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def moto_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """moto's S3 server on a free loopback port, with dummy credentials; yields (endpoint, bucket)."""
    from moto.server import ThreadedMotoServer

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        import boto3
        import httpx

        # moto keeps its state per process, not per server: start from an empty S3 every time.
        httpx.post(f"{endpoint}/moto-api/reset").raise_for_status()
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="vj-lake")
        yield endpoint, "vj-lake"
    finally:
        server.stop()


@pytest.fixture
def fast(settings_for: Callable[..., Settings]) -> Callable[..., Settings]:
    """Settings with short waits: retries, reconnects and server selection measured in tenths of seconds."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "ibge_backoff_base_s": 0.02,
            "ibge_connect_timeout_s": 1.0,
            "ibge_read_timeout_s": 2.0,
            "ibge_max_retries": 3,
            "ibge_retry_budget_s": 20.0,
            "mongo_server_selection_timeout_ms": 800,
            "mongo_reconnects": 2,
            "mongo_reconnect_backoff_s": 0.05,
        }
        values.update(overrides)
        return settings_for(**values)

    return make


@pytest.fixture
def mongo_server(tmp_path: Path) -> Iterator[SecantusProcess]:
    """The shared fixture's server, but killed at teardown: a throw-away store needs no clean shutdown."""
    server = SecantusProcess(tmp_path / "mongo", test_commands=True).start()
    try:
        yield server
    finally:
        server.stop(kill=True)


@pytest.fixture
def seeded(mongo_server: SecantusProcess) -> Callable[[int], SecantusProcess]:
    def make(rows: int) -> SecantusProcess:
        seed(mongo_server.uri, "ibge", "pnadc20203", rows, 7)
        return mongo_server

    return make


@pytest.fixture
def auth_mongo(tmp_path: Path) -> Iterator[SecantusProcess]:
    """A SecantusDB with SCRAM auth on: the user is created without auth, then the server restarts."""
    server = SecantusProcess(tmp_path / "auth-mongo").start()
    try:
        client: MongoClient[Any] = MongoClient(server.uri)
        client.admin.command("createUser", USER, pwd=PASSWORD, roles=[{"role": "readWrite", "db": "ibge"}])
        client.close()
        seed(server.uri, "ibge", "pnadc20203", 1_000, 7)
        server.stop()
        server.auth = True
        server.start()
        yield server
    finally:
        server.stop(kill=True)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto in server mode (S3, Glue, Athena) on a free port, for the whole session."""
    from moto.server import ThreadedMotoServer

    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": cloud_lake.REGION,
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def moto(moto_url: str) -> Iterator[str]:
    """A clean moto for one test."""
    httpx.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    yield moto_url
    httpx.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `prefect server start` on a free port for the session; yields its API URL. One for every
    folder (tests/k8s, tests/ops, tests/spark/kubernetes): a fixture a folder's conftest re-imports is
    another fixture, and started a second server."""
    from tests.k8s.conftest import prefect_server_process

    with prefect_server_process(tmp_path_factory.mktemp("prefect-server-home")) as url:
        yield url
