"""The small run's child environment (flows/spark/small_run.py): the class archive's training and the Spark
server's warm-up run with none of the user's project settings. The run itself is exercised by both users'
tests (tests/spark/test_class_cache.py, tests/spark/test_connect_server.py)."""

from __future__ import annotations

import os

import pytest

from flows.orphans import MARK
from flows.spark.small_run import child_environment


def test_a_child_gets_no_project_setting_of_the_user_s_but_the_rest_of_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [n for n in os.environ if n.upper().startswith("VAMOSJUNTOS_")]:  # the shell's own
        monkeypatch.delenv(name)
    monkeypatch.setenv("VAMOSJUNTOS_RAW_ROOT", "s3://the-users-lake/raw")
    monkeypatch.setenv("vamosjuntos_lake_root", "/the/users/lake")  # Settings reads names in any case
    monkeypatch.setenv("VAMOSJUNTOS_MONGO_URI", "mongodb://their-server/")
    monkeypatch.setenv("JAVA_HOME", "/opt/java")
    monkeypatch.setenv(MARK, "4242-1.25")  # the command's mark: what the child starts ends with it
    monkeypatch.setenv("VAMOSJUNTOS_SPARK_DRIVER_MEMORY", "3g")  # Spark's tuning: kept
    monkeypatch.setenv("VAMOSJUNTOS_SPARK_REMOTE", "sc://their-server:15002/;token=theirs")

    env = child_environment(VAMOSJUNTOS_SPARK_REMOTE="sc://localhost:1/;token=t")

    project = {k for k in env if k.upper().startswith("VAMOSJUNTOS_")}
    assert project == {"VAMOSJUNTOS_SPARK_REMOTE", "VAMOSJUNTOS_SPARK_DRIVER_MEMORY", MARK}
    assert env["VAMOSJUNTOS_SPARK_REMOTE"] == "sc://localhost:1/;token=t" and env[MARK] == "4242-1.25"
    assert "VAMOSJUNTOS_SPARK_REMOTE" not in child_environment()  # a server the child was not given
    assert env["JAVA_HOME"] == "/opt/java" and env["PATH"]
