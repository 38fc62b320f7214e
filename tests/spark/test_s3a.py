"""Spark on S3: the Spark image's jars and spark-defaults.conf against moto's S3 and STS, over real sockets.

Each Spark process here starts as a step starts in the Spark image: `SPARK_CONF_DIR` is images/spark (so
its spark-defaults.conf applies: S3A, IRSA web identity, the magic committer), the jars are the ones
.ci/spark-jars put into PySpark's jars/ from images/spark/jars.txt, and AWS is reached with IRSA's
variables only (no access keys), with moto as STS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows.lake import Lake
from flows.settings import Settings
from flows.sources.ibge import SnapshotIbge
from flows.spark.kubernetes.spark_conf import S3A_COMMITTER_CONF, WEB_IDENTITY_PROVIDER
from tests.spark.test_steps import DATE, land_ibge_snapshot
from tests.support.moto_aws import NOT_IRSA, MotoAws, moto_aws

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BUCKETS = {"raw": "vj-raw", "processing": "vj-processing", "consumer": "vj-consumer"}


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoAws]:
    """moto with one bucket per zone; this process and its children reach it through IRSA only."""
    with moto_aws(tmp_path / "irsa", BUCKETS.values()) as server:
        for name in NOT_IRSA:
            monkeypatch.delenv(name, raising=False)
        for name, value in server.irsa_env().items():
            monkeypatch.setenv(name, value)
        yield server


def lake_settings(aws: MotoAws) -> dict[str, str]:
    """The step's settings as the Job gives them to the driver pod: VAMOSJUNTOS_* variables."""
    return {
        **{f"VAMOSJUNTOS_{zone.upper()}_ROOT": f"s3://{bucket}" for zone, bucket in BUCKETS.items()},
        "VAMOSJUNTOS_S3_ENDPOINT_URL": aws.endpoint,
        "VAMOSJUNTOS_SPARK_MASTER": "local[2]",
        "VAMOSJUNTOS_SPARK_DRIVER_MEMORY": "1g",
        "VAMOSJUNTOS_SPARK_SHUFFLE_PARTITIONS": "2",
    }


def run_spark(aws: MotoAws, *args: str) -> subprocess.CompletedProcess[str]:
    """A Python process that starts Spark as the Spark image does (its conf dir, the inherited AWS env)."""
    env = {**os.environ, **lake_settings(aws), "SPARK_CONF_DIR": str(REPO / "images" / "spark")}
    done = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return done


def java_sessions(aws: MotoAws) -> list[str]:
    # The AWS SDK for Java names its web-identity sessions aws-sdk-java-<millis>; botocore's differ.
    return [s for s in aws.assumed_role_sessions() if s.startswith("aws-sdk-java")]


def test_spark_reads_and_writes_s3a_through_the_magic_committer_with_irsa(aws: MotoAws) -> None:
    done = run_spark(aws, "-m", "tests.spark._s3a_probe", "s3a://vj-processing/probe/table")
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert (probe["rows"], probe["id_sum"], probe["parts"]) == (1000, sum(range(1000)), [0, 1, 2, 3])
    # spark-defaults.conf applied (IRSA, the committer); session.py added moto's endpoint
    assert probe["conf"] == {
        "spark.hadoop.fs.s3a.aws.credentials.provider": WEB_IDENTITY_PROVIDER,
        "spark.hadoop.fs.s3a.committer.name": "magic",
        "spark.sql.sources.commitProtocolClass": S3A_COMMITTER_CONF["spark.sql.sources.commitProtocolClass"],
        "spark.hadoop.fs.s3a.endpoint": aws.endpoint,
        "spark.hadoop.fs.s3a.endpoint.region": "us-east-1",
        "spark.hadoop.fs.s3a.path.style.access": "true",
    }
    assert java_sessions(aws), "the JVM got its S3 credentials from STS with the web-identity token"

    keys = aws.keys("vj-processing", "probe/table/")
    parquet = [k for k in keys if k.endswith(".parquet")]
    assert {k.split("/")[2] for k in parquet} == {"part=0", "part=1", "part=2", "part=3"}
    # The magic committer wrote the files as multipart uploads completed at job commit: no rename through a
    # _temporary folder (the classic committer), and its __magic staging folder is gone.
    assert not [k for k in keys if "_temporary" in k or "__magic" in k], keys
    success = json.loads(
        aws.s3().get_object(Bucket="vj-processing", Key="probe/table/_SUCCESS")["Body"].read()
    )
    assert success["committer"] == "magic" and success["success"] is True
    assert sorted(name.lstrip("/") for name in success["filenames"]) == parquet  # keys from the bucket root
    assert not aws.s3().list_multipart_uploads(Bucket="vj-processing").get("Uploads")


def test_a_spark_step_runs_end_to_end_with_the_lake_on_s3(aws: MotoAws) -> None:
    settings = Settings(
        _env_file=None, **{k.removeprefix("VAMOSJUNTOS_").lower(): v for k, v in lake_settings(aws).items()}
    )  # type: ignore[arg-type]
    lake = Lake(settings)
    assert lake.root("raw") == "s3://vj-raw"
    land_ibge_snapshot(lake)  # raw lands through flows.lake with s3fs, as the ingestion flows land it

    run_spark(aws, "-m", "flows.spark.jobs.ibge_to_processing", "--ingestion-date", DATE)

    expected = SnapshotIbge().fetch("mesorregioes").records
    manifest = lake.manifest("processing", f"mesorregioes/ingestion_date={DATE}")
    assert manifest is not None
    # Spark reads raw through S3A; the driver writes each table through lake.fs (s3fs) on moto
    assert (manifest["records"], manifest["raw_records"], manifest["quarantined"]) == (expected, expected, 0)
    assert (
        manifest["raw_run_id"] == lake.manifest("raw", f"ibge/mesorregioes/ingestion_date={DATE}")["run_id"]
    )
    files = lake.committed_files("processing", f"mesorregioes/ingestion_date={DATE}")
    assert files and all(f.startswith("s3://vj-processing/mesorregioes/") for f in files)
    fs = lake.fs("processing")
    rows = 0
    for path in files:
        with fs.open(path, "rb") as fh:
            table = pq.read_table(fh)
        rows += table.num_rows
        assert {"mesorregiao_id", "mesorregiao_nome", "uf_sigla", "regiao_sigla"} <= set(table.column_names)
    assert rows == expected

    ufs = lake.manifest("processing", f"ufs/ingestion_date={DATE}")
    assert ufs is not None and ufs["records"] == 27
    assert java_sessions(aws) and len(aws.assumed_role_sessions()) > len(java_sessions(aws)), (
        "both the JVM (S3A, reading raw) and Python (s3fs, writing the tables) used IRSA"
    )
