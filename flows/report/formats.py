"""How values are shown to people: an answer with its unit, a count of bytes, a duration.

One place for the HTML report, the Prefect artifacts and the CLI, so an answer reads the same everywhere:
`R$ 2,303.02`, `9.53 years`, `Paraná`, `no data`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flows.questions import Unit, questions

NO_DATA = "no data"


@dataclass(frozen=True)
class Shown:
    """An answer as shown: its text, and the unit around it (the page styles the unit apart)."""

    text: str
    prefix: str = ""
    suffix: str = ""
    no_data: bool = False

    def __str__(self) -> str:
        return " ".join(part for part in (self.prefix, self.text, self.suffix) if part)


def fmt_number(value: float | None, digits: int = 2) -> str:
    return NO_DATA if value is None else f"{value:,.{digits}f}"


def show_answer(value: float | str | None, unit: Unit, digits: int = 2) -> Shown:
    """An answer with its unit: reais with thousands separators, years, a state's name; None is "no data".

    A value of the wrong kind for its unit (a number for a state, a name for an amount) means the SQL file's
    `-- unit:` header does not describe its answer: an error, not a guess.
    """
    if value is None:
        return Shown(NO_DATA, no_data=True)
    if unit == "state":
        if not isinstance(value, str):
            raise ValueError(f"an answer in unit 'state' must be a state's name, got {value!r}")
        return Shown(value)
    if isinstance(value, str) or not isinstance(value, int | float):
        raise ValueError(f"an answer in unit {unit!r} must be a number, got {value!r}")
    number = fmt_number(value, digits)
    return Shown(number, prefix="R$") if unit == "R$" else Shown(number, suffix="years")


def show(answer: Mapping[str, Any]) -> Shown:
    """A stored answer ({id, answer, ...}) with the unit its question's SQL file declares."""
    unit = {q.id: q.unit for q in questions()}[answer["id"]]
    return show_answer(answer["answer"], unit)


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{n} B"


def fmt_ms(ms: int | None) -> str:
    if ms is None:
        return "n/a"
    return f"{ms:,} ms" if ms < 10_000 else f"{ms / 1000:,.1f} s"
