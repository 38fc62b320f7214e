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
from flows.spark.io import latest_partition, read_raw_lines, read_table, write_table
from flows.spark.jobs._entry import step_main
from flows.spark.schemas import UFS
from flows.spark.session import spark_session
from flows.spark.step_conf import one_file_per_task, uncompressed_cache, without_whole_stage_codegen
from flows.spark.transforms.pnadc import (
    mark_duplicates,
    repeated_ids,
    split_judged,
    type_pnadc,
    with_raw_lines,
)

# Up to this many quarantined records are broadcast to the raw lines to find theirs (~150 bytes each: under
# 10 MB, Spark's own broadcast size, on the driver and each executor); beyond, both sides are shuffled.
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
    # One file per task: the raw lines, read twice, are numbered alike both times. The typed records'
    # cache, built once and read twice, costs less CPU without Spark's encodings (spark/step_conf.py).
    with without_whole_stage_codegen(spark), one_file_per_task(spark), uncompressed_cache(spark):
        lines = read_raw_lines(spark, lake, raw_unit, ingestion_date, raw_manifest)
        # Persisted: the lines are parsed once, and the duplicate check (where needed), the count and both
        # outputs read the typed columns from memory (the raw line is not among them: transforms/pnadc.py).
        typed = type_pnadc(lines, uf_names).persist(StorageLevel.MEMORY_AND_DISK)
        repeated: DataFrame | None = None
        # The extraction proved its `_id`s distinct (ascending ObjectIds, checked as it streamed): then no
        # record can be a duplicate, and the aggregate over every `_id` (a shuffle) is not needed. A raw
        # unit without that proof (written otherwise, or holding other `_id` types) is checked here.
        check_duplicates = raw_manifest.get("ids_ascending") is not True
        try:
            judged = typed
            if check_duplicates:
                repeated = repeated_ids(typed).persist(StorageLevel.MEMORY_AND_DISK)
                judged = mark_duplicates(typed, repeated)
            valid, rejected = split_judged(judged)
            # The raw lines are read again only when some record is quarantined, to keep its line (Spark
            # plans a join with `limit(0)` as an empty result, without reading a file).
            rejections = rejected.count()
            quarantine = with_raw_lines(
                rejected,
                lines if rejections else lines.limit(0),
                broadcast=rejections <= BROADCAST_REJECTED_MAX,
            )
            lineage = {"raw_run_id": raw_manifest["run_id"]}
            # Every rejected record must find its raw line again: the count proves it before the commit.
            q = write_table(
                quarantine,
                lake,
                "processing",
                layout.quarantine(layout.PNADC, ingestion_date),
                expect_records=rejections,
                **lineage,
            )
            p = write_table(
                valid,
                lake,
                "processing",
                layout.processing(layout.PNADC, ingestion_date),
                raw_records=raw_manifest["records"],
                quarantined=q["records"],
                **lineage,
            )
        finally:
            if repeated is not None:
                repeated.unpersist()
            typed.unpersist()
    return {
        "raw": raw_manifest["records"],
        "processing": p["records"],
        "quarantined": q["records"],
        "duplicates_checked": check_duplicates,
    }


def main(argv: list[str] | None = None) -> int:
    return step_main(layout.PNADC_TO_PROCESSING, run, argv)


if __name__ == "__main__":
    sys.exit(main())
