"""The class archives kept in the cache folder: their names, the records beside them, and pruning.

An archive's file name is a digest of the Java binary and the jars it was built for
(flows/spark/class_cache.py builds and maps it). Each archive has a record beside it
(`spark-<digest>.json`: the Java, the jar folder and the machine it was built for), so a build first
removes the archives no JVM can map any more (~180 MB each): those whose Java or jars changed or are gone
(a deleted checkout, an upgraded PySpark), and what an interrupted build left. An archive with no record
(built before records were kept) or from another machine is left alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from pathlib import Path

log = logging.getLogger(__name__)

# A build takes about a minute: a partial archive this old belongs to a build that was interrupted.
STALE_PARTIAL_S = 24 * 3600.0


def archive_name(java: Path, jars: Path) -> str:
    digest = hashlib.sha256()
    for path in [java, *sorted(jars.glob("*.jar"))]:
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return f"spark-{digest.hexdigest()[:24]}.jsa"


def record_path(archive: Path) -> Path:
    return archive.with_suffix(".json")


def write_record(archive: Path, java: Path | None, jars: Path | None) -> None:
    """Note beside the archive which Java and jar folder it is for, on which machine, so `prune` can tell
    when it is stale. Only pruning needs it: a record that cannot be written leaves the archive usable."""
    if java is None or jars is None:
        return
    record = record_path(archive)
    partial = record.with_name(f"{record.name}.{os.getpid()}.partial")
    try:
        partial.write_text(json.dumps({"java": str(java), "jars": str(jars), "host": socket.gethostname()}))
        os.replace(partial, record)
    except OSError as exc:
        log.warning("class-cache: no record beside %s (%s): it will never be pruned", archive, exc)
        partial.unlink(missing_ok=True)


def prune(directory: Path) -> list[Path]:
    """Remove the archives no JVM can map any more (their Java or jars changed or went, as their record
    says) and partial files of builds interrupted long ago; return what was removed.

    When in doubt, an archive is kept: one without a record (nothing says what it was built for), one
    built on another machine (a cache folder shared with a container or over NFS: its paths are not ours
    to check), one whose jars cannot be read now. A file that cannot be removed is skipped, with a warning.
    """
    stale: list[tuple[Path, ...]] = []
    for archive in sorted(directory.glob("spark-*.jsa")):
        record = record_path(archive)
        try:
            inputs = json.loads(record.read_text())
            java, jars = Path(inputs["java"]), Path(inputs["jars"])
            host = inputs.get("host", socket.gethostname())  # the first records (one day) had none
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if host != socket.gethostname():
            continue
        try:
            current = java.is_file() and jars.is_dir() and archive_name(java, jars) == archive.name
        except OSError:
            continue
        if not current:
            stale.append((archive, record))  # a JVM that mapped it keeps its mapping
    now = time.time()
    for partial in sorted(directory.glob("spark-*.partial")):
        try:
            if now - partial.stat().st_mtime > STALE_PARTIAL_S:
                stale.append((partial,))
        except OSError:  # gone meanwhile (its build ended)
            continue
    removed: list[Path] = []
    for paths in stale:
        try:
            for path in paths:
                path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("class-cache: could not remove %s: %s", paths[0], exc)
            continue
        removed.append(paths[0])
    return removed
