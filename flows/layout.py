"""The lake's layout: zone names, table lists and the name of every unit a job reads or writes.

The one place that spells a path inside a zone. A job names a unit (`raw_ibge("regioes", date)`), it
never writes `…/ingestion_date=…` itself, so renaming a table or a folder is a change here alone (like a
Dagster IO manager: the step asks, the manager knows where it lives). Names are relative to a zone's
root; `flows.lake.Lake` maps them onto a local folder or an S3 bucket and owns the commit protocol
(run folders, manifests) below each unit.

Plain data and string functions only: no imports from `flows`, so every module (the Spark driver's too)
can ask it without pulling anything else in.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Zone = Literal["raw", "processing", "consumer"]
ZONES: tuple[Zone, ...] = ("raw", "processing", "consumer")

# A batch's date is a Hive-style partition of its table: `<table>/ingestion_date=YYYY-MM-DD`.
PARTITION_KEY = "ingestion_date"

# --- tables ------------------------------------------------------------------------------------
# The IBGE entities: each an endpoint of the localidades API, a raw folder and a dimension table.
Entity = Literal["regioes", "mesorregioes", "microrregioes"]
REGIOES: Entity = "regioes"
MESORREGIOES: Entity = "mesorregioes"
MICRORREGIOES: Entity = "microrregioes"
IBGE_ENTITIES: tuple[Entity, ...] = (REGIOES, MESORREGIOES, MICRORREGIOES)
UFS = "ufs"  # derived from the mesoregions, not fetched
DIMENSIONS: tuple[str, ...] = (REGIOES, UFS, MESORREGIOES, MICRORREGIOES)
PNADC = "pnadc"  # the MongoDB source, its raw batches and its processing table
PUBLICO_ALVO = "publico_alvo"  # the target public (women aged 20 to 40)
PROCESSING_TABLES: tuple[str, ...] = (*DIMENSIONS, PNADC)
CONSUMER_TABLES: tuple[str, ...] = (PUBLICO_ALVO, *DIMENSIONS)

# --- raw ---------------------------------------------------------------------------------------
IBGE = "ibge"  # raw/ibge/<entity>/…: one folder per endpoint


def partition(ingestion_date: str) -> str:
    """The folder name of one ingestion date: `ingestion_date=2026-11-25`."""
    return f"{PARTITION_KEY}={ingestion_date}"


def dated(table: str, ingestion_date: str) -> str:
    """A table's partition of one ingestion date: `<table>/ingestion_date=<date>`."""
    return f"{table}/{partition(ingestion_date)}"


def raw_ibge(entity: str, ingestion_date: str) -> str:
    """raw: one IBGE endpoint's body as fetched on a date."""
    return dated(f"{IBGE}/{entity}", ingestion_date)


def raw_pnadc(ingestion_date: str) -> str:
    """raw: the MongoDB extraction of a date (its parts and manifest)."""
    return dated(PNADC, ingestion_date)


# Tables typed from another table's raw batch instead of one of their own: the UFs, from the mesoregions.
DERIVED_FROM: dict[str, str] = {UFS: MESORREGIOES}


def raw_source(table: str, ingestion_date: str) -> str:
    """raw: the batch a processing table of a date is typed from (its manifest's `raw_run_id` is that
    batch's run); `table` is a dimension, pnadc, or a quarantine's sub-table (`ibge_<entity>`)."""
    source = DERIVED_FROM.get(table, table).removeprefix(f"{IBGE}_")
    return raw_pnadc(ingestion_date) if source == PNADC else raw_ibge(source, ingestion_date)


# --- processing --------------------------------------------------------------------------------
QUARANTINE = "quarantine"  # processing/quarantine/<source>/…: rejected records with their reasons


def processing(table: str, ingestion_date: str) -> str:
    """processing: a typed table's partition (a dimension or pnadc)."""
    return dated(table, ingestion_date)


def quarantine_table(source: str) -> str:
    """The quarantine's sub-table for one source: `ibge_<entity>` or `pnadc`."""
    return source if source == PNADC else f"{IBGE}_{source}"


def quarantine(source: str, ingestion_date: str) -> str:
    """processing: the records of one source (an IBGE entity or pnadc) rejected on a date."""
    return dated(f"{QUARANTINE}/{quarantine_table(source)}", ingestion_date)


def gate_report(ingestion_date: str) -> str:
    """processing: the quality gate's verdict for a date (a JSON file, not a committed unit)."""
    return f"_quality/{partition(ingestion_date)}.json"


# --- consumer ----------------------------------------------------------------------------------
def consumer(table: str) -> str:
    """consumer: a table's current version (a snapshot: no date in its name)."""
    return table


ANSWERS = "_answers/latest.json"  # the latest run's answers
REPORT = "_reports/latest.html"  # the latest run's HTML report
DUCKDB_FILE = "vamosjuntos.duckdb"  # the local query engine's database, beside the consumer tables

BACKFILL = "_backfill"  # consumer/_backfill/…: one record per date a backfill completed


def backfill_record(ingestion_date: str) -> str:
    """consumer: the record of a date a backfill completed (its consumer runs and answers)."""
    return f"{BACKFILL}/{partition(ingestion_date)}.json"


# --- beside every unit -------------------------------------------------------------------------
HISTORY = "_history"  # <unit>/_history/<run id>.json: each committed run's manifest, for a rollback


def history_record(unit: str, run_id: str) -> str:
    """The kept manifest of one committed run of a unit (any zone)."""
    return f"{unit}/{HISTORY}/{run_id}.json"


# --- the Spark steps -------------------------------------------------------------------------
# Each a job, `python -m flows.spark.jobs.<step>`, run in this order for a date (flows/services/transform.py).
# What each commits is said here, where the units are named: the flow's side (lineage) must know it
# before the step runs, and cannot import a job (a job needs PySpark; the flow-run image has none).
IBGE_TO_PROCESSING = "ibge_to_processing"
PNADC_TO_PROCESSING = "pnadc_to_processing"
PROCESSING_TO_CONSUMER = "processing_to_consumer"
SPARK_STEPS: tuple[str, ...] = (IBGE_TO_PROCESSING, PNADC_TO_PROCESSING, PROCESSING_TO_CONSUMER)


def step_outputs(step: str, ingestion_date: str) -> list[tuple[Zone, str]]:
    """The units a Spark step commits for a date: each source's typed table and its rejects (the IBGE
    step also derives the UFs), or the consumer tables."""
    d = ingestion_date
    if step == PROCESSING_TO_CONSUMER:
        return [("consumer", consumer(t)) for t in CONSUMER_TABLES]
    sources = {IBGE_TO_PROCESSING: IBGE_ENTITIES, PNADC_TO_PROCESSING: (PNADC,)}.get(step)
    if sources is None:
        raise ValueError(f"unknown Spark step {step!r}; known: {', '.join(SPARK_STEPS)}")
    derived = tuple(t for t, source in DERIVED_FROM.items() if source in sources)
    units: list[tuple[Zone, str]] = [("processing", quarantine(s, d)) for s in sources]
    return units + [("processing", processing(t, d)) for t in (*sources, *derived)]


# --- outside the zones -------------------------------------------------------------------------
LOCKS = "_locks"  # beside a local lake's zones: a lock file per ingestion date, per table rolled back


def lock_file(ingestion_date: str) -> str:
    return f"{partition(ingestion_date)}.lock"


class Batch(NamedTuple):
    """One source's batch of a date: its raw unit, the processing unit it became, its rejects' unit."""

    raw: str
    processing: str
    quarantine: str


def batches(ingestion_date: str) -> list[Batch]:
    """Every source's batch of a date: raw count = processing count + quarantine count holds for each."""
    d = ingestion_date
    out = [Batch(raw_ibge(e, d), processing(e, d), quarantine(e, d)) for e in IBGE_ENTITIES]
    out.append(Batch(raw_pnadc(d), processing(PNADC, d), quarantine(PNADC, d)))
    return out


class Unit(NamedTuple):
    """A committed unit a run of one date leaves, with the table name a reader calls it by."""

    zone: Zone
    path: str
    table: str


def units_of(ingestion_date: str) -> list[Unit]:
    """Every unit a run of `ingestion_date` commits, zone by zone (consumer: the current tables)."""
    units = [Unit("raw", raw_ibge(e, ingestion_date), e) for e in IBGE_ENTITIES]
    units.append(Unit("raw", raw_pnadc(ingestion_date), PNADC))
    units += [Unit("processing", processing(t, ingestion_date), t) for t in PROCESSING_TABLES]
    units += [
        Unit("processing", quarantine(s, ingestion_date), f"{QUARANTINE} {quarantine_table(s)}")
        for s in (*IBGE_ENTITIES, PNADC)
    ]
    units += [Unit("consumer", consumer(t), t) for t in (*DIMENSIONS, PUBLICO_ALVO)]
    return units
