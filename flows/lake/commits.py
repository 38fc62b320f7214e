"""The commit protocol of a unit: stage a run aside, commit it by swapping the manifest, drop old runs.

    <zone root>/<unit>/run=<run id>/...files...
    <zone root>/<unit>/_staging/<run id>.json   <- "being written": from stage() until commit or abort
    <zone root>/<unit>/_manifest.json          <- written last: the commit

Commits are compare-and-swap (`flows/lake/manifest_cas.py`): `stage()` remembers the manifest's version
(its ETag on S3, its sha256 locally) and `commit()` replaces the manifest only if it is still that
version. Of two writers of one unit exactly one wins; the loser gets `CommitConflict`, removes its own run
folder and nothing else. (Where what replaced the manifest is not one, edited outside the pipeline, the
loser gets `DamagedLakeFile`, not retried, and keeps its folder: whom that file names cannot be told.) A
rerun in sequence stages after the previous commit, so it replaces it cleanly.

After a commit, old runs are removed, but never the run the manifest names, the run it replaced (readers
may still be on it), the newest `lake_keep_runs` committed runs (for a rollback: `history.py`)
or a run whose stager's marker is there and younger than `lake_stale_staging_s`
(another writer may still be filling it; an older marker is a crash's leftover). The listings are read
before the manifest, and a stager removes its marker only after its manifest swap, so a run is either seen
as being staged or named by the manifest read after: cleanup cannot race a commit into deleting its run.
"""

from __future__ import annotations

import logging
import os
import posixpath
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from flows import __version__
from flows.errors import CommitConflict, DamagedLakeFile, LakeError
from flows.lake import history, manifest_cas
from flows.lake.files import (
    new_run_id,
    run_started,
    sha256_file,
    strip_protocol,
    to_spark_path,
    utcnow,
    write_atomic,
)
from flows.layout import Zone

if TYPE_CHECKING:
    from flows.lake.zones import Lake

log = logging.getLogger(__name__)
MANIFEST = "_manifest.json"
STAGING = "_staging"  # one marker per run being written: <unit>/_staging/<run id>.json


@dataclass
class FileEntry:
    name: str  # relative to the unit folder, e.g. "run=…/part-00000.jsonl.gz"
    bytes: int
    sha256: str | None = None
    records: int | None = None


@dataclass
class Staging:
    """A run folder being written; nothing in it is visible until `Lake.commit`."""

    lake: Lake
    zone: Zone
    unit: str
    run_id: str
    started_at: str = field(default_factory=utcnow)
    files: list[FileEntry] = field(default_factory=list)
    # The manifest this writer read when it started: its commit succeeds only if it is still the one.
    base_version: str | None = None
    base_run_id: str | None = None

    @property
    def unit_path(self) -> str:
        return self.lake.path(self.zone, self.unit)

    @property
    def path(self) -> str:
        return posixpath.join(self.unit_path, f"run={self.run_id}")

    @property
    def spark_path(self) -> str:
        return to_spark_path(self.path)

    def add_file(
        self, name: str, *, records: int | None = None, sha256: str | None = None, size: int | None = None
    ) -> FileEntry:
        """Record a file written into the run folder (sizes and checksums are read back if not given)."""
        fs = self.lake.fs(self.zone)
        full = posixpath.join(self.path, name)
        entry = FileEntry(
            name=f"run={self.run_id}/{name}",
            bytes=fs.size(full) if size is None else size,
            sha256=sha256 or sha256_file(fs, full),
            records=records,
        )
        self.files.append(entry)
        return entry

    def add_written_files(self, suffix: str = ".parquet", *, checksums: bool = False) -> list[FileEntry]:
        """Record every data file a writer (e.g. Spark) left under the run folder."""
        fs = self.lake.fs(self.zone)
        found = sorted(p for p in fs.find(self.path) if p.endswith(suffix))
        for full in found:
            rel = posixpath.relpath(strip_protocol(full), strip_protocol(self.path))
            self.files.append(
                FileEntry(
                    name=f"run={self.run_id}/{rel}",
                    bytes=fs.size(full),
                    sha256=sha256_file(fs, full) if checksums else None,
                )
            )
        return self.files

    @contextmanager
    def open(self, name: str, mode: str = "wb") -> Iterator[IO[Any]]:
        fs = self.lake.fs(self.zone)
        full = posixpath.join(self.path, name)
        fs.makedirs(posixpath.dirname(full), exist_ok=True)
        with fs.open(full, mode) as fh:
            yield fh


# --- the protocol (Lake.stage, Lake.commit and Lake.abort call these) -------------------------
def stage(lake: Lake, zone: Zone, unit: str, run_id: str | None = None) -> Staging:
    """Start (or, with a run id, resume) a run of `unit`, remembering which manifest it replaces."""
    base = manifest_cas.read_manifest(lake.fs(zone), lake.path(zone, unit, MANIFEST))
    staging = Staging(lake, zone, unit, run_id or new_run_id())
    staging.base_version = base.version
    staging.base_run_id = base.payload["run_id"] if base.payload else None
    # The marker goes first: whoever sees the run folder also sees that it is being written.
    marker = {"run_id": staging.run_id, "started_at": staging.started_at}
    marker |= {"host": socket.gethostname(), "pid": os.getpid()}
    write_atomic(lake.fs(zone), _marker(lake, zone, unit, staging.run_id), manifest_cas.encode(marker))
    lake.fs(zone).makedirs(staging.path, exist_ok=True)
    return staging


def commit(lake: Lake, staging: Staging, **extra: Any) -> dict[str, Any]:
    """Swap the unit's manifest to the staged run if nobody committed since it started; drop old runs.

    Raises CommitConflict (after removing this run's folder) when another writer won the race, and
    DamagedLakeFile (keeping it) when the manifest was replaced by something that is not a manifest.
    """
    records = [f.records for f in staging.files if f.records is not None]
    manifest: dict[str, Any] = {
        "unit": f"{staging.zone}/{staging.unit}",
        "run_id": staging.run_id,
        "previous_run_id": staging.base_run_id,
        "started_at": staging.started_at,
        "finished_at": utcnow(),
        "version": __version__,
        "records": sum(records) if records else None,
        "files": [vars(f) for f in staging.files],
        **extra,
    }
    path = posixpath.join(staging.unit_path, MANIFEST)
    # As readers will read it back: a writer's mistake (a count of another type, saved as text) fails here,
    # not every later reader of a manifest "changed outside the pipeline".
    if problem := manifest_cas.manifest_problem(manifest_cas.decode(path, manifest_cas.encode(manifest))):
        raise LakeError(f"{staging.zone}/{staging.unit}: run {staging.run_id} not committed: {problem}.")
    try:
        manifest_cas.swap(lake.fs(staging.zone), path, manifest, staging.base_version)
    except manifest_cas.VersionChanged:
        raise _lost(lake, staging) from None
    # The commit has happened by now: failing to tidy up must not fail it (the next commit tries again).
    try:
        history.record(lake, staging.zone, staging.unit, manifest)  # for a rollback to it
        _drop_marker(lake, staging.zone, staging.unit, staging.run_id)
        _drop_runs(lake, staging.zone, staging.unit)
    except (OSError, DamagedLakeFile) as exc:  # damaged: replaced since our swap; no telling what to keep
        log.warning("Committed %s/%s but could not drop old runs: %s", staging.zone, staging.unit, exc)
    return manifest


def _lost(lake: Lake, staging: Staging) -> CommitConflict | DamagedLakeFile:
    lake.abort(staging)  # keeps the run's folder where the manifest names it, or cannot be read
    try:
        winner = (lake.manifest(staging.zone, staging.unit) or {}).get("run_id")
    except DamagedLakeFile as exc:  # not retried, as any damaged lake file: it reads the same next time
        lost = DamagedLakeFile(
            f"{staging.zone}/{staging.unit}: run {staging.run_id} was not committed: since it started, the "
            f"unit's manifest was replaced by something that is not a manifest ({exc.briefly()}). This "
            f"run's files stay in run={staging.run_id}/ until a commit drops them. Restore the manifest "
            "(from a backup, or the bucket's object versions) or delete it, then run this step again."
        )
        lost.path, lost.what = exc.path, exc.what
        return lost
    base = f"run {staging.base_run_id}" if staging.base_run_id else "nothing (no manifest yet)"
    if winner is None:  # deleted meanwhile (a way out a DamagedLakeFile gives): nobody's run is current
        return CommitConflict(
            f"{staging.zone}/{staging.unit}: run {staging.run_id} was not committed: when it started the "
            f"unit held {base}, and its manifest was deleted since (the unit reads as empty). This run's "
            "files were removed; run this step again to commit the unit."
        )
    return CommitConflict(
        f"{staging.zone}/{staging.unit}: run {staging.run_id} was not committed: when it started the "
        f"unit held {base}, and run {winner} committed it since (two writers of one unit raced). Run "
        f"{winner} is what readers see; this run's files were removed. If run {winner} is what you "
        "wanted, nothing is to be done; otherwise rerun this step once the other run has finished."
    )


def abort(lake: Lake, staging: Staging) -> None:
    """Remove a run that will not be committed (unless a manifest names it: then it is not ours alone)."""
    fs = lake.fs(staging.zone)
    try:
        current = lake.manifest(staging.zone, staging.unit) or {}
        named = staging.run_id in {current.get("run_id"), current.get("previous_run_id")}
    except DamagedLakeFile:  # no telling whom it names: the folder stays (the next commit drops it)
        named = True
    if not named and fs.exists(staging.path):
        fs.rm(staging.path, recursive=True)
    _drop_marker(lake, staging.zone, staging.unit, staging.run_id)


def _marker(lake: Lake, zone: Zone, unit: str, run_id: str) -> str:
    return lake.path(zone, unit, STAGING, f"{run_id}.json")


def _drop_marker(lake: Lake, zone: Zone, unit: str, run_id: str) -> None:
    with suppress(FileNotFoundError):  # gone already (e.g. dropped as stale by another commit)
        lake.fs(zone).rm_file(_marker(lake, zone, unit, run_id))


def _staged(lake: Lake, zone: Zone, unit: str) -> dict[str, str]:
    """Run id → when its stager started, for every run whose stager left its marker."""
    fs = lake.fs(zone)
    started: dict[str, str] = {}
    try:
        markers = fs.ls(lake.path(zone, unit, STAGING), detail=False)
    except FileNotFoundError:
        return started
    for entry in markers:
        if not entry.endswith(".json"):
            continue  # a marker being written (its temporary file)
        try:
            marker = manifest_cas.decode(entry, fs.cat_file(entry))
        except FileNotFoundError:
            continue  # its stager just finished
        except ValueError:  # unreadable (a crash mid-write on a disk), or no marker: as old as its name says
            marker = {}
        run_id = marker.get("run_id") or posixpath.basename(entry)[: -len(".json")]
        started[run_id] = marker.get("started_at") or run_started(run_id)
    return started


def _drop_runs(lake: Lake, zone: Zone, unit: str) -> None:
    """Remove runs no reader needs and no writer is filling (see the module's docstring)."""
    fs = lake.fs(zone)
    runs = lake.runs(zone, unit)
    staged = _staged(lake, zone, unit)
    current = lake.manifest(zone, unit) or {}  # read last: a run missing from `staged` is named here
    keep = {current.get("run_id"), current.get("previous_run_id")}
    keep |= history.newest(lake, zone, unit, lake.settings.lake_keep_runs)
    cutoff = datetime.now(UTC).timestamp() - lake.settings.lake_stale_staging_s
    live = {r for r, started in staged.items() if datetime.fromisoformat(started).timestamp() > cutoff}
    for run_id in runs:
        if run_id not in keep and run_id not in live:
            with suppress(FileNotFoundError):  # another commit's cleanup got there first
                fs.rm(lake.path(zone, unit, f"run={run_id}"), recursive=True)
            history.forget(lake, zone, unit, run_id)
    for run_id in staged.keys() - live:
        _drop_marker(lake, zone, unit, run_id)
    if current.get("run_id") in staged.keys() & live:  # its stager died between commit and tidy-up
        _drop_marker(lake, zone, unit, current["run_id"])
