"""The benchmark harness's own `vamosjuntos spark-server`: started as users start it, it serves a run's Spark
session with the URL it printed, its JVM sits in the tree the harness samples, and it stops with it."""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from benchmarks import servers
from benchmarks.measure import clean_env
from flows.settings import Settings
from flows.spark.session import check_remote

SMALL = {"VAMOSJUNTOS_SPARK_MASTER": "local[2]", "VAMOSJUNTOS_SPARK_DRIVER_MEMORY": "1g"}


def _java(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children(recursive=True) if p.name() == "java"]


def test_the_harness_spark_server_answers_with_its_token_and_stops_with_its_jvm(tmp_path: Path) -> None:
    with servers.spark_server(tmp_path, env=clean_env(SMALL)) as spark:
        assert spark.remote.startswith("sc://localhost:") and ";token=" in spark.remote
        jvms = _java(spark.pid)  # what the harness samples apart is the server's tree, its JVM included
        assert len(jvms) == 1
        host, port = check_remote(Settings(_env_file=None, spark_remote=spark.remote))  # type: ignore[call-arg]
        assert (host, port) == ("localhost", int(spark.remote.split(":")[2].split("/")[0]))
        assert spark.remote.split("token=")[1] not in " ".join(jvms[0].cmdline())

    deadline = time.monotonic() + 30
    while jvms[0].is_running() and jvms[0].status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the server's JVM outlived the harness's server"
        time.sleep(0.2)
    assert "Spark Connect server stopped." in (tmp_path / "spark-server.log").read_text()
