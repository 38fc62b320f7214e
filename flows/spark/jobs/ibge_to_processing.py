"""raw/ibge/<entity> → processing/<entity> (+ processing/ufs from the mesoregions)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType

from flows.lake import Lake
from flows.settings import Settings
from flows.spark.io import committed_spark_files, write_table
from flows.spark.jobs._entry import step_main
from flows.spark.schemas import IBGE_RAW
from flows.spark.session import spark_session
from flows.spark.transforms.ibge import flatten, ufs_from_mesorregioes

ENTITIES = tuple(IBGE_RAW)


def run(
    settings: Settings, ingestion_date: str, entity: str, spark: SparkSession | None = None
) -> dict[str, Any]:
    lake = Lake(settings)
    spark = spark or spark_session(settings, f"ibge_to_processing:{entity}")
    raw_unit = f"ibge/{entity}/ingestion_date={ingestion_date}"
    raw_manifest = lake.manifest("raw", raw_unit)
    files = committed_spark_files(lake, "raw", raw_unit)
    # The body is one JSON array (validated before it landed): read it whole, one row per element. One
    # partition: the duplicate check's window and the UF dedupe then need no shuffle, so each write is one
    # Spark job. (Persisting the parse was measured too: for a few hundred rows the re-parse costs nothing
    # and materialising the cache is one more job.)
    elements = (
        spark.read.text(files, wholetext=True)
        .select(
            F.element_at(F.split(F.input_file_name(), "/"), -1).alias("source_file"),
            F.explode(F.from_json("value", ArrayType(IBGE_RAW[entity]))).alias("r"),
        )
        .select("r.*", "source_file", F.to_json("r").alias("raw_record"))
        .withColumn("ingestion_date", F.lit(ingestion_date))
        .coalesce(1)
    )
    valid, quarantine = flatten(entity, elements)
    lineage = {"raw_run_id": raw_manifest["run_id"] if raw_manifest else None}
    q = write_table(
        quarantine, lake, "processing", f"quarantine/ibge_{entity}/ingestion_date={ingestion_date}", **lineage
    )
    p = write_table(
        valid,
        lake,
        "processing",
        f"{entity}/ingestion_date={ingestion_date}",
        raw_records=raw_manifest["records"] if raw_manifest else None,
        quarantined=q["records"],
        **lineage,
    )
    result = {entity: p["records"], "quarantined": q["records"]}
    if entity == "mesorregioes":
        # From the frame just written, not a read-back of its files: the same rows, one job less.
        ufs_unit = f"ufs/ingestion_date={ingestion_date}"
        u = write_table(ufs_from_mesorregioes(valid), lake, "processing", ufs_unit, **lineage)
        result["ufs"] = u["records"]
    return result


def _flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--entity", required=True, choices=ENTITIES)


def main(argv: list[str] | None = None) -> int:
    return step_main("ibge_to_processing", run, argv, _flags)


if __name__ == "__main__":
    sys.exit(main())
