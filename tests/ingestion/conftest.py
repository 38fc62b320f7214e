"""Fixtures of the ingestion tests: fast retry settings, an auth-enabled SecantusDB."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bson.json_util import loads
from pymongo import MongoClient

from flows.lake import Lake
from flows.settings import Settings
from flows.sources.local_mongo import SecantusProcess, free_port, seed

DATE = "2026-11-25"
USER, PASSWORD = "etl", "Sup3r-s3cret-PW"


@pytest.fixture
def fast(settings_for: Callable[..., Settings]) -> Callable[..., Settings]:
    """Settings with short waits: retries, reconnects and server selection measured in tenths of seconds."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "ibge_backoff_base_s": 0.02,
            "ibge_connect_timeout_s": 1.0,
            "ibge_read_timeout_s": 2.0,
            "ibge_max_retries": 3,
            "ibge_retry_budget_s": 20.0,
            "mongo_server_selection_timeout_ms": 800,
            "mongo_reconnects": 2,
            "mongo_reconnect_backoff_s": 0.05,
        }
        values.update(overrides)
        return settings_for(**values)

    return make


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


@pytest.fixture
def mongo_server(tmp_path: Path) -> Iterator[SecantusProcess]:
    """The shared fixture's server, but killed at teardown: a throw-away store needs no clean shutdown."""
    server = SecantusProcess(tmp_path / "mongo", test_commands=True).start()
    try:
        yield server
    finally:
        server.stop(kill=True)


@pytest.fixture
def seeded(mongo_server: SecantusProcess) -> Callable[[int], SecantusProcess]:
    def make(rows: int) -> SecantusProcess:
        seed(mongo_server.uri, "ibge", "pnadc20203", rows, 7)
        return mongo_server

    return make


@pytest.fixture
def auth_mongo(tmp_path: Path) -> Iterator[SecantusProcess]:
    """A SecantusDB with SCRAM auth on: the user is created without auth, then the server restarts."""
    server = SecantusProcess(tmp_path / "auth-mongo").start()
    try:
        client: MongoClient[Any] = MongoClient(server.uri)
        client.admin.command("createUser", USER, pwd=PASSWORD, roles=[{"role": "readWrite", "db": "ibge"}])
        client.close()
        seed(server.uri, "ibge", "pnadc20203", 1_000, 7)
        server.stop()
        server.auth = True
        server.start()
        yield server
    finally:
        server.stop(kill=True)


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
    logger = logging.getLogger(f"tests.ingestion.{name}")
    logger.setLevel(logging.INFO)
    for h in list(logger.handlers):
        logger.removeHandler(h)
    for h in handlers:
        logger.addHandler(h)
    return logger
