"""Two writers of one unit: the manifest is swapped by compare-and-swap, on a local disk and on moto's S3.

The races are real: threads (and, locally, processes) stage the same unit, wait for each other at a
barrier, then commit at once; exactly one commit wins, and nothing a manifest names is ever deleted.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from flows.errors import CommitConflict, DamagedLakeFile, LakeError
from flows.lake import Lake, Staging
from flows.settings import Settings

UNIT = "ibge/regioes/ingestion_date=2026-11-25"
WRITERS = 4
ROUNDS = 5


@pytest.fixture(params=["local", "s3"])
def lake_settings(
    request: pytest.FixtureRequest, settings_for: Callable[..., Settings]
) -> Callable[..., Settings]:
    """Settings of a local lake, or of a lake on moto's S3 server over a real socket."""
    if request.param == "local":
        return settings_for
    endpoint, bucket = request.getfixturevalue("moto_s3")

    def make(**overrides: Any) -> Settings:
        return settings_for(lake_root=f"s3://{bucket}/lake", s3_endpoint_url=endpoint, **overrides)

    return make


def _stage(lake: Lake, body: bytes) -> Staging:
    staging = lake.stage("raw", UNIT)
    with staging.open("regioes.json") as fh:
        fh.write(body)
    staging.add_file("regioes.json", records=1)
    return staging


def _committed_body(lake: Lake) -> bytes:
    [path] = lake.committed_files("raw", UNIT)
    return lake.fs("raw").cat_file(path)


def _race(lake: Lake, writers: int) -> list[dict[str, Any] | CommitConflict]:
    """Each writer stages, waits until all have staged, then all commit at once."""
    barrier = threading.Barrier(writers)

    def write(i: int) -> dict[str, Any] | CommitConflict:
        staging = _stage(lake, f"[{i}]".encode())
        barrier.wait(timeout=30)
        try:
            return lake.commit(staging, writer=i)
        except CommitConflict as exc:
            exc.add_note(staging.run_id)
            return exc

    with ThreadPoolExecutor(writers) as pool:
        return list(pool.map(write, range(writers)))


def test_of_concurrent_writers_of_one_unit_exactly_one_wins(lake_settings: Callable[..., Settings]) -> None:
    lake = Lake(lake_settings())
    lake.commit(_stage(lake, b"[-1]"))  # replacing a committed unit, then creating one below
    for round_ in range(ROUNDS):
        before = lake.manifest("raw", UNIT)
        outcomes = _race(lake, WRITERS)
        [won] = [o for o in outcomes if isinstance(o, dict)]
        lost = [o for o in outcomes if isinstance(o, CommitConflict)]
        assert len(lost) == WRITERS - 1, f"round {round_}: {outcomes}"

        assert lake.manifest("raw", UNIT) == won
        assert won["previous_run_id"] == before["run_id"]
        assert _committed_body(lake) == f"[{won['writer']}]".encode()  # its files are all there
        for exc in lost:
            loser = exc.__notes__[0]
            message = str(exc)
            assert f"raw/{UNIT}" in message and loser in message and won["run_id"] in message
            assert "rerun" in message
            assert loser not in lake.runs("raw", UNIT)  # the loser removed its own staging
        # Readers may still be on the replaced run: it stays.
        assert set(lake.runs("raw", UNIT)) == {won["run_id"], before["run_id"]}


def test_the_first_commit_of_a_unit_is_a_race_too(lake_settings: Callable[..., Settings]) -> None:
    lake = Lake(lake_settings())
    outcomes = _race(lake, WRITERS)
    [won] = [o for o in outcomes if isinstance(o, dict)]
    assert won["previous_run_id"] is None
    assert lake.runs("raw", UNIT) == [won["run_id"]]
    assert _committed_body(lake) == f"[{won['writer']}]".encode()


def test_a_writer_that_started_before_the_last_commit_cannot_commit_over_it(
    lake_settings: Callable[..., Settings],
) -> None:
    lake = Lake(lake_settings())
    old = lake.commit(_stage(lake, b"[0]"))
    slow = lake.stage("raw", UNIT)  # e.g. a long Spark write, started from `old`
    fast = lake.commit(_stage(lake, b"[1]"))

    # The fast writer's commit left the slow one's staging alone: it is still being written.
    with slow.open("regioes.json") as fh:
        fh.write(b"[2]")
    slow.add_file("regioes.json", records=1)
    assert slow.run_id in lake.runs("raw", UNIT)

    with pytest.raises(CommitConflict) as conflict:
        lake.commit(slow)
    message = str(conflict.value)
    assert slow.run_id in message and fast["run_id"] in message and old["run_id"] in message
    assert lake.manifest("raw", UNIT) == fast and _committed_body(lake) == b"[1]"
    assert set(lake.runs("raw", UNIT)) == {old["run_id"], fast["run_id"]}

    again = lake.commit(_stage(lake, b"[3]"))  # a rerun after the race replaces cleanly
    assert again["previous_run_id"] == fast["run_id"] and _committed_body(lake) == b"[3]"
    assert set(lake.runs("raw", UNIT)) == {fast["run_id"], again["run_id"]}


def test_cleanup_keeps_a_live_staging_and_drops_a_crashed_one_once_stale(
    lake_settings: Callable[..., Settings],
) -> None:
    lake = Lake(lake_settings())
    committed = lake.commit(_stage(lake, b"[1]"))
    crashed = _stage(lake, b"[half")  # its writer died before committing: indistinguishable from a slow one

    lake.commit(_stage(lake, b"[2]"))
    assert crashed.run_id in lake.runs("raw", UNIT)  # it might still be writing: kept

    stale = Lake(lake_settings(lake_stale_staging_s=0))  # ... until its marker is older than the limit
    latest = stale.commit(_stage(stale, b"[3]"))
    assert crashed.run_id not in stale.runs("raw", UNIT)
    assert committed["run_id"] not in stale.runs("raw", UNIT)
    assert stale.manifest("raw", UNIT) == latest and _committed_body(stale) == b"[3]"
    assert _markers(stale) == []


def _markers(lake: Lake) -> list[str]:
    try:
        return lake.fs("raw").ls(lake.path("raw", UNIT, "_staging"), detail=False)
    except FileNotFoundError:  # S3 has no empty folders
        return []


def test_the_s3_manifest_is_replaced_only_by_a_conditional_put(
    moto_s3: tuple[str, str], settings_for: Callable[..., Settings]
) -> None:
    """What moto's S3 enforces: a PUT naming a stale ETag, or creating over an existing object, fails."""
    endpoint, bucket = moto_s3
    lake = Lake(settings_for(lake_root=f"s3://{bucket}/lake", s3_endpoint_url=endpoint))
    first = lake.commit(_stage(lake, b"[1]"))
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    key = f"lake/raw/{UNIT}/_manifest.json"
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    slow = _stage(lake, b"[2]")
    assert slow.base_version == etag and slow.base_run_id == first["run_id"]

    s3.put_object(Bucket=bucket, Key=key, Body=b"{}", IfMatch=etag)  # someone else swaps it meanwhile
    lost = r'not committed: since it started.*\(s3://\S+ is damaged \(not a manifest: "run_id" is null'
    with pytest.raises(DamagedLakeFile, match=lost):  # not a manifest: not retried, whom it names unknown
        lake.commit(slow)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"{}"
    assert lake.runs("raw", UNIT) == sorted([first["run_id"], slow.run_id])  # kept: it may be named
    assert _markers(lake) == []
    with pytest.raises(s3.exceptions.ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"{}", IfNoneMatch="*")


# --- processes on one local disk -----------------------------------------------------------------
def _process_writer(root: str, i: int, barrier: Any, results: Any) -> None:
    lake = Lake(Settings(lake_root=root))
    staging = _stage(lake, f"[{i}]".encode())
    barrier.wait(timeout=60)
    try:
        results.put((i, lake.commit(staging)["run_id"]))
    except CommitConflict as exc:
        results.put((i, f"conflict: {exc}"))
    except LakeError as exc:  # pragma: no cover - reported, not expected
        results.put((i, f"error: {exc}"))


def test_processes_racing_on_a_local_unit_one_wins(settings_for: Callable[..., Settings]) -> None:
    root = settings_for().lake_root
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_process_writer, args=(root, i, barrier, results)) for i in range(3)]
    for p in procs:
        p.start()
    outcomes = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    winners = [run for run in outcomes.values() if not run.startswith(("conflict", "error"))]
    assert len(winners) == 1, outcomes
    assert sum(o.startswith("conflict: ") for o in outcomes.values()) == 2, outcomes
    lake = Lake(Settings(lake_root=root))
    assert lake.manifest("raw", UNIT)["run_id"] == winners[0] and lake.runs("raw", UNIT) == winners


# --- Spark's writes ------------------------------------------------------------------------------
class _CommitTogether(Lake):
    """The real lake, holding each commit until every writer has staged and written its run."""

    def __init__(self, settings: Settings, barrier: threading.Barrier) -> None:
        super().__init__(settings)
        self.barrier = barrier

    def commit(self, staging: Staging, **extra: Any) -> dict[str, Any]:
        self.barrier.wait(timeout=120)
        return super().commit(staging, **extra)


def test_spark_writes_of_one_table_race_and_one_wins(
    spark: Any, settings_for: Callable[..., Settings]
) -> None:
    """write_table takes the version when it stages, before Spark writes: the slower commit loses."""
    from flows.spark.io import write_table

    lake = _CommitTogether(settings_for(), threading.Barrier(2))
    table = "pnadc/ingestion_date=2026-11-25"

    def write(i: int) -> dict[str, Any] | CommitConflict:
        df = spark.createDataFrame([(i, "x")] * (i + 1), "writer int, v string")
        try:
            return write_table(df, lake, "processing", table)
        except CommitConflict as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(write, range(2)))
    [won] = [o for o in outcomes if isinstance(o, dict)]
    [lost] = [o for o in outcomes if isinstance(o, CommitConflict)]
    assert won["run_id"] in str(lost)
    assert lake.runs("processing", table) == [won["run_id"]]  # the loser's Parquet is gone, not the winner's
    assert spark.read.parquet(*lake.committed_files("processing", table)).count() == won["records"]
