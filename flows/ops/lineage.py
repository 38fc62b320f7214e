"""Lineage as Prefect events: every lake commit is a `vamosjuntos.unit.committed` event.

The event's resource is the unit (`vamosjuntos.unit.<zone>.<table>.<date>`, its run id a label); its
related resources are the units it was built from, each at the run it read (role `input`), and, inside a
`lakehouse` run, that run (role `lakehouse`); Prefect adds the flow run and task run that emitted it. The
payload holds records, bytes and files. So the Event Feed, filtered on one `lakehouse` run or on one unit,
shows raw → processing → consumer, and deployment triggers (prefect.yaml) can start what follows a commit.

Emitted on the flow's side, from the committed manifests, never by the writer: a Spark step commits inside
its driver, which on Kubernetes is a pod of its own with no Prefect API to talk to. The flow reads the
manifests of the units a step writes before and after it, and announces each one whose run changed, even
when the step failed half-way (what it committed is committed). Emitting is best effort: a commit has
happened whatever the event's fate, and a failed emission must not make the step retry and commit again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prefect.events import emit_event
from prefect.runtime import flow_run

from flows import layout
from flows.lake import Lake
from flows.layout import Zone
from flows.settings import Settings

log = logging.getLogger(__name__)

COMMITTED = "vamosjuntos.unit.committed"
PUBLISHED = "vamosjuntos.catalog.published"
# Who runs what follows an event: `lakehouse` when the parent flow runs the next steps itself (the
# deployment triggers ignore its events), `events` when a step ran alone (the triggers start what follows).
ORCHESTRATED_BY = "vamosjuntos.orchestrated_by"
BY_EVENTS = "events"


@dataclass(frozen=True)
class Orchestrator:
    """A run that runs the steps following its commits itself (`lakehouse` runs its subflows in order, a
    rollback answers itself): events emitted for it must not start the deployments the triggers in
    prefect.yaml start for a step run alone (they match `vamosjuntos.orchestrated_by: events` only).
    The orchestrating flow hands it to each subflow as an argument, like its settings."""

    name: str
    flow_run_id: str | None

    @classmethod
    def this_run(cls, flow_name: str) -> Orchestrator:
        """The current run (of flow `flow_name`), as the orchestrator of what it calls."""
        run_id = flow_run.get_id()
        return cls(flow_name, str(run_id) if run_id else None)


def orchestration(parent: Orchestrator | None) -> tuple[str, list[dict[str, str]]]:
    """The label value of ORCHESTRATED_BY for `parent`, and the orchestrating run as a related resource."""
    if parent is None:
        return BY_EVENTS, []
    related = []
    if parent.flow_run_id:
        related.append(
            {
                "prefect.resource.id": f"prefect.flow-run.{parent.flow_run_id}",
                "prefect.resource.role": parent.name,
            }
        )
    return parent.name, related


# --- units -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnitRef:
    zone: Zone
    path: str  # relative to the zone's root, e.g. quarantine/pnadc/ingestion_date=2026-11-29
    date: str | None  # the partition's date, or (consumer tables) the date the table was built for

    @property
    def table(self) -> str:
        """The unit's table, dotted: `ibge.mesorregioes`, `quarantine.pnadc`, `publico_alvo`."""
        prefix = f"{layout.PARTITION_KEY}="
        return ".".join(p for p in self.path.split("/") if not p.startswith(prefix))

    @property
    def resource_id(self) -> str:
        tail = f".{self.date}" if self.date else ""
        return f"vamosjuntos.unit.{self.zone}.{self.table}{tail}"

    @property
    def name(self) -> str:
        return f"{self.zone}/{self.table.replace('.', '/')} {self.date or ''}".rstrip()

    @classmethod
    def of(cls, zone: Zone, path: str, manifest: dict[str, Any] | None = None) -> UnitRef:
        prefix = f"{layout.PARTITION_KEY}="
        dated = [p[len(prefix) :] for p in path.split("/") if p.startswith(prefix)]
        date = dated[0] if dated else (manifest or {}).get(layout.PARTITION_KEY)
        return cls(zone, path, date)


def _latest(lake: Lake, table: str, date: str) -> str | None:
    """The processing partition a consumer table of `date` reads: the newest on or before it."""
    dates = [d for d in lake.partitions("processing", table) if d <= date]
    return layout.processing(table, dates[-1]) if dates else None


def inputs_of(lake: Lake, unit: UnitRef, manifest: dict[str, Any]) -> list[tuple[UnitRef, str | None]]:
    """The units `unit` was built from, each with the run read.

    Processing manifests record the raw run they typed (`raw_run_id`). Consumer manifests record the
    processing dates of the fact table; the run of each processing input is the one committed when the
    step finished (the date's lock keeps every other writer of those partitions out meanwhile).
    """
    if unit.zone == "processing" and unit.date:
        raw = layout.raw_source(unit.table.split(".")[-1], unit.date)
        return [(UnitRef.of("raw", raw), manifest.get("raw_run_id"))]
    if unit.zone != "consumer" or not unit.date:
        return []
    if unit.table == layout.PUBLICO_ALVO:  # pnadc's partitions since the last snapshot, enriched by ufs
        paths = [layout.processing(layout.PNADC, d) for d in manifest.get("processing_dates", [])]
        paths.append(_latest(lake, layout.UFS, unit.date))
    else:  # a dimension: its processing partition
        paths = [_latest(lake, unit.table, unit.date)]
    found = []
    for path in filter(None, paths):
        found.append(
            (UnitRef.of("processing", path), (lake.manifest("processing", path) or {}).get("run_id"))
        )
    return found


def _related(ref: UnitRef, run_id: str | None, role: str) -> dict[str, str]:
    related = {"prefect.resource.id": ref.resource_id, "prefect.resource.role": role}
    related["prefect.resource.name"] = ref.name
    if run_id:
        related["vamosjuntos.run_id"] = run_id
    return related


# --- events ------------------------------------------------------------------------------------
def committed_event(lake: Lake, manifest: dict[str, Any], by: Orchestrator | None = None) -> dict[str, Any]:
    """The event of one commit (a manifest as `Lake.commit` returns it), as `emit_event`'s arguments;
    `by`: the run orchestrating the one that committed, if any."""
    zone, _, path = manifest["unit"].partition("/")
    unit = UnitRef.of(zone, path, manifest)  # type: ignore[arg-type]
    inputs = inputs_of(lake, unit, manifest)
    label, parents = orchestration(by)
    resource = {
        "prefect.resource.id": unit.resource_id,
        "prefect.resource.name": unit.name,
        "vamosjuntos.zone": unit.zone,
        "vamosjuntos.table": unit.table,
        "vamosjuntos.ingestion_date": unit.date or "",
        "vamosjuntos.run_id": manifest["run_id"],
        ORCHESTRATED_BY: label,
    }
    files = manifest.get("files", [])
    payload = {
        "unit": manifest["unit"],
        "run_id": manifest["run_id"],
        "previous_run_id": manifest.get("previous_run_id"),
        "records": manifest.get("records"),
        "bytes": sum(f.get("bytes") or 0 for f in files),
        "files": len(files),
        "committed_at": manifest.get("finished_at"),
        "inputs": [{"unit": f"{r.zone}/{r.path}", "run_id": run} for r, run in inputs],
    }
    related = [_related(ref, run, "input") for ref, run in inputs] + parents
    return {"event": COMMITTED, "resource": resource, "related": related, "payload": payload}


def emit_committed(
    lake: Lake, manifest: dict[str, Any], by: Orchestrator | None = None
) -> dict[str, Any] | None:
    """Announce one commit; returns the event sent (None if it could not be: the commit stands)."""
    return _emit(lambda: committed_event(lake, manifest, by), f"Committed {manifest.get('unit')}")


def _emit(build: Callable[[], dict[str, Any]], done: str) -> dict[str, Any] | None:
    try:
        event = build()
        emit_event(**event)
        return event
    except Exception as exc:  # what happened stands; only its announcement is lost
        log.warning("%s but could not emit its event: %s", done, exc)
        return None


@contextmanager
def announcing_step(lake: Lake, step: str, date: str, by: Orchestrator | None = None) -> Iterator[None]:
    """Emit an event for each unit the Spark step commits for `date` in the block, even if it fails."""
    before = {u: _run_id(lake, u) for u in layout.step_outputs(step, date)}
    try:
        yield
    finally:
        for manifest in _committed_since(lake, before, date):
            emit_committed(lake, manifest, by)


def _run_id(lake: Lake, unit: tuple[Zone, str]) -> str | None:
    try:
        return (lake.manifest(*unit) or {}).get("run_id")
    except Exception:  # unreadable now: whatever is committed after the step counts as new
        return None


def _committed_since(
    lake: Lake, before: dict[tuple[Zone, str], str | None], date: str
) -> list[dict[str, Any]]:
    committed = []
    for unit, run_id in before.items():
        try:
            manifest = lake.manifest(*unit)
        except Exception as exc:
            log.warning("Could not read %s/%s to announce its commit: %s", *unit, exc)
            continue
        # A consumer table is one unit for every date: another date's run may have committed it.
        if manifest and manifest["run_id"] != run_id and manifest.get(layout.PARTITION_KEY, date) == date:
            committed.append(manifest)
    return sorted(committed, key=lambda m: m.get("finished_at") or "")


def published_event(
    lake: Lake, catalog: str, tables: dict[str, int], by: Orchestrator | None = None
) -> dict[str, Any]:
    """The event of `catalog` (a Glue database, or DuckDB) declaring the consumer `tables` as committed."""
    manifests = {t: lake.manifest("consumer", layout.consumer(t)) or {} for t in tables}
    dates = sorted(m[layout.PARTITION_KEY] for m in manifests.values() if m.get(layout.PARTITION_KEY))
    label, parents = orchestration(by)
    resource = {
        "prefect.resource.id": f"vamosjuntos.catalog.{catalog}",
        "prefect.resource.name": f"catalog {catalog}",
        "vamosjuntos.ingestion_date": dates[-1] if dates else "",
        ORCHESTRATED_BY: label,
    }
    related = [
        _related(UnitRef.of("consumer", layout.consumer(t), m), m.get("run_id"), "input")
        for t, m in manifests.items()
    ]
    return {
        "event": PUBLISHED,
        "resource": resource,
        "related": related + parents,
        "payload": {"tables": tables},
    }


def emit_published(
    lake: Lake, settings: Settings, tables: dict[str, int], by: Orchestrator | None = None
) -> dict[str, Any] | None:
    """Announce a publish (alone, it starts `answer`: prefect.yaml); returns the event sent, or None."""
    catalog = settings.glue_database if settings.engine == "athena" else "duckdb"
    return _emit(lambda: published_event(lake, catalog, tables, by), f"Published {catalog}")
