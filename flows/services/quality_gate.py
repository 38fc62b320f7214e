"""The quality gate as a service: run the checks of a date, store the verdict, hand it back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flows.lake import Lake
from flows.layout import gate_report
from flows.quality import Check, enforce, run_gate
from flows.settings import Settings


@dataclass(frozen=True)
class GateVerdict:
    """The checks of one ingestion date and whether all passed."""

    ingestion_date: str
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def rows(self) -> list[dict[str, Any]]:
        return [c.as_dict() for c in self.checks]

    def as_report(self) -> dict[str, Any]:
        """The gate report as stored beside the processing zone (and shown by the CLI and the HTML report)."""
        return {"ingestion_date": self.ingestion_date, "passed": self.passed, "checks": self.rows()}

    def enforce(self) -> None:
        """Raise QualityGateFailed naming every failed check: the consumer zone must not be rebuilt."""
        enforce(list(self.checks))


def quality_gate(settings: Settings, lake: Lake, ingestion_date: str) -> GateVerdict:
    """Check the date's processing data and store the verdict. Never raises for a failed check: the caller
    reports the verdict first, then enforces it."""
    verdict = GateVerdict(ingestion_date, tuple(run_gate(lake, settings, ingestion_date)))
    lake.write_json("processing", gate_report(ingestion_date), verdict.as_report())
    return verdict
