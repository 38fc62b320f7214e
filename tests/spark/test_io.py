"""Spark's side of the lake (flows/spark/io.py): how tables are written."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql.types import StructType

from flows.lake import Lake
from flows.settings import Settings
from flows.spark.io import read_table, write_table
from flows.spark.schemas import PNADC


def test_a_table_is_written_by_every_core_and_committed_whole(spark: SparkSession, tmp_path: Path) -> None:
    """A table of many input partitions is written by as many tasks as there are cores (one file each),
    not funnelled through one task; all of its rows are committed, counted from the files."""
    lake = Lake(Settings(_env_file=None, lake_root=str(tmp_path / "lake")))
    cores = spark.sparkContext.defaultParallelism
    assert cores >= 2
    df = spark.range(0, 1000, numPartitions=cores * 4).selectExpr(
        "lpad(hex(id), 24, '0') as _id", "2020 as ano"
    )
    manifest = write_table(df, lake, "processing", "t/ingestion_date=2026-11-25")
    assert manifest["records"] == 1000
    assert len(lake.committed_files("processing", "t/ingestion_date=2026-11-25")) == cores
    back = read_table(spark, lake, "processing", "t/ingestion_date=2026-11-25", StructType(PNADC.fields[:2]))
    assert sorted(r._id for r in back.collect()) == sorted(r._id for r in df.collect())


def test_a_small_table_stays_one_file(spark: SparkSession, tmp_path: Path) -> None:
    lake = Lake(Settings(_env_file=None, lake_root=str(tmp_path / "lake")))
    df = spark.range(0, 10, numPartitions=1).selectExpr("lpad(hex(id), 24, '0') as _id", "2020 as ano")
    assert write_table(df, lake, "processing", "t/ingestion_date=2026-11-25")["records"] == 10
    assert len(lake.committed_files("processing", "t/ingestion_date=2026-11-25")) == 1
