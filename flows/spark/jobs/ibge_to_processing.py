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
from flows.errors import InputTooLarge
from flows.lake import Lake
from flows.lake.commits import Staging
from flows.settings import Settings
from flows.spark.io import abort_quietly, committed_spark_files
from flows.spark.jobs._entry import step_main
from flows.spark.schemas import DIMENSIONS, IBGE_RAW, QUARANTINE
from flows.spark.session import spark_session
from flows.spark.small_tables import collect_tables, write_staged
from flows.spark.step_conf import interpreted
from flows.spark.transforms.ibge import flatten, ufs_from_mesorregioes

log = logging.getLogger(__name__)
# One entity's tables by lake unit, each with its declared schema.
Tables = dict[str, tuple[DataFrame, StructType]]
# Records per entity the step takes: every row crosses to the driver (as JSON text, then an Arrow table),
# so a few tens of MB at most; 36 times Brazil's 558 microregions.
MAX_RECORDS = 20_000


def run(settings: Settings, ingestion_date: str, spark: SparkSession | None = None) -> dict[str, Any]:
    """Each entity's tables are their own lake units, committed atomically one by one.

    Every raw input is checked (manifest, checksums, size) before anything is written, so bad input fails
    the step with nothing written. Each table's run is then staged, Spark computes all of them in one job
    (nothing is committed if it fails), and the driver writes and commits each on its own: an entity
    commits its quarantine, then its dimension (then the UFs, for the mesoregions), so a write that fails
    leaves that table unwritten but the entity's tables committed before it stay visible; the other
    entities still commit (each table whole and correct on its own). The step then fails with the first
    error, and its retry (or a rerun of the date) replaces every table.
    """
    lake = Lake(settings)
    inputs = {entity: _raw_input(lake, entity, ingestion_date) for entity in layout.IBGE_ENTITIES}
    spark = spark or spark_session(settings, "ibge_to_processing")
    frames = {e: _entity_tables(spark, e, ingestion_date, files) for e, (files, _) in inputs.items()}
    failures: dict[str, Exception] = {}
    staged: dict[str, dict[str, Staging]] = {}
    results: dict[str, Any] = {}
    try:
        _stage(lake, frames, staged, failures)
        # A few hundred rows: interpreted, they run sooner than code compiled for them (spark/step_conf.py).
        with interpreted(spark):
            computed = collect_tables(
                {u: t for e in frames if e not in failures for u, t in frames[e].items()}
            )
        for entity, (_, manifest) in inputs.items():
            if entity not in failures:
                try:
                    results[entity] = _commit(
                        lake, entity, ingestion_date, computed, staged[entity], manifest
                    )
                except Exception as exc:
                    failures[entity] = exc
    finally:
        _abort_unwritten(lake, staged)
    if failures:
        failed = [e for e in inputs if e in failures]
        summary = (
            f"ibge_to_processing {ingestion_date}: failed for {', '.join(failed)} (the table that failed "
            "is not committed; tables of theirs committed before it, such as the quarantine, stay; an "
            f"entity that could not be staged committed nothing); committed: {', '.join(results) or 'none'}. "
            "Rerun the step to replace them all."
        )
        first = failures[failed[0]]
        log.error("%s", summary)
        first.add_note(summary)
        raise first
    return results


def _stage(
    lake: Lake,
    frames: dict[str, Tables],
    staged: dict[str, dict[str, Staging]],
    failures: dict[str, Exception],
) -> None:
    """Every table's run, staged (into `staged`) before Spark computes it: a commit must still find the
    manifest its staging read (flows/lake), so another run's commit of a table meanwhile wins and this one
    fails with CommitConflict. An entity whose staging fails is recorded in `failures`; the others go on."""
    for entity, tables in frames.items():
        staged[entity] = {}
        try:
            for unit in tables:
                staged[entity][unit] = lake.stage("processing", unit)
        except Exception as exc:
            log.error("ibge_to_processing: could not stage %s's tables: %s", entity, exc)
            failures[entity] = exc


def _abort_unwritten(lake: Lake, staged: dict[str, dict[str, Staging]]) -> None:
    """Remove the runs no write took (nothing of theirs is committed), never hiding the step's own error."""
    for runs in staged.values():
        for staging in runs.values():
            abort_quietly(lake, staging)


def _raw_input(lake: Lake, entity: str, ingestion_date: str) -> tuple[list[str], dict[str, Any] | None]:
    raw_unit = layout.raw_ibge(entity, ingestion_date)
    manifest = lake.manifest("raw", raw_unit)
    # Every row of the step crosses to the driver (flows/spark/small_tables.py): bounded before Spark reads.
    records = manifest.get("records") if manifest else 0
    if records is None or records > MAX_RECORDS:
        held = "no record count" if records is None else f"{records:,} records"
        raise InputTooLarge(
            f"raw/{raw_unit} holds {held}; the IBGE step takes at most {MAX_RECORDS:,} per entity (Brazil "
            "has 558 microregions): not transformed, not retried. Check what was ingested for that date."
        )
    # The files verified and read are the ones this manifest names, so its run_id is their lineage.
    return committed_spark_files(lake, "raw", raw_unit, manifest), manifest


def _entity_tables(spark: SparkSession, entity: str, ingestion_date: str, files: list[str]) -> Tables:
    """One entity's tables by lake unit, each with its declared schema: its quarantine, its dimension (and
    the UFs, from the mesoregions)."""
    # The body is one JSON array (validated before it landed): read it whole, one row per element. One
    # partition: the duplicate check's window and the UF dedupe then need no shuffle. (Persisting the parse
    # was measured too: for a few hundred rows the re-parse costs nothing, and a cache is one more job.)
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
    computed: dict[str, pa.Table],
    staged: dict[str, Staging],
    raw_manifest: dict[str, Any] | None,
) -> dict[str, Any]:
    """One entity's tables, each committed on its own: the quarantine first, then the dimension (it records
    how many were quarantined), then the UFs for the mesoregions. Each run written is taken out of `staged`
    (what is left there was never written)."""
    lineage = {"raw_run_id": raw_manifest["run_id"] if raw_manifest else None}

    def write(unit: str, **extra: Any) -> dict[str, Any]:
        return write_staged(computed[unit], lake, staged.pop(unit), **lineage, **extra)

    q = write(layout.quarantine(entity, ingestion_date))
    p = write(
        layout.processing(entity, ingestion_date),
        raw_records=raw_manifest["records"] if raw_manifest else None,
        quarantined=q["records"],
    )
    result = {"records": p["records"], "quarantined": q["records"]}
    if entity == layout.MESORREGIOES:
        result[layout.UFS] = write(layout.processing(layout.UFS, ingestion_date))["records"]
    return result


def main(argv: list[str] | None = None) -> int:
    return step_main(layout.IBGE_TO_PROCESSING, run, argv)


if __name__ == "__main__":
    sys.exit(main())
