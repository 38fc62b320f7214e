"""The lake: zones, paths, and atomic commits with manifests, for local folders and s3:// alike.

Every unit of data (a raw batch, a table partition, a whole table version) lives in its own folder, named
by `flows/layout.py`. A writer fills a fresh `run=` folder, then writes the manifest naming that run and
its files. Readers go through the manifest only, so a unit without one (a crash mid-write) is invisible,
and a rerun replaces the unit by committing a new run.

- `zones.py`: `Lake`, where each zone lives, its filesystem, paths and reads;
- `commits.py`: staging a run and committing it by compare-and-swap of its manifest, and the cleanup;
- `manifest_cas.py`: that compare-and-swap, on a local disk and on S3;
- `history.py`: each committed run's manifest, kept so a rollback can make it current again;
- `files.py`: run ids, checksums, safe paths, atomic whole-file writes.
"""

from flows.lake.commits import MANIFEST, STAGING, FileEntry, Staging
from flows.lake.files import new_run_id, sha256_file, to_spark_path, utcnow, write_atomic
from flows.lake.zones import Lake

__all__ = [
    "MANIFEST",
    "STAGING",
    "FileEntry",
    "Lake",
    "Staging",
    "new_run_id",
    "sha256_file",
    "to_spark_path",
    "utcnow",
    "write_atomic",
]
