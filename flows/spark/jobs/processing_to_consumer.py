"""processing → consumer: the target public (latest record per _id since the last full extraction) and the
dimensions."""

from __future__ import annotations

import sys
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from flows.errors import LakeError
from flows.lake import Lake
from flows.settings import Settings
from flows.spark.io import latest_partition, read_table, write_table
from flows.spark.jobs._entry import step_main
from flows.spark.schemas import DIMENSIONS, PNADC, PUBLICO_ALVO_PARTITIONS
from flows.spark.session import spark_session
from flows.spark.transforms.consumer import build_publico_alvo

FACT = "publico_alvo"


def snapshot_dates(lake: Lake, ingestion_date: str) -> list[str]:
    """The processing dates the consumer is built from: the latest full extraction on or before the date,
    and the increments after it.

    A full extraction is an authoritative snapshot of the source: what it no longer holds (documents deleted
    at the source, records of older batches) leaves the consumer. Before it, only increments add.
    """
    dates = [d for d in lake.partitions("processing", "pnadc") if d <= ingestion_date]
    if not dates:
        raise LakeError(f"processing/pnadc has no committed partition on or before {ingestion_date}.")
    full = [
        d for d in dates if (lake.manifest("raw", f"pnadc/ingestion_date={d}") or {}).get("mode") == "full"
    ]
    return [d for d in dates if d >= full[-1]] if full else dates


def run(settings: Settings, ingestion_date: str, spark: SparkSession | None = None) -> dict[str, Any]:
    lake = Lake(settings)
    spark = spark or spark_session(settings, "processing_to_consumer")
    dates = snapshot_dates(lake, ingestion_date)
    pnadc: DataFrame = reduce(
        DataFrame.unionByName,
        [read_table(spark, lake, "processing", f"pnadc/ingestion_date={d}", PNADC) for d in dates],
    )
    dims = {
        name: read_table(
            spark, lake, "processing", latest_partition(lake, "processing", name, ingestion_date), schema
        )
        for name, schema in DIMENSIONS.items()
    }
    result: dict[str, Any] = {}
    for name, df in dims.items():
        result[name] = write_table(df, lake, "consumer", name, ingestion_date=ingestion_date)["records"]
    fact = write_table(
        build_publico_alvo(pnadc, dims["ufs"], several_batches=len(dates) > 1),
        lake,
        "consumer",
        FACT,
        partition_by=PUBLICO_ALVO_PARTITIONS,
        ingestion_date=ingestion_date,
        processing_dates=dates,
    )
    result[FACT] = fact["records"]
    return result


def main(argv: list[str] | None = None) -> int:
    return step_main("processing_to_consumer", run, argv)


if __name__ == "__main__":
    sys.exit(main())
