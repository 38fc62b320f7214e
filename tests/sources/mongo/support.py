"""Helpers shared by the extraction tests: settings for a server, the exact-copy check, a worker process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymongo import MongoClient, monitoring

from flows.lake import Lake
from flows.settings import Settings
from flows.sources.local_mongo import SecantusProcess
from tests.support.sources import DATE, raw_docs, source_ids

ROOT = Path(__file__).resolve().parents[3]


def mongo_settings(fast: Callable[..., Settings], server: SecantusProcess, **overrides: Any) -> Settings:
    return fast(mongo_uri=server.uri, **overrides)


def assert_exactly_the_source(lake: Lake, uri: str, date: str = DATE) -> None:
    got = [d["_id"] for d in raw_docs(lake, date)]
    assert len(got) == len(set(got)), "duplicated documents in the raw batch"
    assert got == source_ids(uri), "the raw batch is not exactly the source, in _id order"


def run_worker(settings: Settings, kill_after_part: int | None = None) -> subprocess.Popen[bytes]:
    """`extract_pnadc` in its own process (tests/sources/mongo/_extract_worker.py)."""
    cfg = {
        "settings": {
            "lake_root": settings.lake_root,
            "mongo_uri": settings.mongo_uri.get_secret_value() if settings.mongo_uri else None,
            "mongo_batch_size": settings.mongo_batch_size,
        },
        "date": DATE,
        "kill_after_part": kill_after_part,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.sources.mongo._extract_worker", json.dumps(cfg)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


class OnGetMore(monitoring.CommandListener):
    """Runs `action` once, as the client asks for the stream's `nth` further batch: mid-stream, whatever
    the main thread is doing (the read-ahead thread drains the cursor at the server's pace)."""

    def __init__(self, nth: int, action: Callable[[], object]) -> None:
        self.nth, self.action = nth, action
        self.seen = 0
        self.fired = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "getMore":
            self.seen += 1
            if self.seen == self.nth:
                self.action()
                self.fired = True

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class Commands(monitoring.CommandListener):
    """The commands a client sent (name and body), of the names asked for."""

    def __init__(self, *names: str) -> None:
        self.names = set(names)
        self.commands: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in self.names:
            self.commands.append({"name": event.command_name, **dict(event.command)})

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def named(self, name: str) -> list[dict[str, Any]]:
        return [c for c in self.commands if c["name"] == name]


def drop_next_getmore(server: SecantusProcess) -> None:
    """The server closes the connection of the next getMore it receives (its failCommand fail point)."""
    MongoClient(server.uri).admin.command(
        "configureFailPoint",
        "failCommand",
        mode={"times": 1},
        data={"failCommands": ["getMore"], "closeConnection": True},
    )
