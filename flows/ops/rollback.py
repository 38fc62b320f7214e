"""Make an earlier committed run of a consumer table current again: the undo of a bad load.

The lake keeps a table's earlier runs (its previous run always, the newest `lake_keep_runs` runs) and each
run's manifest (flows/lake/history.py). Rolling back swaps the table's manifest back to an earlier
run's, by the same compare-and-swap as any commit (flows/lake/manifest_cas.py): readers see the bad run or the
earlier one, never a mix, and a run committing the table meanwhile wins (the rollback then changes nothing).

The new manifest is the earlier run's own, plus `previous_run_id` (the run rolled back from, so the lake
keeps it: a mistaken rollback can itself be undone with `--to`) and `rollback` (who, when, from, to).
Without an explicit run, a rollback goes to the previous run, and refuses when the table is already a
rollback: going further back is a decision, made by naming the run.

The catalog follows in a second step: the flow republishes it and answers the questions again, then
`mark_published` records that in `_rollback_published.json` beside the manifest (not in the manifest: a
second swap would change its version, and a run that had staged the table meanwhile would lose its
commit). A rollback stopped before then (killed, a Glue error) left the lake rolled back and the catalog
on the run it replaced: the same command again finishes it (`resumed`: no second swap, the catalog
republished, the questions answered again) instead of refusing it as "already a rollback".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from flows.errors import CommitConflict, DamagedLakeFile, RollbackError
from flows.lake import MANIFEST, Lake, history, manifest_cas, utcnow
from flows.lake.files import write_atomic
from flows.layout import CONSUMER_TABLES, history_record

ZONE = "consumer"
# Beside a table's manifest: the last rollback of the table that was carried through (catalog, answers)
PUBLISHED = "_rollback_published.json"


@dataclass(frozen=True)
class Rollback:
    table: str
    from_run_id: str
    to_run_id: str
    from_records: int | None
    to_records: int | None
    by: str
    at: str
    # An earlier rollback (its by and at) not recorded as carried through, finished now by `resumed_by`
    resumed: bool = False
    resumed_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def sentence(self) -> str:
        done = (
            f"{ZONE}/{self.table} rolled back from run {self.from_run_id} ({records(self.from_records)}) to "
            f"run {self.to_run_id} ({records(self.to_records)}) by {self.by}"
        )
        if self.resumed:
            return (
                f"{done} at {self.at} was not recorded as carried through (the catalog may still be on run "
                f"{self.from_run_id}): {self.resumed_by} finishes it"
            )
        return done


def records(count: int | None) -> str:
    """A run's record count as a rollback says it (unknown where its record was damaged)."""
    return "records unknown" if count is None else f"{count} records"


def tables() -> tuple[str, ...]:
    """The tables a rollback works on: the consumer tables the catalog exposes."""
    return CONSUMER_TABLES


@dataclass(frozen=True)
class KeptRun:
    run_id: str
    records: int | None
    finished_at: str | None
    current: bool
    damaged: str | None = None  # why its record cannot be made the table's manifest again


def kept(lake: Lake, table: str) -> list[KeptRun]:
    """The runs of a table that are in the lake with their manifest, oldest first. A run whose record was
    damaged is listed with why (the others can still be rolled back to)."""
    return _runs(lake, table, (_current(lake, table).payload or {}).get("run_id"))


def _runs(lake: Lake, table: str, current: str | None) -> list[KeptRun]:
    runs = []
    for run_id in history.kept_runs(lake, ZONE, table):
        try:
            m = _record(lake, table, run_id)
        except DamagedLakeFile as exc:
            runs.append(KeptRun(run_id, None, None, run_id == current, damaged=f"its record {exc.briefly()}"))
            continue
        if m is not None:  # None: a commit tidied it away since it was listed
            runs.append(KeptRun(run_id, m.get("records"), m.get("finished_at"), run_id == current))
    return runs


def _record(lake: Lake, table: str, run_id: str) -> dict[str, Any] | None:
    """A kept run's recorded manifest (None once it is gone), or DamagedLakeFile if it is not one a rollback
    can make current: that run's manifest (a record edited into another run's would point readers at files
    that are not the run's)."""
    record = history.recorded(lake, ZONE, table, run_id)
    if record is not None and (problem := manifest_cas.manifest_problem(record, run_id)):
        raise manifest_cas.damaged(lake.path(ZONE, history_record(table, run_id)), problem)
    return record


def _current(lake: Lake, table: str) -> manifest_cas.Versioned:
    if table not in tables():
        raise RollbackError(
            f"unknown table {table!r}: a rollback works on the consumer tables ({', '.join(tables())})."
        )
    current = manifest_cas.read_manifest(lake.fs(ZONE), lake.path(ZONE, table, MANIFEST))
    if current.payload is None:
        raise RollbackError(f"{ZONE}/{table} was never committed: there is nothing to roll back.")
    return current


def _others(lake: Lake, table: str, *besides: str) -> str:
    """The runs a rollback could go to instead (kept, their record sound), for a message."""
    runs = [r.run_id for r in _runs(lake, table, None) if r.damaged is None and r.run_id not in besides]
    return ", ".join(runs) if runs else "none"


def _target(
    lake: Lake, table: str, current: dict[str, Any], to_run_id: str | None
) -> tuple[str, dict[str, Any]]:
    """The run to make current and its recorded manifest, or RollbackError saying why there is none."""
    run_id = current["run_id"]
    if to_run_id is None:
        done = current.get("rollback")
        if done:
            raise RollbackError(
                f"{ZONE}/{table} is already a rollback (from run {done['from_run_id']} to run "
                f"{done['to_run_id']}, by {done['by']} at {done['at']}): to go further back, name the run "
                f"with --to RUN_ID (runs in the lake: {_others(lake, table, run_id)})."
            )
        to_run_id = current.get("previous_run_id")
        if to_run_id is None:
            raise RollbackError(
                f"{ZONE}/{table} has no earlier run to roll back to: run {run_id} is its first commit."
            )
    if to_run_id == run_id:
        raise RollbackError(f"{ZONE}/{table} is at run {run_id} already: nothing to do.")
    try:
        record = (
            _record(lake, table, to_run_id) if to_run_id in history.kept_runs(lake, ZONE, table) else None
        )
    except DamagedLakeFile as exc:
        others = _others(lake, table, run_id, to_run_id)
        raise RollbackError(
            f"{ZONE}/{table} cannot roll back to run {to_run_id}: its record {exc.briefly()}, changed "
            "outside the pipeline: restore it (from a backup, or the bucket's object versions), or roll "
            f"back to another run with --to RUN_ID (other runs in the lake: {others})."
        ) from None
    if record is None:
        raise RollbackError(
            f"{ZONE}/{table} has no run {to_run_id} in the lake to roll back to (runs in the lake: "
            f"{_others(lake, table, run_id)}; VAMOSJUNTOS_LAKE_KEEP_RUNS says how many are kept)."
        )
    return to_run_id, record


def _unfinished(lake: Lake, table: str, now: dict[str, Any], to_run_id: str | None) -> dict[str, Any] | None:
    """The table's current rollback when it was never recorded as carried through (`mark_published`) and
    this command asks for it again (no run named, or the run it made current): the one to finish."""
    block = now.get("rollback")
    if not block or to_run_id not in (None, now.get("run_id")):
        return None
    try:
        record = json.loads(lake.fs(ZONE).cat_file(lake.path(ZONE, table, PUBLISHED)))
    except (FileNotFoundError, ValueError):  # none, or not JSON: finishing again only republishes
        record = {}
    if isinstance(record, dict) and (record.get("to_run_id"), record.get("at")) == (
        now["run_id"],
        block["at"],
    ):
        return None
    return block


def unfinished(lake: Lake, table: str) -> bool:
    """Whether the table's current run is a rollback not carried through (the same command finishes it)."""
    return _unfinished(lake, table, _current(lake, table).payload or {}, None) is not None


def check(lake: Lake, table: str, to_run_id: str | None = None) -> str:
    """The run a rollback would make current, or RollbackError saying why it cannot (changes nothing)."""
    now = _current(lake, table).payload or {}
    if _unfinished(lake, table, now, to_run_id) is not None:
        return str(now["run_id"])
    return _target(lake, table, now, to_run_id)[0]


def rollback_table(lake: Lake, table: str, *, by: str, to_run_id: str | None = None) -> Rollback:
    """Make `to_run_id` (default: the previous run) the table's current run; see the module docstring.
    An unfinished rollback of the table is returned as it was (`resumed`), the lake left as it is."""
    current = _current(lake, table)
    now: dict[str, Any] = current.payload or {}
    left = _unfinished(lake, table, now, to_run_id)
    if left is not None:
        try:  # only its record count is shown: a damaged record does not stop finishing the rollback
            earlier = _record(lake, table, left["from_run_id"]) or {}
        except DamagedLakeFile:
            earlier = {}
        return Rollback(
            table=table,
            from_run_id=left["from_run_id"],
            to_run_id=now["run_id"],
            from_records=earlier.get("records"),
            to_records=now.get("records"),
            by=left["by"],
            at=left["at"],
            resumed=True,
            resumed_by=by,
        )
    target, earlier = _target(lake, table, now, to_run_id)
    done = Rollback(table, now["run_id"], target, now.get("records"), earlier.get("records"), by, utcnow())
    manifest = {
        **earlier,
        "previous_run_id": now["run_id"],
        "rollback": {k: getattr(done, k) for k in manifest_cas.ROLLBACK_FIELDS},
    }
    path = lake.path(ZONE, table, MANIFEST)
    try:
        manifest_cas.swap(lake.fs(ZONE), path, manifest, current.version)
    except manifest_cas.VersionChanged:
        raise _lost(lake, table, now["run_id"]) from None
    return done


def _lost(lake: Lake, table: str, from_run: str) -> CommitConflict | DamagedLakeFile:
    """Why a rollback's swap lost its race, as the errors a commit that lost raises (lake/commits.py's
    `_lost`): a damaged manifest is a DamagedLakeFile naming the file, the rest a CommitConflict."""
    try:
        winner = (lake.manifest(ZONE, table) or {}).get("run_id")
    except DamagedLakeFile as exc:  # replaced by something else meanwhile: say so, and that nothing moved
        lost = DamagedLakeFile(
            f"{ZONE}/{table} had its manifest replaced by something that is not a manifest "
            f"({exc.briefly()}) while rolling back from run {from_run}: nothing was rolled back. Restore the "
            "manifest (from a backup, or the bucket's object versions), then look at the table again before "
            "retrying."
        )
        lost.path, lost.what = exc.path, exc.what
        return lost
    changed = f"was committed by run {winner}" if winner else "had its manifest deleted (it reads as empty)"
    return CommitConflict(
        f"{ZONE}/{table} {changed} while rolling back from run {from_run}: nothing was rolled back. Look at "
        "the table again before retrying."
    )


def mark_published(lake: Lake, done: Rollback) -> None:
    """Record that the rollback `done` was carried through (the catalog republished, the questions answered
    again): the same command again then refuses instead of finishing it. The manifest is not touched."""
    record = {"table": done.table, "to_run_id": done.to_run_id, "at": done.at, "published_at": utcnow()}
    write_atomic(lake.fs(ZONE), lake.path(ZONE, done.table, PUBLISHED), json.dumps(record).encode())
