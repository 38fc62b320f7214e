"""Landing the IBGE endpoints in the raw zone: one endpoint fetched and committed as it came."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flows.lake import Lake
from flows.layout import IBGE_ENTITIES, Entity
from flows.sources.ibge import IbgeSource
from flows.sources.ibge import land as commit_ibge


@dataclass(frozen=True)
class IbgeLanded:
    """One endpoint's raw batch: where it came from and what its manifest records."""

    entity: Entity
    records: int
    source: str  # "api" or "snapshot"
    url: str
    attempts: int
    manifest: dict[str, Any]


def land_ibge_endpoint(lake: Lake, source: IbgeSource, entity: Entity, ingestion_date: str) -> IbgeLanded:
    """Fetch one endpoint and commit it unchanged as the entity's raw unit of that date."""
    fetched = source.fetch(entity)
    manifest = commit_ibge(lake, fetched, ingestion_date)
    return IbgeLanded(entity, manifest["records"], fetched.source, fetched.url, fetched.attempts, manifest)


def land_ibge(lake: Lake, source: IbgeSource, ingestion_date: str) -> dict[Entity, IbgeLanded]:
    """Every endpoint, one after the other (the `ingest_ibge` flow lands them concurrently, as tasks)."""
    return {e: land_ibge_endpoint(lake, source, e, ingestion_date) for e in IBGE_ENTITIES}
