"""What a transform and a whole lakehouse run hand back, so that nobody reads them from the lake again."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from flows.answers import Answer
from flows.services.quality_gate import GateVerdict


@dataclass(frozen=True)
class Transformed:
    """A date's transform: the gate's verdict and the records each zone's table holds after it."""

    ingestion_date: str
    gate: GateVerdict
    counts: list[dict[str, Any]]  # one row per zone and table: zone, table, records (flows.summary)


@dataclass(frozen=True)
class RunSummary:
    """A `lakehouse` run: what it counted, the gate's verdict, the answers and where the report is."""

    ingestion_date: str
    counts: list[dict[str, Any]]
    gate: GateVerdict
    answers: list[Answer]
    report_path: str

    @property
    def answer_rows(self) -> list[dict[str, Any]]:
        """The answers as the CLI and the `answers` artifact show them (id, question, answer, rows)."""
        return [asdict(a) for a in self.answers]
