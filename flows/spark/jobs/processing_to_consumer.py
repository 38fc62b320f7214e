"""processing → consumer: the target public (latest record per _id since the last full extraction) and the
dimensions."""

from __future__ import annotations

import sys
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from flows import layout
from flows.errors import LakeError
from flows.lake import Lake
from flows.settings import Settings
from flows.spark.io import copy_table, latest_partition, read_table, write_table
from flows.spark.jobs._entry import step_main
from flows.spark.schemas import DIMENSIONS, PNADC, PUBLICO_ALVO_PARTITIONS
from flows.spark.session import spark_session
from flows.spark.transforms.consumer import build_publico_alvo


def snapshot_dates(lake: Lake, ingestion_date: str) -> list[str]:
    """The processing dates the consumer is built from: the latest full extraction on or before the date,
    and the increments after it.

    A full extraction is an authoritative snapshot of the source: what it no longer holds (documents deleted
    at the source, records of older batches) leaves the consumer. Before it, only increments add.
    """
    dates = [d for d in lake.partitions("processing", layout.PNADC) if d <= ingestion_date]
    if not dates:
        raise LakeError(f"processing/pnadc has no committed partition on or before {ingestion_date}.")
    full = [d for d in dates if _is_full(lake, d)]
    return [d for d in dates if d >= full[-1]] if full else dates


def _is_full(lake: Lake, date: str) -> bool:
    """Whether the date's processing partition is a full snapshot: its raw batch is a full extraction and
    the partition was built from that very batch (its manifest's raw_run_id).

    A raw batch committed as full whose transform has not run (or failed) leaves the date's older processing
    partition, an increment: taken as a snapshot, it would silently drop every record before it.
    """
    raw_unit, unit = layout.raw_pnadc(date), layout.processing(layout.PNADC, date)
    raw = lake.manifest("raw", raw_unit) or {}
    if raw.get("mode") != "full":
        return False
    built_from = (lake.manifest("processing", unit) or {}).get("raw_run_id")
    if built_from != raw.get("run_id"):
        raise LakeError(
            f"processing for {date} is older than its raw batch: raw/{raw_unit} is a full extraction "
            f"(run {raw.get('run_id')}) but processing/{unit} was built from run {built_from}. Transform "
            f"{date} first (pnadc_to_processing), then build the consumer."
        )
    return True


def run(settings: Settings, ingestion_date: str, spark: SparkSession | None = None) -> dict[str, Any]:
    lake = Lake(settings)
    spark = spark or spark_session(settings, "processing_to_consumer")
    dates = snapshot_dates(lake, ingestion_date)
    pnadc: DataFrame = reduce(
        DataFrame.unionByName,
        [read_table(spark, lake, "processing", layout.processing(layout.PNADC, d), PNADC) for d in dates],
    )
    dims = {name: latest_partition(lake, "processing", name, ingestion_date) for name in DIMENSIONS}
    result: dict[str, Any] = {}
    for name, unit in dims.items():  # unchanged from processing: their files, copied
        copied = copy_table(lake, ("processing", unit), ("consumer", name), ingestion_date=ingestion_date)
        result[name] = copied["records"]
    ufs = read_table(spark, lake, "processing", dims[layout.UFS], DIMENSIONS[layout.UFS])
    fact = write_table(
        build_publico_alvo(pnadc, ufs, several_batches=len(dates) > 1),
        lake,
        "consumer",
        layout.PUBLICO_ALVO,
        partition_by=PUBLICO_ALVO_PARTITIONS,
        ingestion_date=ingestion_date,
        processing_dates=dates,
    )
    result[layout.PUBLICO_ALVO] = fact["records"]
    return result


def main(argv: list[str] | None = None) -> int:
    return step_main(layout.PROCESSING_TO_CONSUMER, run, argv)


if __name__ == "__main__":
    sys.exit(main())
