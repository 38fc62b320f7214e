"""A small run of the real steps on generated documents, in a folder of its own: the embedded MongoDB
seeded with `rows` documents, the IBGE snapshot, the extraction, then the Spark steps with the quality gate
between them.

It gets Spark's JVM past a run's first steps before a real run needs it, for two users: the class archive
(flows/spark/class_cache.py keeps the classes such a run loads) and `vamosjuntos spark-server`'s warm-up
(flows/spark/server_warm_up.py: the code such a run compiles). Each runs it in a child process started with
`child_environment`, so that nothing of the user's lake settings can point it at their lake.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
DATE = "2026-01-01"
SETTINGS_PREFIX = "VAMOSJUNTOS_"
SPARK_PREFIX = f"{SETTINGS_PREFIX}SPARK_"
REMOTE = f"{SPARK_PREFIX}REMOTE"


def child_environment(**variables: str) -> dict[str, str]:
    """This process's environment without the project's settings but Spark's tuning, plus `variables`.

    A small run's child reads no `VAMOSJUNTOS_RAW_ROOT`, `VAMOSJUNTOS_MONGO_URI` or other setting of the
    user's that says where data is (Settings reads the environment over its defaults; `run_small` also
    pins them), so its lake and its MongoDB are its own; it keeps `VAMOSJUNTOS_SPARK_*` (driver memory,
    shuffle partitions: it compiles what the user's runs will ask for) but the server to use, which
    `variables` give where there is one. The run's mark stays (flows/orphans.py): what the child starts
    ends with the command that started it."""
    from flows.orphans import MARK, OLD_MARK

    def kept(name: str) -> bool:
        upper = name.upper()
        if not upper.startswith(SETTINGS_PREFIX) or name in (MARK, OLD_MARK):
            return True
        return upper.startswith(SPARK_PREFIX) and upper != REMOTE

    return {**{k: v for k, v in os.environ.items() if kept(k)}, **variables}


def run_small(work: Path, rows: int, rounds: int = 1, **settings: Any) -> list[dict[str, Any]]:
    """Run the steps `rounds` times on `rows` generated documents, the lake and MongoDB's data under `work`,
    with `settings` over a local run's (e.g. `spark_remote`); return the last round's records per zone and
    table (`Transformed.counts`).

    The documents are extracted once; each round transforms them again (a rerun of a date replaces its
    runs), as a later run of the same size would."""
    from pydantic import SecretStr

    from flows.lake import Lake
    from flows.services.ingestion import land_ibge
    from flows.services.transform import transform
    from flows.settings import Settings
    from flows.sources.embedded_mongo import embedded_mongo
    from flows.sources.ibge import SnapshotIbge
    from flows.sources.mongo import extract_pnadc

    # Where the data is, pinned: nothing the environment says can point the run at a user's lake or MongoDB.
    local = {
        "lake_root": str(work / "lake"), "raw_root": None, "processing_root": None, "consumer_root": None,
        "s3_endpoint_url": None, "mongo_uri": None, "spark_runner": "local", "spark_master": "local[*]",
        "spark_remote": None,
    }  # fmt: skip
    config = Settings(_env_file=None, **{**local, **settings})  # type: ignore[call-arg]
    lake = Lake(config)
    mongo = work / "mongo"
    with embedded_mongo(mongo, config.mongo_database, config.mongo_collection, rows, config.seed) as db:
        land_ibge(lake, SnapshotIbge(), DATE)
        extract_pnadc(config.model_copy(update={"mongo_uri": SecretStr(db.uri)}), lake, DATE)
    counts: list[dict[str, Any]] = []
    for _ in range(rounds):
        counts = transform(config, lake, DATE).counts  # the Spark runner and gate the settings name
    return counts
