"""A lake built by the plain services alone (no Prefect): IBGE's snapshot and a seeded SecantusDB landed
raw, the Spark steps and the gate run by the transform service. Built once for tests/services/."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from flows.lake import Lake
from flows.services.ingestion import land_ibge
from flows.services.run import Transformed
from flows.services.transform import transform
from flows.settings import Settings
from flows.sources.ibge import SnapshotIbge
from flows.sources.local_mongo import SecantusProcess
from flows.sources.local_mongo_seed import seed
from flows.sources.mongo import extract_pnadc

DATE = "2026-11-25"
ROWS = 3_000


@dataclass(frozen=True)
class Built:
    settings: Settings
    docs: list[dict[str, Any]]  # the source collection, for an independent computation of the answers
    transformed: Transformed

    def copy(self, to: Path) -> tuple[Settings, Lake]:
        """The built lake copied under `to`, for a test that changes it."""
        shutil.copytree(self.settings.lake_root, to / "lake")
        settings = self.settings.model_copy(update={"lake_root": str(to / "lake")})
        return settings, Lake(settings)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("services")
    with SecantusProcess(root / "mongo") as mongo:
        seed(mongo.uri, "ibge", "pnadc20203", ROWS, 7)
        client: MongoClient[Any] = MongoClient(mongo.uri)
        docs = list(client["ibge"]["pnadc20203"].find({}))
        client.close()
        settings = Settings(
            lake_root=str(root / "lake"),
            mongo_uri=mongo.uri,
            ibge_source="snapshot",
            spark_master="local[2]",
            spark_shuffle_partitions=4,
            engine="duckdb",
        )
        lake = Lake(settings)
        land_ibge(lake, SnapshotIbge(), DATE)
        extract_pnadc(settings, lake, DATE)
    return Built(settings, docs, transform(settings, lake, DATE))
