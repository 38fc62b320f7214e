"""The Spark steps on a real lake: entrypoints, quarantine from a real source, the gate, reruns."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from bson import ObjectId
from pymongo import MongoClient
from pyspark.sql import functions as F

from flows.errors import CommitConflict, DamagedLakeFile, InputTooLarge, LakeError, QualityGateFailed
from flows.lake import MANIFEST, STAGING, Lake, sha256_file
from flows.layout import IBGE_ENTITIES
from flows.pipeline import transform
from flows.quality import reconciliation, run_gate
from flows.settings import Settings
from flows.sources.ibge import SnapshotIbge
from flows.sources.local_mongo_seed import seed
from flows.sources.mongo import extract_pnadc
from flows.spark.jobs import ibge_to_processing, pnadc_to_processing
from flows.spark.kubernetes.names import LABEL_STEP
from flows.spark.runner import STEPS
from flows.spark.schemas import DIMENSIONS, QUARANTINE
from flows.spark.small_tables import FILE_NAME, arrow_schema
from flows.spark.step_conf import CACHE_COMPRESSED, JSON_EXACT_TEXT, ONE_FILE_COST, OPEN_COST
from flows.spark.transforms import pnadc_rejected
from tests.k8s.kube_standin import KubeStandIn

DATE = "2026-11-25"
IBGE_TABLES = ("regioes", "mesorregioes", "microrregioes", "ufs")
TABLES = {**DIMENSIONS, **{f"quarantine/ibge_{e}": QUARANTINE for e in IBGE_ENTITIES}}
ROOT = Path(__file__).resolve().parents[2]

# Documents that break the contract, as a real source might hold them, with the reason each must get.
MALFORMED: list[tuple[dict[str, Any], str]] = [
    ({"idade": 200}, "idade outside 0-130"),
    ({"idade": "vinte"}, "idade: not a lossless integer"),
    ({"idade": 30.5}, "idade: not a lossless integer"),
    ({"sexo": "X"}, "sexo not in domain: X"),
    ({"uf": "Atlântida"}, "uf not an IBGE state: Atlântida"),
    ({"renda": "1.300,00"}, "renda: not a lossless number"),
    ({"cor": 5}, "cor not in domain: 5"),
    ({"uf": {"nome": "Pará"}}, "uf: not a lossless text"),
    ({"trab": "talvez"}, "trab not in domain: talvez"),
]


def land_ibge_snapshot(lake: Lake) -> None:
    for entity in IBGE_ENTITIES:
        fetched = SnapshotIbge().fetch(entity)
        _land_raw(lake, entity, fetched.body, fetched.records, source="snapshot")


def _land_raw(lake: Lake, entity: str, body: bytes, records: int | None, source: str = "test") -> None:
    """One IBGE entity's raw unit of DATE, committed as the ingestion commits it."""
    staging = lake.stage("raw", f"ibge/{entity}/ingestion_date={DATE}")
    with staging.open(f"{entity}.json") as fh:
        fh.write(body)
    staging.add_file(f"{entity}.json", records=records)
    lake.commit(staging, source=source)


@pytest.fixture
def seeded(mongo_server: Any, settings_for: Any) -> tuple[Settings, Lake, list[ObjectId]]:
    """A source with 3,000 good documents and one per malformation, landed in raw with the IBGE snapshot."""
    seed(mongo_server.uri, "ibge", "pnadc20203", 3_000, 11)
    coll = MongoClient(mongo_server.uri)["ibge"]["pnadc20203"]
    template = coll.find_one({}, {"_id": 0})
    bad_ids = []
    for changes, _ in MALFORMED:
        bad_ids.append(coll.insert_one({**template, **changes}).inserted_id)
    settings = settings_for(mongo_uri=mongo_server.uri, mongo_batch_size=1_000)
    lake = Lake(settings)
    land_ibge_snapshot(lake)
    extract_pnadc(settings, lake, DATE)
    ibge_to_processing.run(settings, DATE)
    return settings, lake, bad_ids


def test_malformed_source_records_are_quarantined_with_reasons_and_counted(
    spark: Any, seeded: tuple[Settings, Lake, list[ObjectId]]
) -> None:
    settings, lake, bad_ids = seeded
    result = pnadc_to_processing.run(settings, DATE)
    assert result == {
        "raw": 3_000 + len(MALFORMED),
        "processing": 3_000,
        "quarantined": len(MALFORMED),
        "duplicates_checked": False,  # the extraction proved its `_id`s ascending
    }

    files = lake.committed_files("processing", f"quarantine/pnadc/ingestion_date={DATE}")
    rows = {r.record_id: r for r in spark.read.parquet(*files).collect()}
    for oid, (changes, reason) in zip(bad_ids, MALFORMED, strict=True):
        row = rows[str(oid)]
        assert reason in row.reason.split("; "), (changes, row.reason)
        assert json.loads(row.raw_record)["_id"] == {"$oid": str(oid)}  # the raw record, as it landed
        assert row.ingestion_date == DATE and row.source_file.startswith("part-")
    assert all(c.passed for c in reconciliation(lake, DATE))


def test_the_step_reads_one_file_per_task_types_once_and_types_again_only_the_rejected_blocks(
    spark: Any, seeded: tuple[Settings, Lake, list[ObjectId]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job's wiring (a local session's parallelism never changes, so only this shows the job keeps its
    guards): both passes read one file per task, so their lines are numbered alike; the valid records are
    written from the one typing of every line, with nothing cached; the quarantine pass types only the
    blocks of lines that hold a rejected record, and its count is checked (with its fingerprint) before the
    commit."""
    settings, _, _ = seeded
    calls = []
    real_staged = pnadc_to_processing.write_staged_table

    def conf(df: Any) -> tuple[str, str]:
        return df.sparkSession.conf.get(OPEN_COST), df.sparkSession.conf.get(JSON_EXACT_TEXT)

    def staging(df: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(("staged " + args[2].split("/")[0], *conf(df), kwargs.get("expect_records")))
        return real_staged(df, *args, **kwargs)

    typed_from = []
    real_type = pnadc_to_processing.type_pnadc

    def typing(lines: Any, uf_names: Any, **kwargs: Any) -> Any:
        typed_from.append((lines.count(), lines.sparkSession.conf.get(OPEN_COST), kwargs.get("keep_line")))
        return real_type(lines, uf_names, **kwargs)

    persisted = []
    frames = type(spark.range(1))  # the session's DataFrame class
    monkeypatch.setattr(frames, "persist", lambda df, *a, **k: persisted.append(df))
    # Blocks of 64 lines (a batch of 3,009 lines made to count as a large one): the pass and the quarantine
    # must number blocks alike, or the rejected lines are not found again.
    monkeypatch.setattr(pnadc_rejected, "MAX_BLOCKS", 64)
    monkeypatch.setattr(pnadc_to_processing, "write_staged_table", staging)
    monkeypatch.setattr(pnadc_to_processing, "type_pnadc", typing)
    pnadc_to_processing.run(settings, DATE)

    # Both written inside the step's settings: one file per task, JSON values as `from_json` gives them.
    assert calls == [
        ("staged pnadc", ONE_FILE_COST, "false", None),
        ("staged quarantine", ONE_FILE_COST, "false", len(MALFORMED)),
    ]
    (all_lines, cost, kept), (some_lines, cost_again, kept_again) = typed_from
    assert (all_lines, cost, kept) == (3_000 + len(MALFORMED), ONE_FILE_COST, None)
    # The rejected documents were inserted last: the last part (a part per batch of 1,000) holds only them,
    # within one block, and only they are typed again.
    assert (some_lines, cost_again, kept_again) == (len(MALFORMED), ONE_FILE_COST, True)
    assert persisted == []
    assert spark.conf.get(OPEN_COST) != ONE_FILE_COST  # restored after the step


def test_unparseable_lines_and_duplicates_in_raw_are_quarantined(
    spark: Any, seeded: tuple[Settings, Lake, list[ObjectId]], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, lake, _ = seeded
    # A raw batch written by hand: a copy of a document already there, and a line cut short.
    unit = f"pnadc/ingestion_date={DATE}"
    staging = lake.stage("raw", unit)
    fs = lake.fs("raw")
    import gzip

    first_file = lake.committed_files("raw", unit)[0]
    original = gzip.decompress(fs.cat_file(first_file)).decode().splitlines()
    extra = [original[0], original[1][:40]]
    body = gzip.compress(("\n".join(original + extra) + "\n").encode())
    with staging.open("part-00000.jsonl.gz") as fh:
        fh.write(body)
    staging.add_file("part-00000.jsonl.gz", records=len(original) + 2)
    lake.commit(staging, source="mongodb")

    persisted = []
    frames = type(spark.range(1))  # the session's DataFrame class
    real_persist = frames.persist

    def persist(df: Any, *args: Any, **kwargs: Any) -> Any:
        persisted.append(df.sparkSession.conf.get(CACHE_COMPRESSED))  # Spark takes it as it registers
        return real_persist(df, *args, **kwargs)

    monkeypatch.setattr(frames, "persist", persist)
    result = pnadc_to_processing.run(settings, DATE)
    assert result["duplicates_checked"]  # a batch written otherwise proves nothing about its `_id`s
    # The typed records and the repeated ids, cached without Spark's in-memory encodings for the duplicate
    # check and both outputs (tests/spark/test_step_conf.py shows the setting takes effect).
    assert persisted == ["false", "false"] and spark.conf.get(CACHE_COMPRESSED) == "true"
    files = lake.committed_files("processing", f"quarantine/pnadc/ingestion_date={DATE}")
    reasons = sorted(r.reason for r in spark.read.parquet(*files).collect())
    assert "duplicate _id" in reasons and "unparseable JSON" in reasons
    assert result["raw"] == result["processing"] + result["quarantined"] == len(original) + 2


def test_a_batch_claiming_distinct_ids_with_a_line_the_json_reader_skips_commits_nothing(
    spark: Any, seeded: tuple[Settings, Lake, list[ObjectId]]
) -> None:
    """The one pass parses with Spark's JSON reader, which takes a blank line for no record: in a batch our
    extraction did not write but whose manifest claims distinct `_id`s, the records judged then fall short
    of the raw records, and the step commits nothing rather than number lines otherwise."""
    settings, lake, _ = seeded
    unit = f"pnadc/ingestion_date={DATE}"
    pnadc_to_processing.run(settings, DATE)
    before = lake.manifest("processing", unit)["run_id"]
    import gzip

    first_file = lake.committed_files("raw", unit)[0]
    original = gzip.decompress(lake.fs("raw").cat_file(first_file)).decode().splitlines()
    staging = lake.stage("raw", unit)
    with staging.open("part-00000.jsonl.gz") as fh:
        fh.write(gzip.compress(("\n".join([original[0], "", *original[1:]]) + "\n").encode()))
    staging.add_file("part-00000.jsonl.gz", records=len(original) + 1)
    lake.commit(staging, source="mongodb", ids_ascending=True)

    with pytest.raises(LakeError, match=rf"{len(original) + 1} raw records, {len(original)} judged"):
        pnadc_to_processing.run(settings, DATE)
    assert lake.manifest("processing", unit)["run_id"] == before
    assert not list(Path(lake.path("processing", unit, STAGING)).glob("*.json"))


def test_a_clean_batch_s_empty_quarantine_lists_no_line_and_starts_no_python_worker(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing rejected: the raw lines are not listed again (over 32 files Spark lists in a job of its own),
    and the empty quarantine is an empty Arrow table of its schema, not a frame of Python rows, which would
    start Spark's Python workers for the write (about a second of CPU a run)."""
    written: list[tuple[Any, dict[str, Any]]] = []

    def write(df: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        written.append((df, kwargs))
        return {"records": 0}

    def listed(*args: Any) -> Any:
        raise AssertionError("the raw lines were listed")

    monkeypatch.setattr(pnadc_to_processing, "write_table", write)
    monkeypatch.setattr(pnadc_to_processing, "read_raw_lines", listed)
    lake = Lake(Settings(_env_file=None, lake_root=str(tmp_path / "lake")))
    seen = pnadc_rejected.Judgement(judged=10, rejected=0, blocks=())
    files = ["part-00000.jsonl.gz"]
    pnadc_to_processing._write_rejected(seen, spark, files, ["Acre"], lake, DATE, {"run_id": "r"})
    ((df, kwargs),) = written
    assert kwargs["expect_records"] == 0 and df.schema == QUARANTINE
    plan = df._jdf.queryExecution().executedPlan().toString()
    assert "ExistingRDD" not in plan and "LocalTableScan" in plan


def test_rerunning_a_step_replaces_its_partition(
    spark: Any, seeded: tuple[Settings, Lake, list[ObjectId]]
) -> None:
    settings, lake, _ = seeded
    unit = f"pnadc/ingestion_date={DATE}"
    first = pnadc_to_processing.run(settings, DATE)
    run1 = lake.manifest("processing", unit)["run_id"]
    second = pnadc_to_processing.run(settings, DATE)
    run2 = lake.manifest("processing", unit)["run_id"]
    assert first == second and run1 != run2
    assert spark.read.parquet(*lake.committed_files("processing", unit)).count() == first["processing"]
    third_run = pnadc_to_processing.run(settings, DATE)
    assert third_run == first
    runs = [p for p in lake.fs("processing").ls(lake.path("processing", unit)) if "/run=" in p]
    assert len(runs) == 2  # the committed run and the one it replaced; older runs are gone


def _runs(lake: Lake, unit: str) -> list[str]:
    return sorted(p for p in lake.fs("processing").ls(lake.path("processing", unit)) if "/run=" in p)


FAULTS = [
    "metrics unreported",
    "a rejection miscounted",
    "a record judged twice",
    "the quarantine fails",
    "interrupted (Ctrl-C)",
    "the lines numbered otherwise the second time",
]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_pass_that_cannot_account_for_every_record_commits_nothing_and_leaves_no_run(
    spark: Any, seeded: tuple[Settings, Lake, list[ObjectId]], monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """The valid records are written before the quarantine, staged: a run whose counts do not add up,
    whose quarantine fails, or whose quarantine pass finds other records than the pass rejected, leaves the
    tables as they were and removes its staged runs."""
    settings, lake, _ = seeded
    units = [f"pnadc/ingestion_date={DATE}", f"quarantine/pnadc/ingestion_date={DATE}"]
    pnadc_to_processing.run(settings, DATE)
    before = [(lake.manifest("processing", u)["run_id"], _runs(lake, u)) for u in units]
    seen_by_spark = pnadc_to_processing.judgement

    def judged(observation: Any, bits: int) -> Any:
        seen = seen_by_spark(observation, bits)
        if fault.startswith("interrupted"):  # after the valid records were written, staged
            raise KeyboardInterrupt
        if fault == "metrics unreported":
            return None
        if fault == "a record judged twice":  # the sum adds up, but not to the raw records
            return dataclasses.replace(seen, judged=seen.judged + 1, rejected=seen.rejected + 1)
        return dataclasses.replace(seen, rejected=seen.rejected + 1) if fault.startswith("a rej") else seen

    staged_write, read_lines = pnadc_to_processing.write_staged_table, pnadc_to_processing.read_raw_lines

    def failing(df: Any, lake: Lake, zone: str, unit: str, **kwargs: Any) -> Any:
        if unit.startswith("quarantine/"):
            raise OSError("no space left on device")
        return staged_write(df, lake, zone, unit, **kwargs)

    def renumbered(*args: Any) -> Any:  # pairs of lines swap numbers: the same blocks, each line misplaced
        return read_lines(*args).withColumn("line_no", F.col("line_no").bitwiseXOR(F.lit(1)))

    monkeypatch.setattr(pnadc_to_processing, "judgement", judged)
    if fault == "the quarantine fails":
        monkeypatch.setattr(pnadc_to_processing, "write_staged_table", failing)
    if fault.startswith("the lines numbered"):
        monkeypatch.setattr(pnadc_to_processing, "read_raw_lines", renumbered)
    if fault.startswith("interrupted"):
        with pytest.raises(KeyboardInterrupt):
            pnadc_to_processing.run(settings, DATE)
    else:
        expected = {
            "the quarantine fails": "no space left",
            "the lines numbered otherwise the second time": "not the ones the pass rejected",
        }.get(fault, "do not add up; not committed")
        with pytest.raises((LakeError, OSError), match=expected):
            pnadc_to_processing.run(settings, DATE)
    assert [(lake.manifest("processing", u)["run_id"], _runs(lake, u)) for u in units] == before
    assert not [m for u in units for m in Path(lake.path("processing", u, STAGING)).glob("*.json")]


def test_a_raw_batch_without_a_record_count_is_not_processed(
    spark: Any, seeded: tuple[Settings, Lake, list[ObjectId]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing could prove every record judged: the step refuses before Spark reads a raw line."""
    settings, lake, _ = seeded
    read = Lake.manifest

    def uncounted(self: Lake, zone: str, unit: str) -> Any:
        found = read(self, zone, unit)
        return {**found, "records": None} if zone == "raw" and found else found

    monkeypatch.setattr(Lake, "manifest", uncounted)
    with pytest.raises(LakeError, match="has no record count: not processed"):
        pnadc_to_processing.run(settings, DATE)
    assert lake.manifest("processing", f"pnadc/ingestion_date={DATE}") is None


def test_a_quiet_day_s_empty_batch_is_judged_in_one_pass_into_empty_tables(
    spark: Any, seeded: tuple[Settings, Lake, list[ObjectId]]
) -> None:
    settings, lake, _ = seeded
    quiet = "2026-11-26"
    assert extract_pnadc(settings, lake, quiet).manifest["records"] == 0  # nothing new since DATE
    assert pnadc_to_processing.run(settings, quiet) == {
        "raw": 0,
        "processing": 0,
        "quarantined": 0,
        "duplicates_checked": False,
    }
    for unit in (f"pnadc/ingestion_date={quiet}", f"quarantine/pnadc/ingestion_date={quiet}"):
        assert lake.manifest("processing", unit)["records"] == 0


def test_the_gate_stops_the_flow_before_consumer_is_replaced(
    prefect_harness: None, spark: Any, seeded: tuple[Settings, Lake, list[ObjectId]]
) -> None:
    settings, lake, _ = seeded
    transform(DATE, settings=settings.model_copy(update={"max_quarantine_share": 0.01}))
    good = lake.manifest("consumer", "publico_alvo")

    strict = settings.model_copy(update={"max_quarantine_share": 0.001})  # 9 of 3,009 is 0.3%: a breach
    with pytest.raises(QualityGateFailed, match="quarantine share"):
        transform(DATE, settings=strict)
    assert lake.manifest("consumer", "publico_alvo")["run_id"] == good["run_id"]
    assert spark.read.parquet(*lake.committed_files("consumer", "publico_alvo")).count() == good["records"]
    report = lake.read_json("processing", f"_quality/ingestion_date={DATE}.json")
    assert report["passed"] is False


def test_the_gate_catches_processing_built_from_an_older_raw_batch(
    spark: Any, seeded: tuple[Settings, Lake, list[ObjectId]]
) -> None:
    settings, lake, _ = seeded
    pnadc_to_processing.run(settings, DATE)
    assert all(c.passed for c in run_gate(lake, settings, DATE))
    extract_pnadc(settings, lake, DATE)  # raw replaced; processing not rebuilt
    failed = [c.name for c in run_gate(lake, settings, DATE) if not c.passed]
    assert failed == [f"pnadc/ingestion_date={DATE}: built from the current raw batch"]


def test_step_entrypoint_runs_alone_as_in_a_pod(tmp_path: Path) -> None:
    lake_root = tmp_path / "lake"
    land_ibge_snapshot(Lake(Settings(lake_root=str(lake_root))))
    cmd = [sys.executable, "-m", "flows.spark.jobs.ibge_to_processing"]
    done = subprocess.run(
        [*cmd, "--ingestion-date", DATE, "--lake-root", str(lake_root)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lake = Lake(Settings(lake_root=str(lake_root)))
    records = {t: lake.manifest("processing", f"{t}/ingestion_date={DATE}")["records"] for t in IBGE_TABLES}
    assert records == {"regioes": 5, "mesorregioes": 137, "microrregioes": 558, "ufs": 27}

    bad = subprocess.run([*cmd, "--ingestion-date", "25/11/2026"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "not a calendar date written YYYY-MM-DD" in bad.stderr


ENTRYPOINT_THEN_CHECK = """
import sys
from pyspark import SparkContext
from flows.spark.jobs.ibge_to_processing import main
code = main(sys.argv[1:])
print("exit", code, "spark still running:", SparkContext._active_spark_context is not None)
"""


def test_a_step_entrypoint_stops_its_spark_session(tmp_path: Path) -> None:
    """The driver stops Spark itself before it exits: on Kubernetes that is when Spark deletes its executor
    pods, their PVCs and ConfigMap (a JVM shutdown hook racing the exit may not get that far)."""
    lake_root = tmp_path / "lake"
    land_ibge_snapshot(Lake(Settings(lake_root=str(lake_root))))
    args = ["--ingestion-date", DATE, "--lake-root", str(lake_root)]
    command = [sys.executable, "-c", ENTRYPOINT_THEN_CHECK, *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "exit 0 spark still running: False"


def test_ibge_step_computes_its_seven_tables_in_one_spark_job(spark: Any, settings_for: Any) -> None:
    """No shuffle (one partition per entity), no read-back, no job per write: 7 tables (3 dimensions, their
    3 quarantines, the UFs) collected in one job, each committed as one Parquet file of its contract."""
    settings = settings_for()
    lake = Lake(settings)
    land_ibge_snapshot(lake)
    tracker = spark.sparkContext.statusTracker()
    before = set(tracker.getJobIdsForGroup(None))
    result = ibge_to_processing.run(settings, DATE)
    assert result == {
        "regioes": {"records": 5, "quarantined": 0},
        "mesorregioes": {"records": 137, "quarantined": 0, "ufs": 27},
        "microrregioes": {"records": 558, "quarantined": 0},
    }
    assert len(set(tracker.getJobIdsForGroup(None)) - before) == 1
    ufs = spark.read.parquet(*lake.committed_files("processing", f"ufs/ingestion_date={DATE}"))
    assert ufs.where("uf_sigla = 'DF'").select("regiao_nome").collect()[0][0] == "Centro-Oeste"
    for table in TABLES:
        manifest = lake.manifest("processing", f"{table}/ingestion_date={DATE}")
        assert manifest is not None and len(manifest["files"]) == 1
        (path,) = lake.committed_files("processing", f"{table}/ingestion_date={DATE}")
        footer = pq.ParquetFile(path)
        assert footer.metadata.num_rows == manifest["records"] == manifest["files"][0]["records"]
        assert manifest["files"][0]["sha256"] == sha256_file(lake.fs("processing"), path)
        assert footer.schema_arrow == arrow_schema(TABLES[table])  # the contract: names, types, nullability


def test_ibge_input_too_large_for_the_driver_fails_before_spark_reads_it(
    spark: Any, settings_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every row of the step crosses to the driver: an entity's raw unit above the bound (here lowered
    below the 558 microregions) fails the step by name, with nothing written and no Spark job run."""
    settings = settings_for()
    lake = Lake(settings)
    land_ibge_snapshot(lake)
    monkeypatch.setattr(ibge_to_processing, "MAX_RECORDS", 557)
    tracker = spark.sparkContext.statusTracker()
    before = set(tracker.getJobIdsForGroup(None))
    with pytest.raises(
        InputTooLarge, match=r"microrregioes/ingestion_date=\S+ holds 558 records; .* at most 557"
    ):
        ibge_to_processing.run(settings, DATE)
    assert set(tracker.getJobIdsForGroup(None)) == before
    assert not any(lake.manifest("processing", f"{t}/ingestion_date={DATE}") for t in IBGE_TABLES)
    entrypoint = ["--ingestion-date", DATE, "--lake-root", settings.lake_root]
    assert ibge_to_processing.main(entrypoint) == InputTooLarge.exit_code  # a Job's runner reads it back
    monkeypatch.setattr(ibge_to_processing, "MAX_RECORDS", 558)
    assert ibge_to_processing.run(settings, DATE)["microrregioes"]["records"] == 558


def test_a_damaged_raw_manifest_fails_the_step_by_name_with_its_own_exit_code(settings_for: Any) -> None:
    """A raw manifest edited into something else fails the step before Spark reads, naming the file, and
    the entrypoint exits with DamagedLakeFile's code: a Kubernetes Job's runner raises it again, unretried
    (the file reads the same the next time)."""
    settings = settings_for()
    lake = Lake(settings)
    land_ibge_snapshot(lake)
    manifest = Path(lake.path("raw", f"ibge/regioes/ingestion_date={DATE}", MANIFEST))
    manifest.write_text("[]")
    with pytest.raises(
        DamagedLakeFile, match=re.escape(f"{manifest} is damaged: a JSON array, not an object")
    ):
        ibge_to_processing.run(settings, DATE)
    assert not any(lake.manifest("processing", f"{t}/ingestion_date={DATE}") for t in IBGE_TABLES)
    entrypoint = ["--ingestion-date", DATE, "--lake-root", settings.lake_root]
    assert ibge_to_processing.main(entrypoint) == DamagedLakeFile.exit_code


def test_an_ibge_raw_unit_without_a_record_count_is_not_taken(settings_for: Any) -> None:
    """The bound fails closed: a raw manifest that does not say how many records it holds is refused."""
    settings = settings_for()
    lake = Lake(settings)
    land_ibge_snapshot(lake)
    _land_raw(lake, "regioes", SnapshotIbge().fetch("regioes").body, records=None)
    with pytest.raises(InputTooLarge, match=r"regioes/ingestion_date=\S+ holds no record count"):
        ibge_to_processing.run(settings, DATE)


REGIOES_WITH_REJECTS = [
    {"id": 1, "sigla": "N", "nome": "  Norte "},
    {"id": 2, "sigla": "NE", "nome": "   "},
    {"id": 1, "sigla": "N", "nome": "Norte de novo"},
    {"sigla": "SE", "nome": "Sudeste"},
    {"id": 5, "sigla": "CO", "nome": 'Centro-Oeste "DF"\tçã\n2'},
]


def test_ibge_rejects_reach_the_quarantine_file_whole_and_the_valid_rows_trimmed(settings_for: Any) -> None:
    """Rejects through the step's one job and the driver's write: a blank name, a repeated id, a missing
    id; the raw record kept as it came, and text with quotes, a tab, a newline and accents unchanged."""
    settings = settings_for()
    lake = Lake(settings)
    land_ibge_snapshot(lake)
    _land_raw(lake, "regioes", json.dumps(REGIOES_WITH_REJECTS).encode(), records=len(REGIOES_WITH_REJECTS))

    result = ibge_to_processing.run(settings, DATE)

    assert result["regioes"] == {"records": 2, "quarantined": 3}
    manifest = lake.manifest("processing", f"regioes/ingestion_date={DATE}")
    assert (manifest["records"], manifest["raw_records"], manifest["quarantined"]) == (2, 5, 3)
    (valid,) = lake.committed_files("processing", f"regioes/ingestion_date={DATE}")
    assert sorted(pq.read_table(valid).to_pylist(), key=lambda r: r["regiao_id"]) == [
        {"regiao_id": 1, "regiao_sigla": "N", "regiao_nome": "Norte"},
        {"regiao_id": 5, "regiao_sigla": "CO", "regiao_nome": 'Centro-Oeste "DF"\tçã\n2'},
    ]
    (rejected,) = lake.committed_files("processing", f"quarantine/ibge_regioes/ingestion_date={DATE}")
    rows = pq.read_table(rejected).to_pylist()
    assert {r["reason"]: (r["record_id"], json.loads(r["raw_record"])) for r in rows} == {
        "regiao_nome missing": ("2", REGIOES_WITH_REJECTS[1]),
        "duplicate regiao_id": ("1", REGIOES_WITH_REJECTS[2]),
        "regiao_id missing": (None, REGIOES_WITH_REJECTS[3]),
    }
    assert {(r["source"], r["ingestion_date"], r["source_file"]) for r in rows} == {
        ("ibge_regioes", DATE, "regioes.json")
    }


def test_an_ibge_table_committed_by_another_run_while_spark_computes_wins(
    settings_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each table is staged before the job that computes it: another run's commit of `regioes` meanwhile
    stays, this step's `regioes` fails with CommitConflict and leaves no run behind, the rest commit."""
    settings = settings_for()
    lake = Lake(settings)
    land_ibge_snapshot(lake)
    unit = f"regioes/ingestion_date={DATE}"
    collect = ibge_to_processing.collect_tables
    theirs: dict[str, Any] = {}

    def another_run_commits_first(frames):  # type: ignore[no-untyped-def]
        staging = lake.stage("processing", unit)
        with staging.open("theirs.parquet") as fh:
            fh.write(b"their run")
        staging.add_file("theirs.parquet", records=5)
        theirs.update(lake.commit(staging, source="another run"))
        return collect(frames)

    monkeypatch.setattr(ibge_to_processing, "collect_tables", another_run_commits_first)
    with pytest.raises(CommitConflict) as err:
        ibge_to_processing.run(settings, DATE)
    assert "committed: mesorregioes, microrregioes" in " ".join(err.value.__notes__)
    assert lake.manifest("processing", unit)["run_id"] == theirs["run_id"]
    assert lake.runs("processing", unit) == [theirs["run_id"]]  # the loser's run is gone
    assert lake.manifest("processing", f"quarantine/ibge_regioes/ingestion_date={DATE}") is not None
    assert all(lake.manifest("processing", f"{t}/ingestion_date={DATE}") for t in ("ufs", "microrregioes"))


def test_an_ibge_job_that_fails_commits_nothing_and_leaves_no_staged_run(
    settings_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for()
    lake = Lake(settings)
    land_ibge_snapshot(lake)

    def lost_executor(frames):  # type: ignore[no-untyped-def]
        raise RuntimeError("the job failed")

    monkeypatch.setattr(ibge_to_processing, "collect_tables", lost_executor)
    with pytest.raises(RuntimeError, match="the job failed"):
        ibge_to_processing.run(settings, DATE)
    for table in TABLES:
        unit = f"{table}/ingestion_date={DATE}"
        assert lake.manifest("processing", unit) is None and lake.runs("processing", unit) == []
        assert not list(Path(lake.path("processing", unit)).glob("_staging/*.json"))


def test_a_dimension_whose_write_fails_keeps_its_quarantine_and_drops_its_ufs_run(
    settings_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mesoregions' quarantine commits, their dimension's write fails: that table is not committed,
    the UFs (written after it) leave no run behind, the other entities commit, and the note says so."""
    settings = settings_for()
    lake = Lake(settings)
    land_ibge_snapshot(lake)
    write = ibge_to_processing.write_staged

    def unwritable_mesorregioes(table, lake_, staging, **extra):  # type: ignore[no-untyped-def]
        if staging.unit == f"mesorregioes/ingestion_date={DATE}":
            (Path(staging.path) / FILE_NAME).mkdir()  # its file cannot be written
        return write(table, lake_, staging, **extra)

    monkeypatch.setattr(ibge_to_processing, "write_staged", unwritable_mesorregioes)
    with pytest.raises(IsADirectoryError) as err:
        ibge_to_processing.run(settings, DATE)
    note = " ".join(err.value.__notes__)
    assert "failed for mesorregioes" in note and "committed: regioes, microrregioes" in note
    assert lake.manifest("processing", f"quarantine/ibge_mesorregioes/ingestion_date={DATE}") is not None
    for table in ("mesorregioes", "ufs"):  # neither committed, neither leaves a run or a marker behind
        unit = f"{table}/ingestion_date={DATE}"
        assert lake.manifest("processing", unit) is None and lake.runs("processing", unit) == []
        assert not list(Path(lake.path("processing", unit)).glob("_staging/*.json"))


def test_an_entity_that_fails_leaves_nothing_visible_and_the_others_commit(
    spark: Any, settings_for: Any, tmp_path: Path
) -> None:
    """An entity whose tables cannot be staged (here: a file where mesorregioes' quarantine folder must go)
    commits nothing (nor the UFs built from it); the other dimensions commit; the step fails with the
    cause; a rerun once the cause is gone commits them all."""
    settings = settings_for()
    lake = Lake(settings)
    land_ibge_snapshot(lake)
    blocker = Path(lake.path("processing", "quarantine", "ibge_mesorregioes"))
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")
    with pytest.raises(Exception) as err:
        ibge_to_processing.run(settings, DATE)
    assert "failed for mesorregioes" in " ".join(getattr(err.value, "__notes__", []))
    assert "committed: regioes, microrregioes" in " ".join(err.value.__notes__)
    committed = {t for t in IBGE_TABLES if lake.manifest("processing", f"{t}/ingestion_date={DATE}")}
    assert committed == {"regioes", "microrregioes"}

    blocker.unlink()
    assert ibge_to_processing.run(settings, DATE)["mesorregioes"]["ufs"] == 27
    assert all(lake.manifest("processing", f"{t}/ingestion_date={DATE}") for t in IBGE_TABLES)


def test_a_transform_run_starts_one_kubernetes_job_per_spark_step(
    prefect_harness: None, spark: Any, seeded: tuple[Settings, Lake, list[ObjectId]]
) -> None:
    """On Kubernetes each step is one Job (one Spark application): the IBGE dimensions are one of them, so
    a run starts exactly three. The stand-in scripts each Job's success; the lake is built beforehand by
    the same steps in local mode, so the quality gate between the Jobs sees real tables."""
    settings, _, _ = seeded
    pnadc_to_processing.run(settings, DATE)
    on_kubernetes = {
        "spark_runner": "kubernetes",
        "spark_image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/vamosjuntos-spark:3f2a9c1",
        "k8s_namespace": "vamosjuntos",
        "max_quarantine_share": 0.01,
    }
    with KubeStandIn() as kube:
        transform(DATE, settings=settings.model_copy(update={**on_kubernetes, "k8s_api_url": kube.url}))
        started = [post.body["metadata"]["labels"][LABEL_STEP] for post in kube.job_posts]
    assert started == list(STEPS)
    assert len(started) == 3
