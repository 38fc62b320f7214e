"""Shared fixtures: real servers on real sockets (SecantusDB, an IBGE stand-in), real Spark, real Prefect."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from flows.settings import Settings
from flows.sources.local_mongo import SecantusProcess, free_port
from tests.support.ibge_server import IbgeServer
from tests.support.local_run import local_run  # noqa: F401 (a session fixture for every test folder)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test server for the whole session (it takes ~10 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from flows.spark.session import spark_session

    session = spark_session(Settings(spark_master="local[2]", spark_shuffle_partitions=4), "tests")
    yield session
    session.stop()


@pytest.fixture
def ibge_server() -> Iterator[IbgeServer]:
    with IbgeServer() as server:
        yield server


@pytest.fixture
def mongo_server(tmp_path: Path) -> Iterator[SecantusProcess]:
    with SecantusProcess(tmp_path / "mongo", test_commands=True) as server:
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
