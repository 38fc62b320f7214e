"""The lake's zones: where each lives (a local folder or an S3 bucket), its filesystem, paths and reads.

Unit names come from `flows/layout.py`; writing a unit goes through the commit protocol
(`flows/lake/commits.py`).
"""

from __future__ import annotations

import posixpath
from typing import Any

import fsspec
from fsspec.core import url_to_fs

from flows.errors import LakeError
from flows.lake import commits, manifest_cas
from flows.lake.commits import MANIFEST, Staging
from flows.lake.files import inside, write_atomic
from flows.layout import PARTITION_KEY, ZONES, Zone
from flows.settings import Settings


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

    # --- writing: the commit protocol (flows/lake/commits.py) ------------------------------------
    def stage(self, zone: Zone, unit: str, run_id: str | None = None) -> Staging:
        """Start (or, with a run id, resume) a run of `unit`, remembering which manifest it replaces."""
        return commits.stage(self, zone, unit, run_id)

    def commit(self, staging: Staging, **extra: Any) -> dict[str, Any]:
        """Swap the unit's manifest to the staged run if nobody committed since it started; drop old runs.

        Raises CommitConflict (after removing this run's folder) when another writer won the race, and
        DamagedLakeFile (keeping it) when the manifest was replaced by something that is not a manifest.
        """
        return commits.commit(self, staging, **extra)

    def abort(self, staging: Staging) -> None:
        """Remove a run that will not be committed (unless a manifest names it: then it is not ours alone)."""
        commits.abort(self, staging)

    # --- reading ----------------------------------------------------------------------------
    def manifest(self, zone: Zone, unit: str) -> dict[str, Any] | None:
        path = self.path(zone, unit, MANIFEST)
        return manifest_cas.checked_manifest(path, self._json_object(zone, path))

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

    def partitions(
        self, zone: Zone, parent: str, key: str = PARTITION_KEY, after: str | None = None
    ) -> list[str]:
        """Values of `key=` sub-units of `parent` that are committed, oldest first; with `after`, only those
        above it (each is checked for its manifest: one request per value on S3)."""
        fs = self.fs(zone)
        base = self.path(zone, parent)
        if not fs.exists(base):
            return []
        values = []
        for entry in fs.ls(base, detail=False):
            name = posixpath.basename(entry.rstrip("/"))
            value = name.removeprefix(f"{key}=")
            wanted = value != name and (after is None or value > after)
            if wanted and fs.exists(posixpath.join(entry, MANIFEST)):
                values.append(value)
        return sorted(values)

    def write_json(self, zone: Zone, name: str, payload: dict[str, Any]) -> str:
        """Replace a JSON file whole (last writer wins): a file one writer owns, never a manifest."""
        path = self.path(zone, name)
        write_atomic(self.fs(zone), path, manifest_cas.encode(payload))
        return path

    def write_file(self, zone: Zone, name: str, data: bytes, content_type: str | None = None) -> str:
        """Replace a file one writer owns (a report) whole; `content_type` is what S3 serves it as."""
        path = self.path(zone, name)
        write_atomic(self.fs(zone), path, data, content_type)
        return path

    def read_json(self, zone: Zone, name: str) -> dict[str, Any] | None:
        return self._json_object(zone, self.path(zone, name))

    def _json_object(self, zone: Zone, path: str) -> dict[str, Any] | None:
        """The JSON object a file holds, None if there is none; DamagedLakeFile if it holds anything else."""
        try:
            data = self.fs(zone).cat_file(path)
        except FileNotFoundError:
            return None
        return manifest_cas.decode(path, data)
