"""Spark's side of the lake (flows/spark/io.py): how tables are written."""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from flows.errors import ChecksumMismatch, DamagedLakeFile, LakeError
from flows.lake import STAGING, Lake
from flows.settings import Settings
from flows.spark import io as spark_io
from flows.spark.io import copy_table, read_raw_lines, read_raw_records, read_table, write_table
from flows.spark.schemas import CORRUPT, PNADC, PNADC_RAW
from flows.spark.step_conf import json_values_as_from_json, one_file_per_task


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


def test_a_table_with_other_than_the_expected_records_is_not_committed(
    spark: SparkSession, tmp_path: Path
) -> None:
    lake = Lake(Settings(_env_file=None, lake_root=str(tmp_path / "lake")))
    unit = "t/ingestion_date=2026-11-25"
    df = spark.range(0, 10, numPartitions=1).selectExpr("lpad(hex(id), 24, '0') as _id", "2020 as ano")
    assert write_table(df, lake, "processing", unit, expect_records=10)["records"] == 10
    before = lake.manifest("processing", unit)
    with pytest.raises(LakeError, match="9 records written where 10 were expected; not committed"):
        write_table(df.limit(9), lake, "processing", unit, expect_records=10)
    assert lake.manifest("processing", unit) == before  # readers still see the first table
    assert len(lake.committed_files("processing", unit)) == 1
    assert lake.runs("processing", unit) == [before["run_id"]]  # the failed run's files are gone


@pytest.mark.parametrize("where", ["write_staged_table", "copy_table"])
def test_an_interrupted_write_leaves_no_run_behind(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Ctrl-C or a stop signal (BaseExceptions) during a write removes its staged run at once, as a failure
    does, instead of leaving it for a later commit's cleanup."""
    lake = Lake(Settings(_env_file=None, lake_root=str(tmp_path / "lake")))
    unit = "t/ingestion_date=2026-11-25"
    df = spark.range(0, 10, numPartitions=1).selectExpr("lpad(hex(id), 24, '0') as _id", "2020 as ano")
    before = write_table(df, lake, "processing", unit)
    copied = copy_table(lake, ("processing", unit), ("consumer", "t"))

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        if where == "write_staged_table":  # interrupted once Spark has written the files
            monkeypatch.setattr(spark_io.pq, "ParquetFile", interrupted)
            write_table(df, lake, "processing", unit)
        else:
            monkeypatch.setattr(spark_io, "copy_hashed", interrupted)
            copy_table(lake, ("processing", unit), ("consumer", "t"))
    zone, unit, manifest = (
        ("processing", unit, before) if where == "write_staged_table" else ("consumer", "t", copied)
    )
    assert lake.manifest(zone, unit) == manifest
    assert lake.runs(zone, unit) == [manifest["run_id"]]  # the interrupted run's folder is gone
    assert not list(Path(lake.path(zone, unit, STAGING)).glob("*.json"))  # and not "being written"


def test_an_abort_that_fails_does_not_hide_the_interruption(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Removing the run can fail (a task of the interrupted write still writing into it): that is logged,
    and the interruption, not the removal's error, ends the step."""
    lake = Lake(Settings(_env_file=None, lake_root=str(tmp_path / "lake")))
    df = spark.range(0, 10, numPartitions=1).selectExpr("lpad(hex(id), 24, '0') as _id", "2020 as ano")

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    def abort_fails(staging: Any) -> None:
        raise OSError("Directory not empty: 'run=…'")

    monkeypatch.setattr(spark_io.pq, "ParquetFile", interrupted)
    monkeypatch.setattr(lake, "abort", abort_fails)
    with pytest.raises(KeyboardInterrupt):
        write_table(df, lake, "processing", "t/ingestion_date=2026-11-25")
    assert "could not remove the staged run" in caplog.text and "Directory not empty" in caplog.text


# Lines as the extraction writes them (json.dumps' separators, \u escapes, extended JSON wrappers), with the
# values the typing must tell apart, and a line cut short.
RAW_LINES = [
    '{"_id": {"$oid": "600ce0690000004eeb000000"}, "ano": 2020, "uf": "Cear\\u00e1", "renda": 520.0}',
    '{"_id": {"$oid": "600ce0690000004eeb000001"}, "renda": {"$numberDouble": "NaN"}, "idade": null}',
    '{"_id": {"$oid": "600CE0690000004EEB000002"}, "ano": {"$numberLong": "2020"}, "sexo": {"a": [1, 2.50]}}',
    '{"_id": "600ce0690000004eeb000003", "uf": "a\\": \\"b", "cor": ["x", {"y": 1e2}], "renda": "12.5"}',
    '{"_id": {"$oid": "600ce0690000004eeb000004"}, "idade": 1.0E+1, "horastrab": -0.0, "ocup": true}',
    '{"_id": {"$oid": "600ce0690000004eeb000005"}, "ano": 20',
]


def _raw_files(folder: Path, parts: list[list[str]]) -> list[str]:
    folder.mkdir()
    for i, lines in enumerate(parts):
        (folder / f"part-{i:05d}.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return sorted(str(p) for p in folder.iterdir())


def test_the_json_reader_parses_and_numbers_a_batch_as_from_json_does(
    spark: SparkSession, tmp_path: Path
) -> None:
    """The PNAD step judges the records the JSON reader parsed and finds the rejected ones' lines again by
    typing them with `from_json`: both must give every line the same fields, text for text, and the same
    place (file, number), files of unequal sizes included."""
    files = _raw_files(tmp_path / "raw", [RAW_LINES * 40, RAW_LINES[::-1] * 3, RAW_LINES[:1]])
    parse = F.from_json("value", PNADC_RAW, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
    with one_file_per_task(spark), json_values_as_from_json(spark):
        records = read_raw_records(spark, files, "2026-11-25", PNADC_RAW, CORRUPT)
        lines = read_raw_lines(spark, files, "2026-11-25")
        by_reader = records.collect()
        parsed = lines.select(*records.columns[:3], parse.alias("j"))
        by_from_json = parsed.select("*", "j.*").drop("j").collect()
    assert records.columns == ["ingestion_date", "source_file", "line_no", *PNADC_RAW.fieldNames()]
    assert len(by_reader) == 40 * 6 + 3 * 6 + 1 and sorted(by_reader) == sorted(by_from_json)
    assert '{"$oid":"600ce0690000004eeb000000"}' in {r._id for r in by_reader}  # as Jackson writes it again
    assert sum(r[CORRUPT] is not None for r in by_reader) == 40 + 3  # the line cut short, whole
    with one_file_per_task(spark):  # Spark's default: the line's own spelling, which the typing does not read
        exact = read_raw_records(spark, files[-1:], "2026-11-25", PNADC_RAW, CORRUPT).collect()
    assert [r._id for r in exact] == ['{"$oid": "600ce0690000004eeb000000"}']


def test_the_json_reader_skips_a_blank_line(spark: SparkSession, tmp_path: Path) -> None:
    """Why the step reads through the JSON reader only a batch our extraction wrote (one object a line):
    a blank line is not a record to the reader, so the lines after it would be numbered otherwise."""
    files = _raw_files(tmp_path / "raw", [[RAW_LINES[0], "", RAW_LINES[1]]])
    with one_file_per_task(spark), json_values_as_from_json(spark):
        records = read_raw_records(spark, files, "2026-11-25", PNADC_RAW, CORRUPT).collect()
        lines = read_raw_lines(spark, files, "2026-11-25").collect()
    assert (len(records), len(lines)) == (2, 3)
    assert records[1].line_no == lines[1].line_no != lines[2].line_no


def test_an_empty_unit_is_an_empty_frame_of_the_same_columns_made_without_python_rows(
    spark: SparkSession, tmp_path: Path
) -> None:
    """A quiet day's raw unit (no part files) or a table not written yet: no rows, the columns the files
    would give, and made in the JVM: a frame of Python rows would start Spark's Python workers (about a
    second of CPU) to read nothing."""
    files = _raw_files(tmp_path / "raw", [RAW_LINES[:1]])
    lake = Lake(Settings(_env_file=None, lake_root=str(tmp_path / "lake")))
    _commit_parquet(lake, "t/ingestion_date=2026-11-25", {})  # a table committed with no rows
    pairs = [
        (read_raw_lines(spark, [], "2026-11-25"), read_raw_lines(spark, files, "2026-11-25")),
        (
            read_raw_records(spark, [], "2026-11-25", PNADC_RAW, CORRUPT),
            read_raw_records(spark, files, "2026-11-25", PNADC_RAW, CORRUPT),
        ),
        (read_table(spark, lake, "processing", "t/ingestion_date=2026-11-25", PNADC), None),
    ]
    for empty, read in pairs:
        assert empty.schema == (read.schema if read is not None else PNADC) and empty.count() == 0
        plan = empty._jdf.queryExecution().executedPlan().toString()
        assert "ExistingRDD" not in plan and "LocalTableScan" in plan, plan


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


def _commit_parquet(lake: Lake, unit: str, parts: dict[str, list[int]], *, counted: bool = True) -> dict:
    """Commit a processing table of one Parquet file per `parts` key (a path inside the run folder), as
    Spark lays a partitioned table out: files named alike in different `col=value/` folders."""
    staging = lake.stage("processing", unit)
    for name, ids in parts.items():
        buffer = io.BytesIO()
        pq.write_table(pa.table({"id": ids}), buffer)
        with staging.open(name) as out:
            out.write(buffer.getvalue())
        staging.add_file(name, records=len(ids) if counted else None)
    records = sum(len(ids) for ids in parts.values())
    return lake.commit(staging, records=records, format="parquet", partition_by=["ano"])


PARTITIONED = {"ano=2020/part-00000.snappy.parquet": [1, 2, 3], "ano=2021/part-00000.snappy.parquet": [4, 5]}


def _copied_bytes(lake: Lake, zone: Any, unit: str) -> dict[str, bytes]:
    """Each committed file's path inside its run folder → its bytes."""
    manifest = lake.manifest(zone, unit)
    fs = lake.fs(zone)
    return {
        f["name"].split("/", 1)[1]: fs.cat_file(lake.path(zone, unit, f["name"])) for f in manifest["files"]
    }


def test_a_partitioned_table_is_copied_with_its_partition_folders(tmp_path: Path) -> None:
    lake = Lake(Settings(_env_file=None, lake_root=str(tmp_path / "lake")))
    source = _commit_parquet(lake, "t/ingestion_date=2026-11-25", PARTITIONED)
    copied = copy_table(lake, ("processing", "t/ingestion_date=2026-11-25"), ("consumer", "t"))
    assert copied["partition_by"] == ["ano"] and copied["records"] == 5
    files = _copied_bytes(lake, "consumer", "t")
    assert files == _copied_bytes(lake, "processing", "t/ingestion_date=2026-11-25")
    assert sorted(files) == sorted(PARTITIONED)
    assert [(f["bytes"], f["records"]) for f in copied["files"]] == [
        (f["bytes"], f["records"]) for f in source["files"]
    ]
    assert [f["sha256"] for f in copied["files"]] == [hashlib.sha256(b).hexdigest() for b in files.values()]


def test_a_copy_takes_its_record_count_from_the_source_manifest(tmp_path: Path) -> None:
    """A manifest without per-file counts still says how many records the table holds."""
    lake = Lake(Settings(_env_file=None, lake_root=str(tmp_path / "lake")))
    _commit_parquet(lake, "t/ingestion_date=2026-11-25", PARTITIONED, counted=False)
    copied = copy_table(lake, ("processing", "t/ingestion_date=2026-11-25"), ("consumer", "t"))
    assert copied["records"] == 5


def test_a_manifest_naming_a_file_outside_its_run_is_refused(tmp_path: Path) -> None:
    lake = Lake(Settings(_env_file=None, lake_root=str(tmp_path / "lake")))
    _commit_parquet(lake, "t/ingestion_date=2026-11-25", PARTITIONED)
    path = tmp_path / "lake/processing/t/ingestion_date=2026-11-25/_manifest.json"
    path.write_text(path.read_text().replace('"name": "run=', '"name": "elsewhere/run='))
    with pytest.raises(
        DamagedLakeFile, match=r"not a manifest: the file entry \{.*elsewhere/run=.* is not a file"
    ):
        copy_table(lake, ("processing", "t/ingestion_date=2026-11-25"), ("consumer", "t"))
    assert lake.manifest("consumer", "t") is None and not lake.runs("consumer", "t")


def test_a_file_that_changed_after_its_commit_is_not_copied(tmp_path: Path) -> None:
    """The source manifest's sha256 is compared with the bytes as they are copied."""
    lake = Lake(Settings(_env_file=None, lake_root=str(tmp_path / "lake")))
    source = _commit_parquet(lake, "t/ingestion_date=2026-11-25", PARTITIONED)
    changed = source["files"][1]["name"]
    path = Path(lake.path("processing", "t/ingestion_date=2026-11-25", changed))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one bit flipped, same size
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch, match=f"processing/t/ingestion_date=2026-11-25: file {changed} "):
        copy_table(lake, ("processing", "t/ingestion_date=2026-11-25"), ("consumer", "t"))
    assert lake.manifest("consumer", "t") is None and not lake.runs("consumer", "t")


@pytest.mark.integration
def test_a_table_is_copied_between_s3_buckets_and_a_failed_copy_leaves_nothing(
    fast: Callable[..., Settings], moto_s3: tuple[str, str]
) -> None:
    """The cloud path: processing and consumer are two buckets (moto's S3 server over a real socket)."""
    endpoint, bucket = moto_s3
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="vj-consumer")
    settings = fast(
        processing_root=f"s3://{bucket}/processing",
        consumer_root="s3://vj-consumer",
        s3_endpoint_url=endpoint,
    )
    lake = Lake(settings)
    source = _commit_parquet(lake, "t/ingestion_date=2026-11-25", PARTITIONED)

    copied = copy_table(lake, ("processing", "t/ingestion_date=2026-11-25"), ("consumer", "t"), extra="x")
    assert lake.manifest("consumer", "t") == copied and copied["extra"] == "x"
    assert copied["records"] == source["records"] == 5 and copied["partition_by"] == ["ano"]
    files = _copied_bytes(lake, "consumer", "t")
    assert files == _copied_bytes(lake, "processing", "t/ingestion_date=2026-11-25")
    assert [f["sha256"] for f in copied["files"]] == [hashlib.sha256(b).hexdigest() for b in files.values()]
    assert [f["bytes"] for f in copied["files"]] == [len(b) for b in files.values()]

    # a source file gone after its commit: the copy fails after its first file, and leaves nothing behind
    _commit_parquet(lake, "u/ingestion_date=2026-11-25", PARTITIONED)
    last = lake.committed_files("processing", "u/ingestion_date=2026-11-25")[-1]
    s3.delete_object(Bucket=bucket, Key=last[len(f"s3://{bucket}/") :])
    with pytest.raises(FileNotFoundError):
        copy_table(lake, ("processing", "u/ingestion_date=2026-11-25"), ("consumer", "u"))
    assert lake.manifest("consumer", "u") is None
    left = s3.list_objects_v2(Bucket="vj-consumer", Prefix="u/").get("Contents", [])
    assert [o["Key"] for o in left] == []
