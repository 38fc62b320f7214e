"""The benchmark harness's own `vamosjuntos spark-server`: started as users start it, it serves a run's Spark
session with the URL it printed, its JVM sits in the tree the harness samples, and it stops with it."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from benchmarks import servers
from benchmarks.measure import BenchmarkError, clean_env
from benchmarks.plan import SMOKE
from benchmarks.suite import Runner
from flows.errors import ConfigurationError
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
        check_remote(Settings(_env_file=None, spark_remote=spark.remote))  # type: ignore[call-arg]
        stale = spark.remote.split("token=")[0] + "token=" + "x" * 43
        with pytest.raises(ConfigurationError, match="refused the token"):
            check_remote(Settings(_env_file=None, spark_remote=stale))  # type: ignore[call-arg]
        assert spark.remote.split("token=")[1] not in " ".join(jvms[0].cmdline())

    deadline = time.monotonic() + 30
    while jvms[0].is_running() and jvms[0].status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the server's JVM outlived the harness's server"
        time.sleep(0.2)
    assert "Spark Connect server stopped." in (tmp_path / "spark-server.log").read_text()


def test_a_server_that_does_not_start_fails_its_contestants_not_the_run(tmp_path: Path) -> None:
    runner = Runner(SMOKE, tmp_path, log=lambda m: None)
    starts: list[Path] = []

    def broken(folder: Path) -> object:
        starts.append(folder)
        raise RuntimeError("vamosjuntos spark-server did not start: port taken")

    for _ in range(2):
        with pytest.raises(BenchmarkError, match="did not start"):
            runner._start("vamosjuntos spark-server", broken, "spark-server")
    assert starts == [tmp_path / "spark-server"]  # tried once; the next contestant fails at once
    assert runner.results.servers == {"failed": ["vamosjuntos spark-server"]}
