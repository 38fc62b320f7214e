"""Each committed run's manifest, kept beside its unit, so an earlier run can be made current again.

A unit's `_manifest.json` names only the run readers see. When a commit replaces it, the replaced run's
files stay in the lake for a while (`commits.py`: the previous run, and the newest
`lake_keep_runs` committed runs), but without its manifest nobody could tell which files were that run,
or how many records it held. So every commit also leaves its manifest here:

    <zone root>/<unit>/_history/<run id>.json   (the name is `flows.layout.history_record`'s)

and a run folder's record goes when the folder does. A run can be made current again (flows/ops/rollback.py)
while both are there.
"""

from __future__ import annotations

import posixpath
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from flows.layout import HISTORY, Zone, history_record

if TYPE_CHECKING:
    from flows.lake.zones import Lake


def record(lake: Lake, zone: Zone, unit: str, manifest: dict[str, Any]) -> None:
    """Keep a committed manifest (the run's own record: written once, never changed)."""
    lake.write_json(zone, history_record(unit, manifest["run_id"]), manifest)


def recorded(lake: Lake, zone: Zone, unit: str, run_id: str) -> dict[str, Any] | None:
    return lake.read_json(zone, history_record(unit, run_id))


def recorded_runs(lake: Lake, zone: Zone, unit: str) -> list[str]:
    """Ids of the runs whose manifest was recorded at commit, oldest first."""
    fs = lake.fs(zone)
    try:
        entries = fs.ls(lake.path(zone, unit, HISTORY), detail=False)
    except FileNotFoundError:
        return []
    names = (posixpath.basename(e.rstrip("/")) for e in entries)
    return sorted(n[: -len(".json")] for n in names if n.endswith(".json"))


def newest(lake: Lake, zone: Zone, unit: str, count: int) -> set[str]:
    """The `count` most recently started committed runs (kept by `_drop_runs` in flows/lake/commits.py)."""
    return set(recorded_runs(lake, zone, unit)[-count:]) if count > 0 else set()


def forget(lake: Lake, zone: Zone, unit: str, run_id: str) -> None:
    """Drop the record of a run whose folder was removed."""
    with suppress(FileNotFoundError):
        lake.fs(zone).rm_file(lake.path(zone, history_record(unit, run_id)))


def kept_runs(lake: Lake, zone: Zone, unit: str) -> list[str]:
    """Committed runs that can be made current again (recorded, files still there), oldest first."""
    on_disk = set(lake.runs(zone, unit))
    return [r for r in recorded_runs(lake, zone, unit) if r in on_disk]
