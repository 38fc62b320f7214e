"""What a benchmark run measures (its plan: sizes, repetitions, sections) and what it found (its results)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.measure import Run

REAL_SIZE = 368_210
DATE = "2026-11-25"
OURS, ORIGINAL = "ours (steps)", "original way"
FLOW, FLOW_SERVER = "vamosjuntos run (ephemeral API)", "vamosjuntos run (running server)"
FLOW_WARM = "vamosjuntos run (running Prefect and Spark servers)"  # `vamosjuntos spark-server`
EXTRACT, DRAIN = "extract_pnadc", "bare drain"
EXTRACT_IN_PROCESS = "extract_pnadc, encoded in process"  # no encoder workers


@dataclass(frozen=True)
class Plan:
    e2e_size: int = REAL_SIZE
    extract_sizes: tuple[int, ...] = (100_000, 500_000, 2_000_000)
    scale_sizes: tuple[int, ...] = (100_000, REAL_SIZE, 1_000_000, 2_000_000)
    repeat: int = 3  # repetitions at sizes up to `large`
    repeat_large: int = 1  # above it (2M extraction, the scaling runs)
    large: int = 500_000
    scale_repeat: int = 1  # scaling sizes other than the end-to-end one
    with_flow: bool = True  # also time `vamosjuntos run` end to end, both ways (ephemeral, running server)...
    flow_repeat: int = 3  # ...in this many of the end-to-end repetitions...
    with_spark_server: bool = True  # ...a third way there too: against `vamosjuntos spark-server` as well
    flow_sizes: tuple[int, ...] = (
        2_000_000,
    )  # ...and once at these scaling sizes, beside ours and the original
    timeout_s: float = 1200  # a contestant still running after this is stopped and reported as failed
    # A what-if at the end-to-end size, once: our pipeline with a smaller Spark driver heap (e.g. "1g").
    whatif_driver_memory: str | None = None
    profile_size: int = 100_000
    question_repeat: int = 5
    smoke: bool = False
    sections: tuple[str, ...] = ("e2e", "extraction", "storage", "scaling")

    def reps(self, size: int) -> int:
        return self.repeat if size <= self.large else self.repeat_large

    @property
    def sizes(self) -> list[int]:
        wanted = set()
        if "e2e" in self.sections or "storage" in self.sections:
            wanted.add(self.e2e_size)
        if "extraction" in self.sections:
            wanted |= {*self.extract_sizes, self.profile_size}
        if "scaling" in self.sections:
            wanted |= set(self.scale_sizes)
        return sorted(wanted)


FULL = Plan()
# CI: every section, every contestant but `vamosjuntos run`, at sizes that take seconds. Not timed.
SMOKE = Plan(
    e2e_size=3_000,
    extract_sizes=(2_000, 6_000),
    scale_sizes=(1_500, 3_000),
    repeat=1,
    repeat_large=1,
    large=10_000,
    with_flow=False,
    flow_sizes=(),
    timeout_s=600,
    whatif_driver_memory=None,
    profile_size=2_000,
    question_repeat=2,
    smoke=True,
)


@dataclass
class Results:
    plan: dict[str, Any]
    machine: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    seeding: dict[str, Any] = field(default_factory=dict)
    questions: dict[str, Any] = field(default_factory=dict)
    anatomy: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    baseline_storage: dict[str, Any] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    servers: dict[str, Any] = field(default_factory=dict)  # the running servers' start-up times, failures
    stopped: str = ""  # why the run ended before its plan did (its results are what it measured until then)
    started_at: str = ""
    finished_at: str = ""
    duration_s: float = 0.0

    def runs_of(self, label: str, size: int | None = None, section: str | None = None) -> list[Run]:
        return [
            Run.from_dict(r)
            for r in self.runs
            if r["label"] == label
            and (size is None or r["size"] == size)
            and (section is None or section in r["extra"].get("sections", []))
        ]

    def save(self, path: Path) -> None:
        """Whole or not at all: written beside and renamed (a signal or a kill mid-write leaves the last)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + ".part")
        part.write_text(json.dumps(asdict(self), indent=1, default=str))
        os.replace(part, path)

    @classmethod
    def load(cls, path: Path) -> Results:
        """A run saved by `save`; ValueError for a file that is JSON but no saved run (the report would
        otherwise fail halfway through, after drawing some of its plots)."""
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"a saved run is a JSON object, not {type(data).__name__}")
        results = cls(**data)
        if not isinstance(results.plan, dict) or not isinstance(results.machine, dict):
            raise ValueError("its 'plan' and 'machine' are not objects")
        try:  # each run read as the report reads it
            if not all(isinstance(Run.from_dict(r).extra, dict) for r in results.runs):
                raise TypeError("a run's 'extra' is not an object")
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            why = f"{type(exc).__name__}: {exc}"
            raise ValueError(f"its 'runs' are not runs this harness saved ({why})") from None
        return results


def with_overrides(plan: Plan, **changes: Any) -> Plan:
    return replace(plan, **{k: v for k, v in changes.items() if v is not None})
