"""The lake: zones, paths, and atomic commits with manifests, for local folders and s3:// alike.

Every unit of data (a raw batch, a table partition, a whole table version) lives in its own folder:

    <zone root>/<unit>/run=<run id>/...files...
    <zone root>/<unit>/_staging/<run id>.json   <- "being written": from stage() until commit or abort
    <zone root>/<unit>/_manifest.json          <- written last: the commit

A writer fills a fresh `run=` folder, then writes the manifest naming that run and its files. Readers go
through the manifest only, so a unit without one (a crash mid-write) is invisible, and a rerun replaces the
unit by committing a new run.

Commits are compare-and-swap (`flows/manifest_cas.py`): `stage()` remembers the manifest's version (its
ETag on S3, its sha256 locally) and `commit()` replaces the manifest only if it is still that version. Of
two writers of one unit exactly one wins; the loser gets `CommitConflict`, removes its own run folder and
nothing else. A rerun in sequence stages after the previous commit, so it replaces it cleanly.

After a commit, old runs are removed, but never the run the manifest names, the run it replaced (readers
may still be on it), or a run whose stager's marker is there and younger than `lake_stale_staging_s`
(another writer may still be filling it; an older marker is a crash's leftover). The listings are read
before the manifest, and a stager removes its marker only after its manifest swap, so a run is either seen
as being staged or named by the manifest read after: cleanup cannot race a commit into deleting its run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import fsspec
from fsspec.core import url_to_fs

from flows import __version__, manifest_cas
from flows.errors import CommitConflict, LakeError
from flows.layout import PARTITION_KEY, ZONES, Zone
from flows.ops import run_history
from flows.settings import Settings

log = logging.getLogger(__name__)
MANIFEST = "_manifest.json"
STAGING = "_staging"  # one marker per run being written: <unit>/_staging/<run id>.json


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    """Sortable by start time (to the microsecond), unique by its random suffix."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + uuid.uuid4().hex[:8]


def _run_started(run_id: str) -> str:
    """When a run started, from its id (see new_run_id)."""
    return datetime.strptime(run_id.split("-", 1)[0], "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC).isoformat()


def sha256_file(fs: fsspec.AbstractFileSystem, path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


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

    def add_file(self, name: str, *, records: int | None = None, sha256: str | None = None) -> FileEntry:
        """Record a file written into the run folder (sizes and checksums are read back if not given)."""
        fs = self.lake.fs(self.zone)
        full = posixpath.join(self.path, name)
        entry = FileEntry(
            name=f"run={self.run_id}/{name}",
            bytes=fs.size(full),
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
            rel = posixpath.relpath(_strip_protocol(full), _strip_protocol(self.path))
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


def inside(zone: Zone, parts: tuple[str, ...]) -> tuple[str, ...]:
    """`parts` unchanged, or LakeError if they could lead out of the zone's root (`..`, an absolute
    path): every path of the lake is built by `Lake.path`, so no input (a date, a unit or table name) can
    make the lake write or read outside it."""
    for part in parts:
        if part.startswith("/") or ".." in part.split("/"):
            raise LakeError(f"{zone}/{'/'.join(parts)} would lead outside the {zone} zone's root: refused.")
    return parts


def _strip_protocol(path: str) -> str:
    return path.split("://", 1)[1] if "://" in path else path


def to_spark_path(path: str) -> str:
    """Spark reads S3 through the S3A connector."""
    return "s3a://" + path[len("s3://") :] if path.startswith("s3://") else path


class Lake:
    """Knows where each zone lives and how to commit and read units there."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._roots: dict[Zone, str] = {z: settings.zone_root(z) for z in ZONES}
        self._fs: dict[Zone, fsspec.AbstractFileSystem] = {}

    def root(self, zone: Zone) -> str:
        return self._roots[zone]

    def fs(self, zone: Zone) -> fsspec.AbstractFileSystem:
        if zone not in self._fs:
            options: dict[str, Any] = {}
            if self._roots[zone].startswith("s3://"):
                options["client_kwargs"] = {"region_name": self.settings.aws_region}
                if self.settings.s3_endpoint_url:
                    options["endpoint_url"] = self.settings.s3_endpoint_url
                options["use_listings_cache"] = False
            fs, _ = url_to_fs(self._roots[zone], **options)
            self._fs[zone] = fs
        return self._fs[zone]

    def path(self, zone: Zone, *parts: str) -> str:
        return posixpath.join(self._roots[zone], *inside(zone, parts)) if parts else self._roots[zone]

    # --- writing ----------------------------------------------------------------------------
    def stage(self, zone: Zone, unit: str, run_id: str | None = None) -> Staging:
        """Start (or, with a run id, resume) a run of `unit`, remembering which manifest it replaces."""
        base = manifest_cas.read(self.fs(zone), self.path(zone, unit, MANIFEST))
        staging = Staging(self, zone, unit, run_id or new_run_id())
        staging.base_version = base.version
        staging.base_run_id = base.payload["run_id"] if base.payload else None
        # The marker goes first: whoever sees the run folder also sees that it is being written.
        marker = {"run_id": staging.run_id, "started_at": staging.started_at}
        marker |= {"host": socket.gethostname(), "pid": os.getpid()}
        self._write_json_atomic(zone, self._marker(zone, unit, staging.run_id), marker)
        self.fs(zone).makedirs(staging.path, exist_ok=True)
        return staging

    def commit(self, staging: Staging, **extra: Any) -> dict[str, Any]:
        """Swap the unit's manifest to the staged run if nobody committed since it started; drop old runs.

        Raises CommitConflict (after removing this run's folder) when another writer won the race.
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
        try:
            manifest_cas.swap(self.fs(staging.zone), path, manifest, staging.base_version)
        except manifest_cas.VersionChanged:
            raise self._lost(staging) from None
        # The commit has happened by now: failing to tidy up must not fail it (the next commit tries again).
        try:
            run_history.record(self, staging.zone, staging.unit, manifest)  # for a rollback to it
            self._drop_marker(staging.zone, staging.unit, staging.run_id)
            self._drop_runs(staging.zone, staging.unit)
        except OSError as exc:
            log.warning("Committed %s/%s but could not drop old runs: %s", staging.zone, staging.unit, exc)
        return manifest

    def _lost(self, staging: Staging) -> CommitConflict:
        winner = (self.manifest(staging.zone, staging.unit) or {}).get("run_id")
        self.abort(staging)
        base = f"run {staging.base_run_id}" if staging.base_run_id else "nothing (no manifest yet)"
        return CommitConflict(
            f"{staging.zone}/{staging.unit}: run {staging.run_id} was not committed: when it started the "
            f"unit held {base}, and run {winner} committed it since (two writers of one unit raced). Run "
            f"{winner} is what readers see; this run's files were removed. If run {winner} is what you "
            "wanted, nothing is to be done; otherwise rerun this step once the other run has finished."
        )

    def abort(self, staging: Staging) -> None:
        """Remove a run that will not be committed (unless a manifest names it: then it is not ours alone)."""
        fs = self.fs(staging.zone)
        current = self.manifest(staging.zone, staging.unit) or {}
        named = staging.run_id in {current.get("run_id"), current.get("previous_run_id")}
        if not named and fs.exists(staging.path):
            fs.rm(staging.path, recursive=True)
        self._drop_marker(staging.zone, staging.unit, staging.run_id)

    def _marker(self, zone: Zone, unit: str, run_id: str) -> str:
        return self.path(zone, unit, STAGING, f"{run_id}.json")

    def _drop_marker(self, zone: Zone, unit: str, run_id: str) -> None:
        with suppress(FileNotFoundError):  # gone already (e.g. dropped as stale by another commit)
            self.fs(zone).rm_file(self._marker(zone, unit, run_id))

    def _staged(self, zone: Zone, unit: str) -> dict[str, str]:
        """Run id → when its stager started, for every run whose stager left its marker."""
        fs = self.fs(zone)
        started: dict[str, str] = {}
        try:
            markers = fs.ls(self.path(zone, unit, STAGING), detail=False)
        except FileNotFoundError:
            return started
        for entry in markers:
            if not entry.endswith(".json"):
                continue  # a marker being written (its temporary file)
            try:
                marker = json.loads(fs.cat_file(entry))
            except FileNotFoundError:
                continue  # its stager just finished
            except ValueError:  # unreadable (a crash mid-write on a disk): as old as its run id says
                marker = {"run_id": posixpath.basename(entry)[: -len(".json")]}
            started[marker["run_id"]] = marker.get("started_at") or _run_started(marker["run_id"])
        return started

    def _drop_runs(self, zone: Zone, unit: str) -> None:
        """Remove runs no reader needs and no writer is filling (see the module's docstring)."""
        fs = self.fs(zone)
        runs = self.runs(zone, unit)
        staged = self._staged(zone, unit)
        current = self.manifest(zone, unit) or {}  # read last: a run missing from `staged` is named here
        keep = {current.get("run_id"), current.get("previous_run_id")}
        keep |= run_history.newest(self, zone, unit, self.settings.lake_keep_runs)
        cutoff = datetime.now(UTC).timestamp() - self.settings.lake_stale_staging_s
        live = {r for r, started in staged.items() if datetime.fromisoformat(started).timestamp() > cutoff}
        for run_id in runs:
            if run_id not in keep and run_id not in live:
                with suppress(FileNotFoundError):  # another commit's cleanup got there first
                    fs.rm(self.path(zone, unit, f"run={run_id}"), recursive=True)
                run_history.forget(self, zone, unit, run_id)
        for run_id in staged.keys() - live:
            self._drop_marker(zone, unit, run_id)
        if current.get("run_id") in staged.keys() & live:  # its stager died between commit and tidy-up
            self._drop_marker(zone, unit, current["run_id"])

    def _write_json_atomic(self, zone: Zone, path: str, payload: dict[str, Any]) -> None:
        """Replace a JSON object whole (last writer wins: for files one writer owns, never for manifests)."""
        self._replace(zone, path, manifest_cas.encode(payload))

    def _replace(self, zone: Zone, path: str, data: bytes, content_type: str | None = None) -> None:
        fs = self.fs(zone)
        if path.startswith("s3://"):
            # a single PUT is atomic: readers see the old or the new object
            fs.pipe_file(path, data, **({"ContentType": content_type} if content_type else {}))
            return
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    # --- reading ----------------------------------------------------------------------------
    def manifest(self, zone: Zone, unit: str) -> dict[str, Any] | None:
        fs = self.fs(zone)
        path = self.path(zone, unit, MANIFEST)
        try:
            return json.loads(fs.cat_file(path))
        except FileNotFoundError:
            return None

    def runs(self, zone: Zone, unit: str) -> list[str]:
        """Ids of every `run=` folder of a unit, committed or not, oldest first."""
        fs = self.fs(zone)
        unit_path = self.path(zone, unit)
        if not fs.exists(unit_path):
            return []
        names = (posixpath.basename(e.rstrip("/")) for e in fs.ls(unit_path, detail=False))
        return sorted(n[len("run=") :] for n in names if n.startswith("run="))

    def committed_files(self, zone: Zone, unit: str) -> list[str]:
        manifest = self.manifest(zone, unit)
        if manifest is None:
            raise LakeError(f"{zone}/{unit} has no manifest: it was never committed (or a write failed).")
        return [self.path(zone, unit, f["name"]) for f in manifest["files"]]

    def committed_run_path(self, zone: Zone, unit: str) -> str | None:
        manifest = self.manifest(zone, unit)
        return None if manifest is None else self.path(zone, unit, f"run={manifest['run_id']}")

    def partitions(self, zone: Zone, parent: str, key: str = PARTITION_KEY) -> list[str]:
        """Values of `key=` sub-units of `parent` that are committed, oldest first."""
        fs = self.fs(zone)
        base = self.path(zone, parent)
        if not fs.exists(base):
            return []
        values = []
        for entry in fs.ls(base, detail=False):
            name = posixpath.basename(entry.rstrip("/"))
            if name.startswith(f"{key}=") and fs.exists(posixpath.join(entry, MANIFEST)):
                values.append(name.split("=", 1)[1])
        return sorted(values)

    def write_json(self, zone: Zone, name: str, payload: dict[str, Any]) -> str:
        path = self.path(zone, name)
        self._write_json_atomic(zone, path, payload)
        return path

    def write_file(self, zone: Zone, name: str, data: bytes, content_type: str | None = None) -> str:
        """Replace a file one writer owns (a report) whole; `content_type` is what S3 serves it as."""
        path = self.path(zone, name)
        self._replace(zone, path, data, content_type)
        return path

    def read_json(self, zone: Zone, name: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.fs(zone).cat_file(self.path(zone, name)))
        except FileNotFoundError:
            return None
