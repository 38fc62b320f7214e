"""Spark's side of the lake: read committed units, write tables as staged runs and commit them."""

from __future__ import annotations

import logging
import posixpath
from typing import Any

import pyarrow.parquet as pq
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StringType, StructField, StructType

from flows import layout
from flows.errors import ChecksumMismatch, LakeError
from flows.lake import Lake, sha256_file, to_spark_path
from flows.lake.commits import Staging
from flows.lake.files import copy_hashed
from flows.layout import Zone
from flows.spark.session import is_remote_session

log = logging.getLogger(__name__)
# A copied file passes in blocks of this size: few requests on S3, little memory on the driver.
COPY_CHUNK = 8 << 20


def committed_spark_files(
    lake: Lake, zone: Zone, unit: str, manifest: dict[str, Any] | None = None
) -> list[str]:
    """The unit's committed files, as Spark paths. Raw files are verified against their manifest first, and
    the files read are the ones that manifest names (a commit after the check cannot slip unchecked parts in).
    """
    paths = verify_raw(lake, unit, manifest) if zone == "raw" else lake.committed_files(zone, unit)
    return [to_spark_path(p) for p in paths]


def verify_raw(lake: Lake, unit: str, manifest: dict[str, Any] | None = None) -> list[str]:
    """Every part of a committed raw unit has the sha256 its manifest recorded, or ChecksumMismatch.
    Returns the paths of the parts verified: read those, not the manifest again.

    Raw is what the sources returned: a part rewritten after ingestion (even as valid gzip) would be typed
    and answered as if the source had said it. Reading each part once more on the driver costs a fraction
    of what Spark spends parsing it.
    """
    manifest = manifest or lake.manifest("raw", unit)
    if manifest is None:
        raise LakeError(f"raw/{unit} has no manifest: it was never committed (or a write failed).")
    fs = lake.fs("raw")
    paths = []
    for entry in manifest["files"]:
        path = lake.path("raw", unit, entry["name"])
        try:
            found = sha256_file(fs, path)
        except FileNotFoundError:
            found = "nothing (the file is missing)"
        if found != entry.get("sha256"):
            raise ChecksumMismatch(
                f"raw/{unit}: part {entry['name']} does not match the sha256 its manifest recorded "
                f"(expected {entry.get('sha256')}, found {found}): it changed after ingestion. Not retried: "
                "ingest that date again (vamosjuntos run --ingestion-date …) or restore the part."
            )
        paths.append(path)
    return paths


def empty_frame(spark: SparkSession, schema: StructType) -> DataFrame:
    """No rows of `schema`, made in the JVM from an empty Arrow table: a frame of Python rows
    (`createDataFrame([], schema)`) would start Spark's Python workers to read none (a second of CPU)."""
    return spark.createDataFrame(to_arrow_schema(schema, timezone="UTC").empty_table(), schema)


def read_raw_lines(spark: SparkSession, files: list[str], ingestion_date: str) -> DataFrame:
    """A raw unit's files (`committed_spark_files`: verified) as lines, with their batch, file and position
    in the file."""
    if not files:  # the columns `spark.read.text` gives
        return empty_frame(spark, StructType([StructField("value", StringType())])).select(
            "value", *_where_read(ingestion_date)
        )
    return spark.read.text(files).select("value", *_where_read(ingestion_date))


def read_raw_records(
    spark: SparkSession, files: list[str], ingestion_date: str, schema: StructType, corrupt: str
) -> DataFrame:
    """A raw unit's JSON lines parsed by Spark's JSON reader into the columns of `schema` (a line that does
    not parse has its fields null and `corrupt` holding it), after the batch, file and position that
    `read_raw_lines` gives the same files.

    The reader parses each line from its bytes; `from_json` over `read_raw_lines` parses the same text
    through a character reader it makes for every line, for ~1.4 times the CPU (docs/spark-performance.md).
    The positions are the lines' only where every line holds one JSON object: the reader skips a blank
    line and makes a row of each object of a top-level array (our extraction writes neither).
    """
    if not files:
        return empty_frame(spark, StructType(schema.fields)).select(*_where_read(ingestion_date), "*")
    # No `encoding` option: with one, the reader too decodes each line through a character reader.
    reader = spark.read.schema(schema).options(mode="PERMISSIVE", columnNameOfCorruptRecord=corrupt)
    return reader.json(files).select(*_where_read(ingestion_date), "*")


def _where_read(ingestion_date: str) -> list[Column]:
    return [
        F.lit(ingestion_date).alias("ingestion_date"),
        F.element_at(F.split(F.input_file_name(), "/"), -1).alias("source_file"),
        # Increasing within each file (a gzip file is never split), which is all "file order" needs. The same
        # line gets the same number in another query only if the files are packed into tasks alike
        # (step_conf.one_file_per_task).
        F.monotonically_increasing_id().alias("line_no"),
    ]


def read_table(spark: SparkSession, lake: Lake, zone: Zone, unit: str, schema: StructType) -> DataFrame:
    files = committed_spark_files(lake, zone, unit)
    if not files:
        return empty_frame(spark, schema)
    return spark.read.schema(schema).parquet(*files)


def latest_partition(lake: Lake, zone: Zone, table: str, at_or_before: str) -> str:
    dates = [d for d in lake.partitions(zone, table) if d <= at_or_before]
    if not dates:
        raise LakeError(
            f"{zone}/{table} has no committed partition on or before {at_or_before}: run its step first."
        )
    return layout.dated(table, dates[-1])


def write_table(
    df: DataFrame,
    lake: Lake,
    zone: Zone,
    unit: str,
    *,
    partition_by: tuple[str, ...] = (),
    expect_records: int | None = None,
    **manifest_extra: Any,
) -> dict[str, Any]:
    """Write `df` as Parquet into a staged run, then commit it: readers see all of it or none of it.

    `expect_records`: the rows the caller knows `df` must have; any other count aborts the run
    uncommitted (LakeError)."""
    staging, records = write_staged_table(
        df, lake, zone, unit, partition_by=partition_by, expect_records=expect_records
    )
    return lake.commit(
        staging, records=records, format="parquet", partition_by=list(partition_by), **manifest_extra
    )


def write_staged_table(
    df: DataFrame,
    lake: Lake,
    zone: Zone,
    unit: str,
    *,
    partition_by: tuple[str, ...] = (),
    expect_records: int | None = None,
) -> tuple[Staging, int]:
    """Write `df` as Parquet into a staged run, uncommitted (nothing of it visible): the run and the rows
    written, for the caller to commit (as `write_table` does) or abort. A failed write is aborted here."""
    staging = lake.stage(zone, unit)
    try:
        # One file per output partition, or per core: a handful of files, not hundreds, and every core
        # writing (one file for all of it would write on one core).
        cores = _parallelism(df.sparkSession)
        out = df.repartition(*partition_by) if partition_by else df.coalesce(max(1, cores))
        writer = out.write.mode("overwrite")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.parquet(staging.spark_path)
        # Row counts from the Parquet footers: exact, and no second Spark job to read the data back.
        fs = lake.fs(zone)
        for entry in staging.add_written_files(".parquet"):
            with fs.open(posixpath.join(staging.unit_path, entry.name), "rb") as fh:
                entry.records = pq.ParquetFile(fh).metadata.num_rows
        records = sum(f.records or 0 for f in staging.files)
        if expect_records is not None and records != expect_records:
            raise LakeError(
                f"{zone}/{unit}: {records:,} records written where {expect_records:,} were expected; "
                "not committed (the table stays as it was)."
            )
    except BaseException:  # interrupted too: the run goes now, not at a later commit's cleanup
        abort_quietly(lake, staging)
        raise
    return staging, records


def abort_quietly(lake: Lake, staging: Staging) -> None:
    """Remove a staged run while an error (or an interruption) is on its way out. An abort that fails, say
    while a task of the interrupted write still writes into the run, is logged rather than raised, so that
    it does not replace the error that says why the step ended; the run is then a later commit's to remove.
    """
    try:
        lake.abort(staging)
    except Exception as exc:
        log.warning("could not remove the staged run %s of %s: %s", staging.run_id, staging.unit, exc)


_REMOTE_CORES: dict[str, int] = {}


def _parallelism(spark: SparkSession) -> int:
    """The cores that run tasks. A Spark Connect session has no SparkContext to ask: its server answers
    once per session, splitting a range by its default parallelism (one tiny job)."""
    if not is_remote_session(spark):
        return spark.sparkContext.defaultParallelism
    key = str(getattr(spark, "session_id", id(spark)))
    if key not in _REMOTE_CORES:
        ids = spark.range(0, 1 << 16).select(F.spark_partition_id().alias("p"))
        top = ids.agg(F.max("p").alias("top")).first()
        _REMOTE_CORES[key] = int(top["top"]) + 1 if top and top["top"] is not None else 1
    return _REMOTE_CORES[key]


def copy_table(
    lake: Lake, source: tuple[Zone, str], target: tuple[Zone, str], **manifest_extra: Any
) -> dict[str, Any]:
    """Commit the files of a committed table as another unit, byte for byte: no Spark job to read and write
    them again (a table that passes unchanged from one zone to the next, e.g. the IBGE dimensions).

    Each file keeps its path inside the run folder (a partitioned table's `col=value/` folders hold files
    Spark names alike) and the copy keeps the source's partitioning and record count. Each file is read
    once, streamed: its sha256 is taken from the bytes as they pass, so nothing is read back from the
    target, and compared with the source manifest's where it records one (ChecksumMismatch)."""
    (zone, unit), (to_zone, to_unit) = source, target
    manifest = lake.manifest(zone, unit)
    if manifest is None:
        raise LakeError(f"{zone}/{unit} has no manifest: it was never committed (or a write failed).")
    run_folder = f"run={manifest['run_id']}/"
    fs = lake.fs(zone)
    staging = lake.stage(to_zone, to_unit)
    try:
        for entry in manifest["files"]:  # each inside run_folder: Lake.manifest checked it
            name = entry["name"][len(run_folder) :]
            with fs.open(lake.path(zone, unit, entry["name"]), "rb") as src, staging.open(name) as out:
                sha256, size = copy_hashed(src, out, COPY_CHUNK)
            if entry.get("sha256") not in (None, sha256):  # Spark-written manifests record none
                raise ChecksumMismatch(
                    f"{zone}/{unit}: file {entry['name']} does not match the sha256 its manifest recorded "
                    f"(expected {entry['sha256']}, found {sha256}): it changed after its commit; not copied."
                )
            staging.add_file(name, records=entry.get("records"), sha256=sha256, size=size)
    except BaseException:  # interrupted too: the run goes now, not at a later commit's cleanup
        abort_quietly(lake, staging)
        raise
    return lake.commit(
        staging,
        records=manifest.get("records"),
        format=manifest.get("format", "parquet"),
        partition_by=manifest.get("partition_by", []),
        **manifest_extra,
    )
