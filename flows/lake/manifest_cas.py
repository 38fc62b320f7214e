"""Compare-and-swap of one small JSON object (a unit's manifest), on a local disk and on S3.

A writer reads the manifest with its *version* when it starts, and replaces it only if it still has that
version when it commits; otherwise it lost a race and must not commit.

- **S3**: the version is the object's ETag; the swap is a conditional PUT, `If-Match: <etag>` to replace,
  `If-None-Match: *` to create. S3 evaluates the condition and writes in one step (a loser gets 412
  PreconditionFailed, or 409 ConditionalRequestConflict while another conditional write is in flight).
- **Local disk**: the version is the sha256 of the manifest's bytes; the swap holds an exclusive `flock`
  on `<manifest>.lock`, checks the version, then writes a uniquely named file and renames it into place.
  `os.replace` alone is no CAS (the last rename wins); the lock makes check-and-rename one step for
  writers, while readers never lock (a rename is atomic for them). The kernel drops the lock when its
  holder dies, so a crash leaves no stale lock behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import posixpath
import uuid
from dataclasses import dataclass
from typing import Any

import fsspec

from flows.errors import DamagedLakeFile, ManifestUnsettled

# What S3 answers when the condition fails (412), or when a concurrent conditional write won (409).
_S3_CONFLICT_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}
_READ_ATTEMPTS = 3


@dataclass(frozen=True)
class Versioned:
    payload: dict[str, Any] | None  # None: no object yet
    version: str | None


class VersionChanged(Exception):
    """The object is no longer at the version the writer read: someone else swapped it first."""


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, indent=2, ensure_ascii=False, default=str).encode()


def decode(path: str, data: bytes) -> dict[str, Any]:
    """The JSON object in a file the pipeline writes whole; DamagedLakeFile, naming it, if anything else."""
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise damaged(path, f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise damaged(path, f"a JSON {_JSON_NAMES.get(type(value), type(value).__name__)}, not an object")
    return value


def manifest_problem(value: dict[str, Any], run_id: str | None = None) -> str | None:
    """What keeps a decoded object from being a unit's manifest (of `run_id`, if given), or None. Readers
    rely on these fields: the run and the one it replaced (a reader's files, lineage, the catalog's
    location, what a commit keeps), its files (inside its run's folder: a manifest pointing elsewhere would
    show readers another run's data) and theirs and its record counts, and a rollback's record."""
    run = value.get("run_id")
    if not isinstance(run, str) or not run:
        return f'"run_id" is {_shown(run)}, not a run id'
    if run_id is not None and run != run_id:
        return f'"run_id" is {_shown(run)}: not the manifest of run {run_id}'
    previous = value.get("previous_run_id")
    if previous is not None and (not isinstance(previous, str) or not previous):
        return f'"previous_run_id" is {_shown(previous)}, not a run id (or null)'
    files = value.get("files")
    if not isinstance(files, list):
        return f'"files" is {_shown(files)}, not a list of files'
    folder = f"run={run}/"
    for entry in files:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name.startswith(folder) or ".." in name.split("/"):
            return f"the file entry {_shown(entry)} is not a file in {folder}"
        if not _count(entry.get("records")):  # a copy sums them again (flows/spark/io.py copy_table)
            return f"the file entry {_shown(entry)} has a record count that is not one"
    if "records" not in value:
        return 'no "records" count'
    if not _count(value["records"]):
        return f'"records" is {_shown(value["records"])}, not a whole number of records (or null)'
    rollback = value.get("rollback")
    if rollback is not None and not (
        isinstance(rollback, dict) and all(isinstance(rollback.get(k), str) for k in ROLLBACK_FIELDS)
    ):
        fields = ", ".join(ROLLBACK_FIELDS)
        return f'"rollback" is {_shown(rollback)}, not a record of a rollback ({fields} as text)'
    return None


def _count(records: Any) -> bool:
    return records is None or (type(records) is int and records >= 0)


def checked_manifest(path: str, value: dict[str, Any] | None) -> dict[str, Any] | None:
    """`value` (None: no manifest) if it is a manifest; DamagedLakeFile naming `path` otherwise."""
    if value is not None and (problem := manifest_problem(value)):
        raise damaged(path, f"not a manifest: {problem}")
    return value


def _shown(value: Any) -> str:
    """A field's value as the file holds it, cut short (a message names what to repair)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else f"{text[:77]}..."


ROLLBACK_FIELDS = ("from_run_id", "to_run_id", "by", "at")  # flows/ops/rollback.py writes and reads them


_JSON_NAMES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
_JSON_NAMES[type(None)] = "null"


def damaged(path: str, what: str) -> DamagedLakeFile:
    """The error for a file the pipeline wrote whole that is no longer what it wrote: what it is instead."""
    error = DamagedLakeFile(
        f"The lake file {path} is damaged: {what}. The pipeline writes it whole, so it was changed outside "
        "the pipeline: restore it (from a backup, or the bucket's object versions). A unit's _manifest.json "
        "may instead be deleted: the unit is then uncommitted (read as empty) until a run commits it again."
    )
    error.path, error.what = path, what
    return error


def read_manifest(fs: fsspec.AbstractFileSystem, path: str) -> Versioned:
    """A unit's manifest with its version; DamagedLakeFile if the object there is not a manifest."""
    versioned = read(fs, path)
    checked_manifest(path, versioned.payload)
    return versioned


def read(fs: fsspec.AbstractFileSystem, path: str) -> Versioned:
    if path.startswith("s3://"):
        return _read_s3(fs, path)
    try:
        with open(_local(path), "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return Versioned(None, None)
    return Versioned(decode(path, data), _digest(data))


def swap(fs: fsspec.AbstractFileSystem, path: str, payload: dict[str, Any], expected: str | None) -> str:
    """Write `payload` at `path` if it is still at version `expected` (None: absent); return the new one."""
    data = encode(payload)
    if path.startswith("s3://"):
        return _swap_s3(fs, path, data, expected)
    return _swap_local(_local(path), data, expected)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def _swap_local(path: str, data: bytes, expected: str | None) -> str:
    os.makedirs(posixpath.dirname(path), exist_ok=True)
    # The lock file stays: unlinking it would let a waiter lock an inode nobody else sees.
    with open(f"{path}.lock", "ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held for a read and a rename: milliseconds
        try:
            with open(path, "rb") as fh:
                current: str | None = _digest(fh.read())
        except FileNotFoundError:
            current = None
        if current != expected:
            raise VersionChanged(path)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return _digest(data)


def _read_s3(fs: fsspec.AbstractFileSystem, path: str) -> Versioned:
    for _ in range(_READ_ATTEMPTS):
        try:
            # s3fs reads the ETag with a HEAD, then GETs with If-Match on it: body and version agree.
            with fs.open(path, "rb") as fh:
                etag = fh.details["ETag"]
                data = fh.read()
        except FileNotFoundError:
            return Versioned(None, None)
        except OSError as exc:
            if _s3_code(exc) in _S3_CONFLICT_CODES:
                continue  # replaced between the HEAD and the GET: read the new one
            raise
        return Versioned(decode(path, data), etag)
    raise ManifestUnsettled(
        f"{path} kept changing while being read ({_READ_ATTEMPTS} attempts): another run is committing "
        "this unit; run again once it has finished"
    )


def _swap_s3(fs: fsspec.AbstractFileSystem, path: str, data: bytes, expected: str | None) -> str:
    condition = {"IfMatch": expected} if expected else {"IfNoneMatch": "*"}
    try:
        response = fs.pipe_file(path, data, **condition)  # s3fs passes these to PutObject
    except FileExistsError:  # If-None-Match failed: someone created it first
        raise VersionChanged(path) from None
    except FileNotFoundError:  # If-Match on an object that is gone
        raise VersionChanged(path) from None
    except OSError as exc:
        if _s3_code(exc) in _S3_CONFLICT_CODES:
            raise VersionChanged(path) from None
        raise
    return str(response["ETag"])


def _s3_code(exc: BaseException) -> str | None:
    """The S3 error code behind s3fs's translated OSError: botocore's error is somewhere down the cause
    chain (a conditional GET that failed comes as FileExpired, caused by an OSError, caused by it)."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            return response.get("Error", {}).get("Code")
        seen = seen.__cause__
    return None
