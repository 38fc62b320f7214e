"""raw/ibge/<entity> → processing/<entity> for the three entities (+ processing/ufs from the mesoregions).

One step, so one Spark application (one pod on Kubernetes) for all the dimensions: they are a few hundred
rows, and a Spark start costs more than all of their work.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType

from flows import layout
from flows.lake import Lake
from flows.settings import Settings
from flows.spark.io import committed_spark_files, write_table
from flows.spark.jobs._entry import step_main
from flows.spark.schemas import IBGE_RAW
from flows.spark.session import spark_session
from flows.spark.step_conf import interpreted
from flows.spark.transforms.ibge import flatten, ufs_from_mesorregioes

log = logging.getLogger(__name__)


def run(settings: Settings, ingestion_date: str, spark: SparkSession | None = None) -> dict[str, Any]:
    """Each entity's tables are their own lake units, committed atomically one by one.

    Every raw input is checked (manifest, checksums) before anything is written, so bad input fails the
    step with nothing written. Past that, each table commits on its own: an entity commits its quarantine,
    then its dimension (then the UFs, for the mesoregions), so a write that fails leaves that table
    unwritten but the entity's tables committed before it stay visible; the other entities still commit
    (each table whole and correct on its own). The step then fails with the first error, and its retry (or
    a rerun of the date) replaces every table.
    """
    lake = Lake(settings)
    inputs = {entity: _raw_input(lake, entity, ingestion_date) for entity in layout.IBGE_ENTITIES}
    spark = spark or spark_session(settings, "ibge_to_processing")
    results: dict[str, Any] = {}
    failures: dict[str, Exception] = {}
    # A few hundred rows: interpreted, they run sooner than code compiled for them (spark/step_conf.py).
    with interpreted(spark):
        for entity, (files, manifest) in inputs.items():
            try:
                results[entity] = _dimension(spark, lake, entity, ingestion_date, files, manifest)
            except Exception as exc:
                failures[entity] = exc
    if failures:
        entity, first = next(iter(failures.items()))
        summary = (
            f"ibge_to_processing {ingestion_date}: failed for {', '.join(failures)} (the table that "
            f"failed is not committed; tables of theirs committed before it, such as the quarantine, "
            f"stay); committed: {', '.join(results) or 'none'}. Rerun the step to replace them all."
        )
        log.error("%s", summary)
        first.add_note(summary)
        raise first
    return results


def _raw_input(lake: Lake, entity: str, ingestion_date: str) -> tuple[list[str], dict[str, Any] | None]:
    raw_unit = layout.raw_ibge(entity, ingestion_date)
    manifest = lake.manifest("raw", raw_unit)
    # The files verified and read are the ones this manifest names, so its run_id is their lineage.
    return committed_spark_files(lake, "raw", raw_unit, manifest), manifest


def _dimension(
    spark: SparkSession,
    lake: Lake,
    entity: str,
    ingestion_date: str,
    files: list[str],
    raw_manifest: dict[str, Any] | None,
) -> dict[str, Any]:
    """One entity: its dimension, its quarantine (and the UFs, from the mesoregions)."""
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
    q = write_table(quarantine, lake, "processing", layout.quarantine(entity, ingestion_date), **lineage)
    p = write_table(
        valid,
        lake,
        "processing",
        layout.processing(entity, ingestion_date),
        raw_records=raw_manifest["records"] if raw_manifest else None,
        quarantined=q["records"],
        **lineage,
    )
    result = {"records": p["records"], "quarantined": q["records"]}
    if entity == layout.MESORREGIOES:  # the UFs are derived from it
        # From the frame just written, not a read-back of its files: the same rows, one job less.
        ufs_unit = layout.processing(layout.UFS, ingestion_date)
        u = write_table(ufs_from_mesorregioes(valid), lake, "processing", ufs_unit, **lineage)
        result[layout.UFS] = u["records"]
    return result


def main(argv: list[str] | None = None) -> int:
    return step_main(layout.IBGE_TO_PROCESSING, run, argv)


if __name__ == "__main__":
    sys.exit(main())
