"""What the source tests share: the run date, the auth user, a dead URL, and readers of a run's raw batch
and of the source collection (their fixtures, `fast`, `seeded`, `auth_mongo`, are in tests/conftest.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bson.json_util import loads
from pymongo import MongoClient

from flows.lake import Lake
from flows.sources.local_mongo import free_port

DATE = "2026-11-25"
USER, PASSWORD = "etl", "Sup3r-s3cret-PW"


def dead_url() -> str:
    """A loopback port nobody listens on: connections are refused at once."""
    return f"http://127.0.0.1:{free_port()}/api/v1/localidades"


def raw_docs(lake: Lake, date: str = DATE) -> list[dict[str, Any]]:
    """Every document of the committed pnadc batch of `date`, read back through its manifest."""
    import gzip

    fs = lake.fs("raw")
    docs: list[dict[str, Any]] = []
    for path in lake.committed_files("raw", f"pnadc/ingestion_date={date}"):
        with fs.open(path, "rb") as fh:
            docs.extend(loads(line) for line in gzip.decompress(fh.read()).decode().splitlines())
    return docs


def source_ids(uri: str, collection: str = "pnadc20203") -> list[Any]:
    client: MongoClient[Any] = MongoClient(uri)
    try:
        return [d["_id"] for d in client["ibge"][collection].find({}, {"_id": 1}).sort("_id", 1)]
    finally:
        client.close()


class OnMessage(logging.Handler):
    """Runs `action` once, when a log record starting with `prefix` is emitted (a hook into a real run)."""

    def __init__(self, prefix: str, action: Callable[[], None]) -> None:
        super().__init__()
        self.prefix, self.action, self.fired = prefix, action, False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.fired and record.getMessage().startswith(self.prefix):
            self.fired = True
            self.action()


def hooked_logger(name: str, *handlers: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"tests.sources.{name}")
    logger.setLevel(logging.INFO)
    for h in list(logger.handlers):
        logger.removeHandler(h)
    for h in handlers:
        logger.addHandler(h)
    return logger
