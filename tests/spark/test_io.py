"""Spark's side of the lake (flows/spark/io.py): how tables are written."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql.types import StructType

from flows.errors import LakeError
from flows.lake import Lake
from flows.settings import Settings
from flows.spark.io import copy_table, read_table, write_table
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


def test_a_table_copied_to_another_zone_is_its_files_byte_for_byte(
    spark: SparkSession, tmp_path: Path
) -> None:
    lake = Lake(Settings(_env_file=None, lake_root=str(tmp_path / "lake")))
    df = spark.range(0, 100, numPartitions=4).selectExpr("lpad(hex(id), 24, '0') as _id", "2020 as ano")
    source = write_table(df, lake, "processing", "t/ingestion_date=2026-11-25")
    copied = copy_table(lake, ("processing", "t/ingestion_date=2026-11-25"), ("consumer", "t"), extra="x")
    assert copied["records"] == source["records"] == 100 and copied["extra"] == "x"
    assert [(f["bytes"], f["records"]) for f in copied["files"]] == [
        (f["bytes"], f["records"]) for f in source["files"]
    ]
    files = lake.committed_files("consumer", "t")
    assert [Path(p).read_bytes() for p in files] == [
        Path(p).read_bytes() for p in lake.committed_files("processing", "t/ingestion_date=2026-11-25")
    ]


def test_a_copy_that_fails_leaves_nothing_visible(spark: SparkSession, tmp_path: Path) -> None:
    lake = Lake(Settings(_env_file=None, lake_root=str(tmp_path / "lake")))
    df = spark.range(0, 100, numPartitions=4).selectExpr("lpad(hex(id), 24, '0') as _id", "2020 as ano")
    write_table(df, lake, "processing", "t/ingestion_date=2026-11-25")
    Path(lake.committed_files("processing", "t/ingestion_date=2026-11-25")[-1]).unlink()
    with pytest.raises(FileNotFoundError):
        copy_table(lake, ("processing", "t/ingestion_date=2026-11-25"), ("consumer", "t"))
    assert lake.manifest("consumer", "t") is None
    with pytest.raises(LakeError, match="never committed"):
        copy_table(lake, ("processing", "u/ingestion_date=2026-11-25"), ("consumer", "u"))
