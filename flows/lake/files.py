"""Filesystem helpers of the lake: run ids and times, checksums, safe paths, atomic whole-file writes."""

from __future__ import annotations

import hashlib
import os
import posixpath
import uuid
from datetime import UTC, datetime
from typing import IO

import fsspec

from flows.errors import LakeError
from flows.layout import Zone


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    """Sortable by start time (to the microsecond), unique by its random suffix."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + uuid.uuid4().hex[:8]


def run_started(run_id: str) -> str:
    """When a run started, from its id (see new_run_id)."""
    return datetime.strptime(run_id.split("-", 1)[0], "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC).isoformat()


def sha256_file(fs: fsspec.AbstractFileSystem, path: str, chunk: int = 1 << 20) -> str:
    with fs.open(path, "rb") as fh:
        return copy_hashed(fh, None, chunk)[0]


def copy_hashed(src: IO[bytes], out: IO[bytes] | None, chunk: int = 1 << 20) -> tuple[str, int]:
    """Stream `src` into `out` (if any) a block at a time; the sha256 and size of what passed.
    One read of the source serves both the copy and its checksum, and no file is held whole in memory."""
    digest, size = hashlib.sha256(), 0
    while block := src.read(chunk):
        digest.update(block)
        size += len(block)
        if out is not None:
            out.write(block)
    return digest.hexdigest(), size


def inside(zone: Zone, parts: tuple[str, ...]) -> tuple[str, ...]:
    """`parts` unchanged, or LakeError if they could lead out of the zone's root (`..`, an absolute
    path): every path of the lake is built by `Lake.path`, so no input (a date, a unit or table name) can
    make the lake write or read outside it."""
    for part in parts:
        if part.startswith("/") or ".." in part.split("/"):
            raise LakeError(f"{zone}/{'/'.join(parts)} would lead outside the {zone} zone's root: refused.")
    return parts


def strip_protocol(path: str) -> str:
    return path.split("://", 1)[1] if "://" in path else path


def to_spark_path(path: str) -> str:
    """Spark reads S3 through the S3A connector."""
    return "s3a://" + path[len("s3://") :] if path.startswith("s3://") else path


def write_atomic(
    fs: fsspec.AbstractFileSystem, path: str, data: bytes, content_type: str | None = None
) -> None:
    """Replace a file whole (last writer wins: for files one writer owns, never for manifests);
    `content_type` is what S3 serves it as."""
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
