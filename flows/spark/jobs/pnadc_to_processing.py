"""raw/pnadc → processing/pnadc (typed) + processing/quarantine/pnadc (rejects with reasons)."""

from __future__ import annotations

import sys
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from flows import layout
from flows.errors import LakeError
from flows.lake import Lake
from flows.settings import Settings
from flows.spark.io import (
    abort_quietly,
    committed_spark_files,
    empty_frame,
    latest_partition,
    read_raw_lines,
    read_raw_records,
    read_table,
    write_staged_table,
    write_table,
)
from flows.spark.jobs._entry import step_main
from flows.spark.schemas import CORRUPT, PNADC_RAW, QUARANTINE, UFS
from flows.spark.session import spark_session
from flows.spark.step_conf import (
    json_values_as_from_json,
    one_file_per_task,
    uncompressed_cache,
    without_whole_stage_codegen,
)
from flows.spark.transforms.pnadc import (
    mark_duplicates,
    repeated_ids,
    split_judged,
    type_pnadc,
    with_raw_lines,
)
from flows.spark.transforms.pnadc_rejected import (
    Judgement,
    block_bits,
    fingerprint,
    judgement,
    observe_judgement,
    observed_quarantine,
)

# Where the duplicate check runs: up to this many quarantined records are broadcast to the raw lines to find
# theirs (~150 bytes each: under 10 MB, Spark's own broadcast size, on the driver and each executor);
# beyond, both sides are shuffled.
BROADCAST_REJECTED_MAX = 50_000


def run(settings: Settings, ingestion_date: str, spark: SparkSession | None = None) -> dict[str, Any]:
    lake = Lake(settings)
    spark = spark or spark_session(settings, "pnadc_to_processing")
    raw_unit = layout.raw_pnadc(ingestion_date)
    raw_manifest = lake.manifest("raw", raw_unit)
    if raw_manifest is None:
        raise LakeError(f"raw/{raw_unit} is not committed: run ingest_pnadc for {ingestion_date} first.")
    ufs = read_table(
        spark, lake, "processing", latest_partition(lake, "processing", layout.UFS, ingestion_date), UFS
    )
    uf_names = [row.uf_nome for row in ufs.select("uf_nome").collect()]
    if not uf_names:
        raise LakeError("processing/ufs is empty: the IBGE dimensions must be processed before pnadc.")

    # Per-expression code generation: the fused typing stage is too big for the JIT (spark/step_conf.py).
    # One file per task: the raw lines, read twice, are numbered alike both times.
    with without_whole_stage_codegen(spark), one_file_per_task(spark), json_values_as_from_json(spark):
        files = committed_spark_files(lake, "raw", raw_unit, raw_manifest)
        # The extraction proved its `_id`s distinct (ascending ObjectIds, checked as it streamed): then no
        # record can be a duplicate, each line is judged on its own, and one pass types them all. A raw
        # unit without that proof (written otherwise, or holding other `_id` types) is checked here.
        check_duplicates = raw_manifest.get("ids_ascending") is not True
        if check_duplicates:
            lines = read_raw_lines(spark, files, ingestion_date)
            p, q = _with_duplicate_check(lake, lines, uf_names, ingestion_date, raw_manifest)
        else:
            # Our extraction wrote the batch: one JSON object a line, so Spark's JSON reader, which parses
            # for less CPU than `from_json`, numbers each record as its line (spark/io.py).
            records = read_raw_records(spark, files, ingestion_date, PNADC_RAW, CORRUPT)
            p, q = _in_one_pass(lake, files, records, uf_names, ingestion_date, raw_manifest)
    return {
        "raw": raw_manifest["records"],
        "processing": p["records"],
        "quarantined": q["records"],
        "duplicates_checked": check_duplicates,
    }


def _in_one_pass(
    lake: Lake,
    files: list[str],
    records: DataFrame,
    uf_names: list[str],
    ingestion_date: str,
    raw_manifest: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The valid records written (staged) as the `records` (the raw `files` parsed) are typed, nothing cached:
    building a cache cost more than typing once more would (docs/spark-performance.md). Then the
    quarantine, its lines found from what the pass observed (transforms/pnadc_rejected.py), and the valid
    run committed after it, which it names (`quarantined`), as the gate reads them. Returns (processing,
    quarantine)."""
    unit = layout.processing(layout.PNADC, ingestion_date)
    raw_records = raw_manifest.get("records")
    if raw_records is None:  # our extraction always counts: a batch without a count cannot be reconciled
        raise LakeError(f"raw/{layout.raw_pnadc(ingestion_date)} has no record count: not processed.")
    bits = block_bits(raw_records)
    observed, observation = observe_judgement(type_pnadc(records, uf_names), bits)
    staged, written = write_staged_table(split_judged(observed)[0], lake, "processing", unit)
    try:
        seen = judgement(observation, bits)
        # Every raw record judged, and each either written or rejected: else nothing is committed.
        if seen is None or written + seen.rejected != seen.judged or seen.judged != raw_records:
            saw = (
                f"{seen.judged} judged, {written} written valid and {seen.rejected} rejected"
                if seen
                else "Spark reported no counts for the pass"
            )
            raise LakeError(
                f"processing/{unit}: {raw_records} raw records, {saw}: they do not add up; not committed."
            )
        q = _write_rejected(seen, records.sparkSession, files, uf_names, lake, ingestion_date, raw_manifest)
    except BaseException:  # interrupted too: the run goes now, not at a later commit's cleanup
        abort_quietly(lake, staged)
        raise
    p = lake.commit(
        staged,
        records=written,
        format="parquet",
        partition_by=[],
        raw_records=raw_records,
        quarantined=q["records"],
        raw_run_id=raw_manifest["run_id"],
    )
    return p, q


def _write_rejected(
    seen: Judgement,
    spark: SparkSession,
    files: list[str],
    uf_names: list[str],
    lake: Lake,
    ingestion_date: str,
    raw_manifest: dict[str, Any],
) -> dict[str, Any]:
    """The one pass's quarantine, its records found again among the raw `files`' lines: committed only if
    it holds the records the pass rejected, each for the reasons the pass gave, as many and with the same
    fingerprint (transforms/pnadc_rejected.py). Their count alone would not show a line numbered otherwise
    in the second read, found in place of another. With nothing rejected, the lines are not even listed
    (Spark lists over 32 files in a job of its own)."""
    if not seen.rejected:
        return _write_quarantine(empty_frame(spark, QUARANTINE), lake, ingestion_date, 0, raw_manifest)
    lines = read_raw_lines(spark, files, ingestion_date)
    typed = type_pnadc(seen.lines_to_type(lines), uf_names, keep_line=True)
    unit = layout.quarantine(layout.PNADC, ingestion_date)
    quarantine, observation = observed_quarantine(typed)
    staged, records = write_staged_table(quarantine, lake, "processing", unit, expect_records=seen.rejected)
    try:
        if fingerprint(observation) != seen.fingerprint:
            raise LakeError(
                f"processing/{unit}: the {records} records found again for the quarantine are not the ones "
                "the pass rejected (their lines read or judged otherwise the second time); not committed."
            )
    except BaseException:
        abort_quietly(lake, staged)
        raise
    return lake.commit(
        staged, records=records, format="parquet", partition_by=[], raw_run_id=raw_manifest["run_id"]
    )


def _with_duplicate_check(
    lake: Lake, lines: DataFrame, uf_names: list[str], ingestion_date: str, raw_manifest: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The records checked for duplicates too, which needs every `_id` before any record is judged: the
    typed records are cached (uncompressed: spark/step_conf.py), read by the duplicate check, the
    rejections' count and both outputs (the raw line is not among them: transforms/pnadc.py). Returns
    (processing, quarantine)."""
    spark = lines.sparkSession
    with uncompressed_cache(spark):
        typed = type_pnadc(lines, uf_names).persist(StorageLevel.MEMORY_AND_DISK)
        repeated = repeated_ids(typed).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            valid, rejected = split_judged(mark_duplicates(typed, repeated))
            # The raw lines are read again only when some record is quarantined, to keep its line (Spark
            # plans a join with `limit(0)` as an empty result, without reading a file).
            rejections = rejected.count()
            quarantine = with_raw_lines(
                rejected,
                lines if rejections else lines.limit(0),
                broadcast=rejections <= BROADCAST_REJECTED_MAX,
            )
            q = _write_quarantine(quarantine, lake, ingestion_date, rejections, raw_manifest)
            p = write_table(
                valid,
                lake,
                "processing",
                layout.processing(layout.PNADC, ingestion_date),
                raw_records=raw_manifest["records"],
                quarantined=q["records"],
                raw_run_id=raw_manifest["run_id"],
            )
        finally:
            repeated.unpersist()
            typed.unpersist()
    return p, q


def _write_quarantine(
    quarantine: DataFrame, lake: Lake, ingestion_date: str, rejected: int, raw_manifest: dict[str, Any]
) -> dict[str, Any]:
    """Committed only if it holds every rejected record: the count proves each found its raw line again."""
    return write_table(
        quarantine,
        lake,
        "processing",
        layout.quarantine(layout.PNADC, ingestion_date),
        expect_records=rejected,
        raw_run_id=raw_manifest["run_id"],
    )


def main(argv: list[str] | None = None) -> int:
    return step_main(layout.PNADC_TO_PROCESSING, run, argv)


if __name__ == "__main__":
    sys.exit(main())
