"""raw/ibge/<entity> → processing/<entity> for the three entities (+ processing/ufs from the mesoregions).

One step, so one Spark application (one pod on Kubernetes) for all the dimensions: they are a few hundred
rows, and a Spark start costs more than all of their work.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, StructType

from flows import layout
from flows.errors import LakeError
from flows.lake import Lake
from flows.settings import Settings
from flows.spark.io import committed_spark_files
from flows.spark.jobs._entry import step_main
from flows.spark.schemas import DIMENSIONS, IBGE_RAW, QUARANTINE
from flows.spark.session import spark_session
from flows.spark.small_tables import collect_tables, write_arrow_table
from flows.spark.step_conf import interpreted
from flows.spark.transforms.ibge import flatten, ufs_from_mesorregioes

log = logging.getLogger(__name__)
# Records per entity the step takes (every row crosses to the driver): far above Brazil's 558 microregions.
MAX_RECORDS = 100_000


def run(settings: Settings, ingestion_date: str, spark: SparkSession | None = None) -> dict[str, Any]:
    """Each entity's tables are their own lake units, committed atomically one by one.

    Every raw input is checked (manifest, checksums, size) before anything is written, so bad input fails
    the step with nothing written. Spark then computes all seven tables in one job (nothing is written if
    it fails), and the driver writes and commits each on its own: an entity commits its quarantine, then
    its dimension (then the UFs, for the mesoregions), so a write that fails leaves that table unwritten
    but the entity's tables committed before it stay visible; the other entities still commit (each table
    whole and correct on its own). The step then fails with the first error, and its retry (or a rerun of
    the date) replaces every table.
    """
    lake = Lake(settings)
    inputs = {entity: _raw_input(lake, entity, ingestion_date) for entity in layout.IBGE_ENTITIES}
    spark = spark or spark_session(settings, "ibge_to_processing")
    frames: dict[str, tuple[DataFrame, StructType]] = {}
    for entity, (files, _) in inputs.items():
        frames |= _entity_tables(spark, entity, ingestion_date, files)
    # A few hundred rows: interpreted, they run sooner than code compiled for them (spark/step_conf.py).
    with interpreted(spark):
        tables = collect_tables(frames)
    results: dict[str, Any] = {}
    failures: dict[str, Exception] = {}
    for entity, (_, manifest) in inputs.items():
        try:
            results[entity] = _commit(lake, entity, ingestion_date, tables, manifest)
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
    # Every row of the step crosses to the driver (flows/spark/small_tables.py): bounded before Spark reads.
    records = (manifest or {}).get("records") or 0
    if records > MAX_RECORDS:
        raise LakeError(
            f"raw/{raw_unit} holds {records:,} records; the IBGE step takes at most {MAX_RECORDS:,} per "
            "entity (Brazil has 558 microregions): not transformed. Check what was ingested for that date."
        )
    # The files verified and read are the ones this manifest names, so its run_id is their lineage.
    return committed_spark_files(lake, "raw", raw_unit, manifest), manifest


def _entity_tables(
    spark: SparkSession, entity: str, ingestion_date: str, files: list[str]
) -> dict[str, tuple[DataFrame, StructType]]:
    """One entity's tables by lake unit, each with its declared schema: its quarantine, its dimension (and
    the UFs, from the mesoregions)."""
    # The body is one JSON array (validated before it landed): read it whole, one row per element. One
    # partition: the duplicate check's window and the UF dedupe then need no shuffle.
    elements = (
        spark.read.text(files, wholetext=True)
        .selectExpr(
            "element_at(split(input_file_name(), '/'), -1) AS source_file",
            f"explode(from_json(value, '{ArrayType(IBGE_RAW[entity]).simpleString()}')) AS r",
        )
        .selectExpr("r.*", "source_file", "to_json(r) AS raw_record")
        .withColumn("ingestion_date", F.lit(ingestion_date))
        .coalesce(1)
    )
    valid, quarantine = flatten(entity, elements)
    tables = {
        layout.quarantine(entity, ingestion_date): (quarantine, QUARANTINE),
        layout.processing(entity, ingestion_date): (valid, DIMENSIONS[entity]),
    }
    if entity == layout.MESORREGIOES:  # the UFs are derived from it
        tables[layout.processing(layout.UFS, ingestion_date)] = (
            ufs_from_mesorregioes(valid),
            DIMENSIONS[layout.UFS],
        )
    return tables


def _commit(
    lake: Lake,
    entity: str,
    ingestion_date: str,
    tables: dict[str, pa.Table],
    raw_manifest: dict[str, Any] | None,
) -> dict[str, Any]:
    """One entity's tables, each committed on its own: the quarantine first, then the dimension (it records
    how many were quarantined), then the UFs for the mesoregions."""
    lineage = {"raw_run_id": raw_manifest["run_id"] if raw_manifest else None}
    q_unit = layout.quarantine(entity, ingestion_date)
    q = write_arrow_table(tables[q_unit], lake, "processing", q_unit, **lineage)
    p_unit = layout.processing(entity, ingestion_date)
    p = write_arrow_table(
        tables[p_unit],
        lake,
        "processing",
        p_unit,
        raw_records=raw_manifest["records"] if raw_manifest else None,
        quarantined=q["records"],
        **lineage,
    )
    result = {"records": p["records"], "quarantined": q["records"]}
    if entity == layout.MESORREGIOES:
        ufs_unit = layout.processing(layout.UFS, ingestion_date)
        result[layout.UFS] = write_arrow_table(tables[ufs_unit], lake, "processing", ufs_unit, **lineage)[
            "records"
        ]
    return result


def main(argv: list[str] | None = None) -> int:
    return step_main(layout.IBGE_TO_PROCESSING, run, argv)


if __name__ == "__main__":
    sys.exit(main())
