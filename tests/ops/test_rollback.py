"""Rollback of a consumer table on a real lake (local folder; S3 and Glue on moto's server): the earlier
run becomes current by compare-and-swap, a second rollback needs a run named, errors say what is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows import catalog
from flows.cli import main
from flows.errors import CommitConflict, DamagedLakeFile, RollbackError
from flows.lake import Lake, history, manifest_cas
from flows.layout import history_record
from flows.ops.rollback import PUBLISHED, check, kept, mark_published, rollback_table
from flows.settings import Settings
from tests.support.cloud_lake import cloud_settings, commit_parquet, make_bucket

BY = "tester@host"


def _regioes(rows: int) -> pa.Table:
    return pa.table({"id": list(range(1, rows + 1)), "sigla": [f"R{n}" for n in range(rows)]})


def _publico(rows: int) -> pa.Table:
    return pa.table(
        {
            "renda": [1000.0 * (n + 1) for n in range(rows)],
            "regiao_sigla": ["S"] * rows,
            "uf_sigla": ["PR"] * rows,
        }
    )


def _commit(lake: Lake, table: str, rows: int) -> str:
    if table == "publico_alvo":
        return commit_parquet(lake, table, _publico(rows), ("regiao_sigla", "uf_sigla"))["run_id"]
    return commit_parquet(lake, table, _regioes(rows))["run_id"]


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(Settings(lake_root=str(tmp_path / "lake"), lake_keep_runs=3))


def test_rollback_makes_the_previous_run_current_and_a_second_one_needs_a_run_named(lake: Lake) -> None:
    a, b, c = (_commit(lake, "regioes", rows) for rows in (2, 3, 5))
    assert [r.run_id for r in kept(lake, "regioes")] == [a, b, c]

    done = rollback_table(lake, "regioes", by=BY)
    assert (done.from_run_id, done.to_run_id, done.from_records, done.to_records) == (c, b, 5, 3)
    current = lake.manifest("consumer", "regioes")
    assert current["run_id"] == b and current["records"] == 3 and current["previous_run_id"] == c
    assert current["rollback"] == {"from_run_id": c, "to_run_id": b, "by": BY, "at": done.at}
    assert current["files"] == history.recorded(lake, "consumer", "regioes", b)["files"]
    assert _rows(lake, "regioes") == 3  # readers go through the manifest: they see run b's files
    mark_published(lake, done)  # as the flow does once the catalog and the answers follow

    with pytest.raises(RollbackError) as refused:
        rollback_table(lake, "regioes", by=BY)
    message = str(refused.value)
    assert "already a rollback" in message and "--to RUN_ID" in message and a in message and c in message
    assert "\n" not in message
    assert lake.manifest("consumer", "regioes")["run_id"] == b  # unchanged

    further = rollback_table(lake, "regioes", by=BY, to_run_id=a)
    assert (further.from_run_id, further.to_run_id) == (b, a)
    assert _rows(lake, "regioes") == 2
    undo = rollback_table(lake, "regioes", by=BY, to_run_id=c)  # a mistaken rollback is undone the same way
    assert undo.to_run_id == c and _rows(lake, "regioes") == 5


def test_a_rollback_stopped_before_its_publish_is_finished_by_the_same_command_then_refused(
    lake: Lake,
) -> None:
    a, b, c = (_commit(lake, "regioes", rows) for rows in (2, 3, 5))
    done = rollback_table(lake, "regioes", by=BY)  # killed here: the catalog and answers never followed
    swapped = lake.manifest("consumer", "regioes")

    for to in (None, b):  # no run named, or the run the rollback made current
        assert check(lake, "regioes", to) == b
        again = rollback_table(lake, "regioes", by="someone-else@host", to_run_id=to)
        assert again.resumed and (again.from_run_id, again.to_run_id) == (c, b)
        assert (again.from_records, again.to_records, again.by, again.at) == (5, 3, BY, done.at)
        assert again.resumed_by == "someone-else@host"
        assert "not recorded as carried through" in again.sentence()
        assert lake.manifest("consumer", "regioes") == swapped  # no second swap: still run b, from c

    mark_published(lake, again)
    assert lake.manifest("consumer", "regioes") == swapped  # the record is beside the manifest
    for to in (None, b):
        with pytest.raises(RollbackError, match="already a rollback" if to is None else "nothing to do"):
            check(lake, "regioes", to)
    with pytest.raises(RollbackError, match="already a rollback"):
        rollback_table(lake, "regioes", by=BY)
    further = rollback_table(lake, "regioes", by=BY, to_run_id=a)  # naming another run still goes there
    assert not further.resumed and further.to_run_id == a and _rows(lake, "regioes") == 2
    assert rollback_table(lake, "regioes", by=BY).resumed  # that one is not carried through yet


def test_naming_another_run_while_a_rollback_is_unfinished_rolls_back_to_it(lake: Lake) -> None:
    a, b, c = (_commit(lake, "regioes", rows) for rows in (2, 3, 5))
    rollback_table(lake, "regioes", by=BY)  # to b, never carried through
    assert check(lake, "regioes", c) == c and check(lake, "regioes", a) == a
    undo = rollback_table(lake, "regioes", by=BY, to_run_id=c)
    assert not undo.resumed and (undo.from_run_id, undo.to_run_id) == (b, c) and _rows(lake, "regioes") == 5


def test_an_unreadable_record_counts_as_none_and_the_rollback_is_finished_once(lake: Lake) -> None:
    for rows in (2, 3):
        _commit(lake, "regioes", rows)
    done = rollback_table(lake, "regioes", by=BY)
    (Path(lake.path("consumer", "regioes")) / PUBLISHED).write_text("not json")  # unreadable counts as none
    assert rollback_table(lake, "regioes", by=BY).resumed
    mark_published(lake, done)
    with pytest.raises(RollbackError, match="already a rollback"):
        rollback_table(lake, "regioes", by=BY)


def test_recording_a_rollback_carried_through_does_not_make_a_staged_commit_lose(lake: Lake) -> None:
    for rows in (2, 3):
        _commit(lake, "regioes", rows)
    done = rollback_table(lake, "regioes", by=BY)
    staging = lake.stage("consumer", "regioes")  # a run writing the table while the rollback publishes
    with staging.open("part-0.parquet") as out:
        pq.write_table(_regioes(4), out)
    staging.add_file("part-0.parquet", records=4)
    mark_published(lake, done)
    committed = lake.commit(staging, records=4, format="parquet")  # no CommitConflict
    assert lake.manifest("consumer", "regioes")["run_id"] == committed["run_id"]
    assert not rollback_table(lake, "regioes", by=BY).resumed  # a fresh rollback of the newer run


@pytest.mark.parametrize(
    "damage", ["[]", '{"run_id": "cut short', "another run's manifest", "another run's files"]
)
def test_a_damaged_run_record_is_listed_with_why_and_refused_by_name_while_the_others_roll_back(
    lake: Lake, damage: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, c = (_commit(lake, "regioes", rows) for rows in (2, 3, 5))
    record = Path(lake.path("consumer", history_record("regioes", b)))
    if damage.startswith("another run's"):  # made current, it would point readers at run a's files as b's
        manifest = history.recorded(lake, "consumer", "regioes", a)
        record.write_text(json.dumps(manifest if damage.endswith("manifest") else {**manifest, "run_id": b}))
    else:
        record.write_text(damage)

    runs = kept(lake, "regioes")
    assert [(r.run_id, r.records, r.current) for r in runs] == [(a, 2, False), (b, None, False), (c, 5, True)]
    assert runs[0].damaged is None and runs[2].damaged is None
    assert runs[1].damaged is not None and runs[1].damaged.startswith(f"its record {record} is damaged (")
    monkeypatch.setenv("VAMOSJUNTOS_LAKE_ROOT", lake.settings.lake_root)
    assert main(["rollback", "regioes", "--list"]) == 0  # the CLI lists every run, the damaged one with why
    listed = capsys.readouterr().out.splitlines()
    assert listed[0] == f"  {a}  2 records  finished {runs[0].finished_at}"
    assert listed[1] == f"  {b}  cannot be rolled back to: {runs[1].damaged}"
    assert listed[2].startswith(f"* {c}  5 records")

    before = lake.manifest("consumer", "regioes")
    for attempt in (lambda: check(lake, "regioes"), lambda: rollback_table(lake, "regioes", by=BY)):
        with pytest.raises(RollbackError) as refused:  # the previous run is b
            attempt()
        message = str(refused.value)
        assert message.startswith(f"consumer/regioes cannot roll back to run {b}: {runs[1].damaged}")
        assert f"--to RUN_ID (other runs in the lake: {a})." in message and "\n" not in message
    assert lake.manifest("consumer", "regioes") == before
    with pytest.raises(RollbackError, match=rf"runs in the lake: {a}; VAMOSJUNTOS"):  # b is not offered
        check(lake, "regioes", "20200101T000000000000-deadbeef")
    assert rollback_table(lake, "regioes", by=BY, to_run_id=a).to_run_id == a and _rows(lake, "regioes") == 2


def test_a_rollback_whose_from_record_is_damaged_is_still_finished(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its record gives only the count shown: finishing the rollback does not need it."""
    b, c = (_commit(lake, "regioes", rows) for rows in (3, 5))
    rollback_table(lake, "regioes", by=BY)  # to b, never carried through
    Path(lake.path("consumer", history_record("regioes", c))).write_text("[]")
    again = rollback_table(lake, "regioes", by=BY)
    assert again.resumed and (again.from_run_id, again.to_run_id, again.from_records) == (c, b, None)
    assert f"from run {c} (records unknown) to run {b} (3 records)" in again.sentence()

    # The current run's record damaged too: readers are unaffected (they read the table's manifest), only
    # a later return to it is lost, and --list says so rather than "cannot be rolled back to"
    Path(lake.path("consumer", history_record("regioes", b))).write_text("null")
    monkeypatch.setenv("VAMOSJUNTOS_LAKE_ROOT", lake.settings.lake_root)
    assert main(["rollback", "regioes", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith(f"* {b}  its record ") and listed[0].endswith(
        "is damaged (a JSON null, not an object): a later rollback cannot return to it"
    )
    assert listed[1].startswith(f"  {c}  cannot be rolled back to: its record ")
    assert _rows(lake, "regioes") == 3


RACES = {
    "a run commits": "was committed by run .* nothing was rolled back. Look",
    "the manifest is damaged": "had its manifest replaced by something .* rolled back. Restore the manifest",
    "the manifest is deleted": r"had its manifest deleted \(it reads as empty\) .* rolled back. Look",
}


@pytest.mark.parametrize("meanwhile", list(RACES))
def test_a_rollback_that_loses_its_race_says_nothing_was_rolled_back(
    lake: Lake, meanwhile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for rows in (3, 5):
        _commit(lake, "regioes", rows)
    manifest = Path(lake.path("consumer", "regioes", "_manifest.json"))
    swap = manifest_cas.swap

    def another_writer_first(*args: Any) -> str:
        monkeypatch.setattr(manifest_cas, "swap", swap)
        if meanwhile == "a run commits":
            _commit(lake, "regioes", 7)
        elif meanwhile == "the manifest is damaged":
            manifest.write_text('{"run_id": "x"}')
        else:
            manifest.unlink()
        return swap(*args)

    monkeypatch.setattr(manifest_cas, "swap", another_writer_first)
    # As a commit that loses: a damaged manifest is a damaged lake file, naming it
    lost = DamagedLakeFile if meanwhile == "the manifest is damaged" else CommitConflict
    with pytest.raises(lost, match=f"consumer/regioes {RACES[meanwhile]}") as raised:
        rollback_table(lake, "regioes", by=BY)
    if lost is DamagedLakeFile:
        assert raised.value.path == str(manifest)
    if meanwhile == "a run commits":
        assert lake.manifest("consumer", "regioes")["records"] == 7  # the other writer's run stands
    elif meanwhile == "the manifest is damaged":
        assert manifest.read_text() == '{"run_id": "x"}'  # left as found, for its owner to restore
    else:
        assert not manifest.exists()  # not recreated by the rollback that lost


def _rows(lake: Lake, table: str) -> int:
    return sum(pq.read_table(p).num_rows for p in lake.committed_files("consumer", table))


@pytest.mark.parametrize(
    ("table", "setup", "to", "says"),
    [
        (
            "pessoas",
            0,
            None,
            "unknown table 'pessoas': a rollback works on the consumer tables (publico_alvo",
        ),
        ("regioes", 0, None, "consumer/regioes was never committed: there is nothing to roll back."),
        ("regioes", 1, None, "consumer/regioes has no earlier run to roll back to: run "),
        (
            "regioes",
            2,
            "20200101T000000000000-deadbeef",
            "has no run 20200101T000000000000-deadbeef in the lake",
        ),
    ],
)
def test_a_rollback_that_cannot_happen_says_why_in_one_line(
    lake: Lake, table: str, setup: int, to: str | None, says: str
) -> None:
    for rows in range(setup):
        _commit(lake, "regioes", rows + 1)
    before = lake.manifest("consumer", "regioes")
    with pytest.raises(RollbackError) as err:
        rollback_table(lake, table, by=BY, to_run_id=to)
    assert says in str(err.value) and "\n" not in str(err.value)
    assert lake.manifest("consumer", "regioes") == before


def test_the_lake_keeps_the_newest_runs_and_their_manifests_only(tmp_path: Path) -> None:
    lake = Lake(Settings(lake_root=str(tmp_path / "lake")))  # the default: lake_keep_runs=2
    runs = [_commit(lake, "regioes", rows) for rows in (1, 2, 3, 4)]
    assert lake.runs("consumer", "regioes") == runs[-2:]
    assert history.recorded_runs(lake, "consumer", "regioes") == runs[-2:]  # dropped runs' records go too
    with pytest.raises(RollbackError, match=f"has no run {runs[0]} in the lake"):
        rollback_table(lake, "regioes", by=BY, to_run_id=runs[0])


@pytest.mark.integration
def test_rollback_then_publish_repoints_the_glue_table_at_the_earlier_run(
    moto: str, prefect_harness: None
) -> None:
    from flows.pipeline import publish

    make_bucket(moto)
    settings = cloud_settings(moto)
    lake = Lake(settings)
    for table in catalog.CONSUMER:
        _commit(lake, table, 3)
    good = lake.manifest("consumer", "publico_alvo")["run_id"]
    glue = catalog.glue_client(settings)

    def location() -> dict[str, Any]:
        table = glue.get_table(DatabaseName=settings.glue_database, Name="publico_alvo")["Table"]
        return {
            "location": table["StorageDescriptor"]["Location"],
            "run": table["Parameters"]["vamosjuntos.run_id"],
        }

    publish(settings=settings)
    bad = _commit(lake, "publico_alvo", 7)
    publish(settings=settings)
    assert location()["run"] == bad
    done = rollback_table(lake, "publico_alvo", by=BY)
    publish(settings=settings)
    assert (done.from_run_id, done.to_run_id) == (bad, good)
    assert location() == {"location": f"s3://vj-lake/consumer/publico_alvo/run={good}/", "run": good}
    assert lake.manifest("consumer", "publico_alvo")["previous_run_id"] == bad
