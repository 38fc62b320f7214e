"""Stage marks a worker reports to the parent: names and wall-clock bounds (the samples' clock)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Marks:
    def __init__(self) -> None:
        self.stages: list[dict[str, Any]] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        """Time the enclosed block; the yielded dict collects facts about the stage (e.g. Spark metrics)."""
        info: dict[str, Any] = {}
        start = time.time()
        try:
            yield info
        finally:
            self.stages.append({"name": name, "start": start, "end": time.time(), "info": info})
