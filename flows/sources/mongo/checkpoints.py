"""Part files and their checkpoints: what a run writes, what a resumed run may trust, what a commit clears.

Each page becomes one gzipped part file, then (atomically) its checkpoint naming the part's checksum, its
first and last `_id` and whether its `_id`s ascend (cursor.Page.ascending). A run killed at any instant
therefore leaves a prefix of good checkpoints; the next run of the same unit and query resumes after the
last of them, in the same run folder.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId

from flows.lake import Lake, Staging
from flows.sources.mongo.cursor import Page

log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter[Any]
CHECKPOINTS = "_checkpoints"


def checkpoint_name(staging_unit: str, run_id: str, index: int) -> str:
    return posixpath.join(staging_unit, f"run={run_id}", CHECKPOINTS, f"{index:05d}.json")


def write_part(
    lake: Lake, staging: Staging, index: int, page: Page, query_key: str, *, checkpoint: bool = True
) -> None:
    """One page as a gzipped part file, then its checkpoint (so a resumed run can trust the file)."""
    name = f"part-{index:05d}.jsonl.gz"
    with staging.open(name) as fh:
        fh.write(page.body)
    staging.add_file(name, records=page.records, sha256=page.sha256)
    if not checkpoint:
        return
    saved = {
        "file": name,
        "records": page.records,
        "bytes": len(page.body),
        "sha256": page.sha256,
        "first_id": str(page.first_id),
        "last_id": str(page.last_id),
        "ascending": page.ascending,
        "query_key": query_key,
        "started_at": staging.started_at,
    }
    lake.write_json("raw", checkpoint_name(staging.unit, staging.run_id, index), saved)


def checkpoints_ascending(checkpoints: list[dict[str, Any]]) -> bool:
    """Whether the parts of these trusted checkpoints (`find_resumable`'s, which chain) hold ObjectId `_id`s
    in ascending order: each checkpoint says so of its part. One written before parts recorded it says
    nothing, so the answer is no."""
    return all(cp.get("ascending") is True for cp in checkpoints)


def _follows(checkpoint: dict[str, Any], before: dict[str, Any]) -> bool:
    """Whether the checkpoint's part begins after the part before it ends. Parts of one attempt always do;
    parts of two interrupted attempts may not (a damaged part rewritten by a later one, the source changed
    in between), and their documents would then overlap."""
    try:
        return ObjectId(checkpoint["first_id"]) > ObjectId(before["last_id"])
    except (InvalidId, TypeError, KeyError):  # not an ObjectId's text: cannot be trusted
        return False


def _valid_checkpoints(lake: Lake, unit: str, run_id: str, query_key: str) -> list[dict[str, Any]]:
    """The run's checkpoints 0, 1, 2… whose part file is there with its checksum and begins after the part
    before it, up to the first gap.

    Anything after a gap, a mismatch or an overlap is ignored and rewritten by the resumed run.
    """
    fs = lake.fs("raw")
    run_path = lake.path("raw", unit, f"run={run_id}")
    good: list[dict[str, Any]] = []
    while True:
        index = len(good)
        try:
            cp = lake.read_json("raw", checkpoint_name(unit, run_id, index))
        except ValueError:  # not a JSON object (DamagedLakeFile): cannot be trusted
            return good
        if cp is None or cp.get("query_key") != query_key or cp.get("file") != f"part-{index:05d}.jsonl.gz":
            return good
        try:
            with fs.open(posixpath.join(run_path, cp["file"]), "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
        except FileNotFoundError:
            return good
        if digest != cp.get("sha256") or (good and not _follows(cp, good[-1])):
            return good
        good.append(cp)


def find_resumable(
    lake: Lake, unit: str, query_key: str, logger: Logger = log
) -> tuple[str, list[dict[str, Any]]] | None:
    """The newest uncommitted run of this unit, started after the committed one, with the same query."""
    committed = (lake.manifest("raw", unit) or {}).get("run_id")
    for run_id in reversed(lake.runs("raw", unit)):
        if committed is not None and run_id <= committed:
            return None  # older runs were superseded by the commit; never resurrect them
        try:
            checkpoints = _valid_checkpoints(lake, unit, run_id, query_key)
        except (ValueError, KeyError, OSError) as exc:  # an unreadable checkpoint: not resumable
            logger.warning(
                "Run %s of raw/%s has unreadable checkpoints (%s): not resuming it", run_id, unit, exc
            )
            continue
        if checkpoints:
            return run_id, checkpoints
    return None


def stream_start(resumable: tuple[str, list[dict[str, Any]]] | None, watermark: str | None) -> str | None:
    """The `_id` a run's stream starts after: a resumable run's last checkpointed one, else the watermark."""
    return resumable[1][-1]["last_id"] if resumable else watermark


def drop_strays(lake: Lake, staging: Staging) -> None:
    """Remove part files of a resumed run that no checkpoint vouches for (a kill mid-write)."""
    fs = lake.fs("raw")
    listed = {posixpath.basename(f.name) for f in staging.files}
    for entry in fs.ls(staging.path, detail=False):
        name = posixpath.basename(entry.rstrip("/"))
        if name.startswith("part-") and name not in listed:
            fs.rm(entry)


def clear_checkpoints(lake: Lake, staging: Staging) -> None:
    fs = lake.fs("raw")
    cp_dir = posixpath.join(staging.path, CHECKPOINTS)
    if fs.exists(cp_dir):
        fs.rm(cp_dir, recursive=True)
