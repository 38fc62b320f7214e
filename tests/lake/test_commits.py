"""The raw zone's contract at the lake level: manifest last, invisible until committed, reruns replace."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy
import pytest

from flows.errors import CommitConflict, DamagedLakeFile, LakeError
from flows.lake import MANIFEST, Lake, history
from flows.settings import Settings

UNIT = "ibge/regioes/ingestion_date=2026-11-25"


def _write_batch(lake: Lake, unit: str, body: bytes, run_id: str | None = None):
    staging = lake.stage("raw", unit, run_id=run_id)
    with staging.open("regioes.json") as fh:
        fh.write(body)
    staging.add_file("regioes.json", records=1)
    return staging


def test_a_batch_without_manifest_is_invisible_to_readers(settings_for: Callable[..., Settings]) -> None:
    lake = Lake(settings_for())
    # Written but never committed: a crash before the manifest.
    staging = _write_batch(lake, UNIT, b'[{"id": 1}]')

    assert Path(staging.path, "regioes.json").exists()
    assert lake.partitions("raw", "ibge/regioes") == []
    assert lake.manifest("raw", UNIT) is None
    assert lake.committed_run_path("raw", UNIT) is None
    with pytest.raises(LakeError, match="no manifest"):
        lake.committed_files("raw", UNIT)

    other = "ibge/regioes/ingestion_date=2026-11-26"
    lake.commit(_write_batch(lake, other, b"[]"))
    assert lake.partitions("raw", "ibge/regioes") == ["2026-11-26"]  # only the committed date


def test_the_manifest_describes_the_files_and_is_written_atomically(
    settings_for: Callable[..., Settings],
) -> None:
    lake = Lake(settings_for())
    body = b'[{"id": 1, "sigla": "N", "nome": "Norte"}]'
    manifest = lake.commit(_write_batch(lake, UNIT, body), source="api", url="http://x/regioes")

    on_disk = json.loads(Path(lake.path("raw", UNIT, MANIFEST)).read_text())
    assert on_disk == manifest
    assert manifest["source"] == "api" and manifest["url"] == "http://x/regioes"
    assert manifest["records"] == 1 and manifest["version"]
    assert manifest["started_at"] <= manifest["finished_at"]
    [entry] = manifest["files"]
    assert entry["sha256"] == hashlib.sha256(body).hexdigest() and entry["bytes"] == len(body)
    # The manifest went through a temporary file and a rename (under the writers' lock, which stays):
    # nothing half-written is left around.
    unit = Path(lake.path("raw", UNIT))
    files = sorted(str(p.relative_to(unit)) for p in unit.rglob("*") if p.is_file())
    run = manifest["run_id"]
    assert files == [f"_history/{run}.json", MANIFEST, f"{MANIFEST}.lock", f"run={run}/regioes.json"]


def test_a_rerun_of_the_same_date_replaces_it_never_duplicates(
    settings_for: Callable[..., Settings],
) -> None:
    lake = Lake(settings_for())
    first = lake.commit(_write_batch(lake, UNIT, b"[1]"))
    second = lake.commit(_write_batch(lake, UNIT, b"[2]"))
    third = lake.commit(_write_batch(lake, UNIT, b"[3]"))

    assert lake.partitions("raw", "ibge/regioes") == ["2026-11-25"]
    assert third["previous_run_id"] == second["run_id"]
    files = lake.committed_files("raw", UNIT)
    assert len(files) == 1 and Path(files[0]).read_bytes() == b"[3]"
    # The replaced run stays for readers that opened it before the commit; older ones are gone.
    assert lake.runs("raw", UNIT) == sorted([second["run_id"], third["run_id"]])
    assert first["run_id"] not in lake.runs("raw", UNIT)


@pytest.mark.parametrize("marker", [b"[]", b'{"started_at": "2026-11-25T00:00:00+00:00"}', b"{half"])
def test_a_damaged_staging_marker_neither_fails_a_commit_nor_keeps_its_run(
    settings_for: Callable[..., Settings], marker: bytes
) -> None:
    """The markers of runs being written are read when a commit drops old runs, after its swap: one that is
    not a marker (an array, an object without its run id, JSON cut short) is as old as its file's name says,
    so its run goes once stale, and the commit that read it stands (it was a TypeError or a KeyError)."""
    lake = Lake(settings_for(lake_stale_staging_s=0))
    crashed = _write_batch(lake, UNIT, b"[half")
    [name] = Path(lake.path("raw", UNIT, "_staging")).iterdir()
    assert name.name == f"{crashed.run_id}.json"
    name.write_bytes(marker)
    committed = lake.commit(_write_batch(lake, UNIT, b"[1]"))
    assert lake.manifest("raw", UNIT)["run_id"] == committed["run_id"]
    assert crashed.run_id not in lake.runs("raw", UNIT)


def test_a_crashed_rerun_leaves_the_previous_commit_in_place(settings_for: Callable[..., Settings]) -> None:
    lake = Lake(settings_for())
    committed = lake.commit(_write_batch(lake, UNIT, b"[1]"))
    crashed = _write_batch(lake, UNIT, b"[half")  # the rerun dies before its manifest

    assert lake.manifest("raw", UNIT)["run_id"] == committed["run_id"]
    assert Path(lake.committed_files("raw", UNIT)[0]).read_bytes() == b"[1]"

    latest = lake.commit(_write_batch(lake, UNIT, b"[2]"))
    assert lake.manifest("raw", UNIT)["run_id"] == latest["run_id"]
    # The orphan looks like a writer still at work until its marker is older than lake_stale_staging_s.
    assert crashed.run_id in lake.runs("raw", UNIT)
    tidy = Lake(settings_for(lake_stale_staging_s=0))
    tidy.commit(_write_batch(tidy, UNIT, b"[3]"))  # the next good run tidies the stale orphan away
    assert crashed.run_id not in lake.runs("raw", UNIT)


def test_a_commit_whose_unit_manifest_was_damaged_meanwhile_fails_unretried_keeping_its_files(
    settings_for: Callable[..., Settings],
) -> None:
    """Replaced, since the run started, by something that is not a manifest: whether it names this run
    cannot be told, so the run's folder stays (the next commit drops it); the error is DamagedLakeFile (not
    retried) saying so and what to do, and the file is left as found."""
    lake = Lake(settings_for())
    lake.commit(_write_batch(lake, UNIT, b"[1]"))
    slow = _write_batch(lake, UNIT, b"[2]")
    manifest = Path(lake.path("raw", UNIT, MANIFEST))
    manifest.write_text('{"run_id": "x", "files": []}')
    with pytest.raises(DamagedLakeFile) as err:
        lake.commit(slow)
    said = str(err.value)
    assert said.startswith(f"raw/{UNIT}: run {slow.run_id} was not committed: since it started, the unit's")
    assert f"{manifest} is damaged (not a manifest:" in said and f"files stay in run={slow.run_id}/" in said
    assert err.value.path == str(manifest)
    assert manifest.read_text() == '{"run_id": "x", "files": []}'
    assert slow.run_id in lake.runs("raw", UNIT)
    assert not list(Path(lake.path("raw", UNIT, "_staging")).glob("*.json"))


def test_a_commit_whose_unit_manifest_was_deleted_meanwhile_says_so(
    settings_for: Callable[..., Settings],
) -> None:
    """Deleting a damaged manifest is a way out the lake's error gives: a run in flight then lost its base."""
    lake = Lake(settings_for())
    lake.commit(_write_batch(lake, UNIT, b"[1]"))
    slow = _write_batch(lake, UNIT, b"[2]")
    Path(lake.path("raw", UNIT, MANIFEST)).unlink()
    with pytest.raises(CommitConflict, match=r"its manifest was deleted since .*run this step again"):
        lake.commit(slow)
    assert slow.run_id not in lake.runs("raw", UNIT) and lake.manifest("raw", UNIT) is None
    lake.commit(_write_batch(lake, UNIT, b"[3]"))  # as the message says


def test_a_manifest_damaged_right_after_a_commit_s_swap_leaves_the_commit_standing_and_drops_nothing(
    settings_for: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Between the swap and the tidy-up another hand replaced the manifest: the commit happened (it returns),
    and with no telling which runs readers need, the tidy-up drops none and says why."""
    lake = Lake(settings_for(lake_keep_runs=0))
    first = lake.commit(_write_batch(lake, UNIT, b"[1]"))["run_id"]
    second = lake.commit(_write_batch(lake, UNIT, b"[2]"))["run_id"]
    manifest = Path(lake.path("raw", UNIT, MANIFEST))
    record = history.record

    def then_damaged(*args: Any) -> None:
        record(*args)
        manifest.write_text("[]")

    monkeypatch.setattr(history, "record", then_damaged)
    with caplog.at_level(logging.WARNING, logger="flows.lake.commits"):
        third = lake.commit(_write_batch(lake, UNIT, b"[3]"))["run_id"]
    assert lake.runs("raw", UNIT) == [first, second, third]  # the first, no longer needed, is kept too
    (warned,) = [r.getMessage() for r in caplog.records]
    assert warned.startswith(f"Committed raw/{UNIT} but could not drop old runs: The lake file {manifest}")


def test_a_writer_s_manifest_that_readers_would_refuse_is_not_committed(
    settings_for: Callable[..., Settings],
) -> None:
    """A count of another type (numpy's, saved as text by the encoder's default) fails the writer at its
    commit, instead of every later reader calling the manifest changed outside the pipeline."""
    lake = Lake(settings_for())
    lake.commit(_write_batch(lake, UNIT, b"[1]"))
    before = lake.manifest("raw", UNIT)
    staging = lake.stage("raw", UNIT)
    with staging.open("regioes.json") as fh:
        fh.write(b"[2]")
    staging.add_file("regioes.json", records=numpy.int64(1))  # type: ignore[arg-type]
    with pytest.raises(LakeError, match=rf"run {staging.run_id} not committed: the file entry .* is not one"):
        lake.commit(staging)
    assert lake.manifest("raw", UNIT) == before
