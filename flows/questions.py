"""The SQL files: the ten business questions and the report's chart queries, in Athena's (Trino) dialect.

Each file opens with a header of `-- key: value` comment lines, the one place that says what the query
answers and in what unit (nothing guesses it from the English text). A line starting in lowercase
continues the field above it; any other comment line ends the field. A question's header:

    -- question: Average income of residents of Distrito Federal.
    -- unit: R$
    -- rows: the target public living in Distrito Federal.

`unit` is one of `UNITS`. A chart query (`sql/charts/<name>.sql`) declares `chart:` and `units:`, the unit of
each measured column: `-- units: avg_renda=R$, avg_anosesco=years`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Literal, cast, get_args

Unit = Literal["R$", "years", "state"]  # money (Brazilian reais), years of schooling, a state's name
UNITS: tuple[Unit, ...] = get_args(Unit)
FIELDS = ("question", "chart", "unit", "units", "rows")  # what a header may declare

_FIELD = re.compile(r"^([a-z]+):\s*(.*)$")
_FILE = re.compile(r"^q(\d\d)_([a-z0-9_]+)\.sql$")


class SqlHeaderError(ValueError):
    """A shipped SQL file whose header is missing a field or declares an unknown unit."""


@dataclass(frozen=True)
class Question:
    id: int
    slug: str
    text: str
    unit: Unit  # of the `answer` column
    rows_note: str  # what the rows behind the answer are (its `-- rows:` field)
    sql: str  # Athena (Trino) dialect; each returns one row: answer, row_count


@dataclass(frozen=True)
class ChartQuery:
    name: str
    title: str
    units: dict[str, Unit]  # measured column -> unit
    sql: str  # Athena (Trino) dialect


def header(sql: str) -> dict[str, str]:
    """The `-- key: value` fields of the comment lines that open a SQL file (continuations joined)."""
    fields: dict[str, str] = {}
    current: str | None = None
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        text = line[2:].strip()
        match = _FIELD.match(text)
        if match and match.group(1) in FIELDS:
            current = match.group(1)
            fields[current] = match.group(2).strip()
        elif current is not None and text[:1].islower():
            fields[current] = f"{fields[current]} {text}"
        else:
            current = None  # a free comment (e.g. how ties break), not part of any field
    return fields


def query_label(sql: str) -> str:
    """How an error names a query: its question or chart as the header says."""
    fields = header(sql)
    if "question" in fields:
        return f"question {fields['question']!r}"
    return f"chart query {fields['chart']!r}" if "chart" in fields else "query"


def _unit(name: str, value: str) -> Unit:
    if value not in UNITS:
        raise SqlHeaderError(f"{name}: unit {value!r} is not one of {', '.join(UNITS)}")
    return cast(Unit, value)


def _required(name: str, fields: dict[str, str], key: str) -> str:
    if not fields.get(key):
        raise SqlHeaderError(f"{name} has no '-- {key}:' header")
    return fields[key]


def _sql_files(folder: str) -> list[Traversable]:
    return sorted(
        (f for f in resources.files("flows").joinpath(folder).iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )


@cache
def questions() -> tuple[Question, ...]:
    found = []
    for ref in _sql_files("sql"):
        match = _FILE.match(ref.name)
        if not match:
            continue
        sql = ref.read_text(encoding="utf-8")
        fields = header(sql)
        text = _required(ref.name, fields, "question")
        unit = _unit(ref.name, _required(ref.name, fields, "unit"))
        found.append(Question(int(match.group(1)), match.group(2), text, unit, fields.get("rows", ""), sql))
    found.sort(key=lambda q: q.id)
    if [q.id for q in found] != list(range(1, 11)):
        raise ValueError(f"expected questions 1..10, found {[q.id for q in found]}")
    return tuple(found)


def units_field(name: str, value: str) -> dict[str, Unit]:
    """`avg_renda=R$, avg_anosesco=years` -> {column: unit}."""
    units = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        column, sep, unit = (s.strip() for s in item.partition("="))
        if not (sep and column):
            raise SqlHeaderError(f"{name}: '-- units:' expects column=unit pairs, got {item!r}")
        units[column] = _unit(name, unit)
    return units


@cache
def chart_queries() -> tuple[ChartQuery, ...]:
    """The report's chart queries (`sql/charts/*.sql`), by file name."""
    found = []
    for ref in _sql_files("sql/charts"):
        sql = ref.read_text(encoding="utf-8")
        fields = header(sql)
        title = _required(ref.name, fields, "chart")
        units = units_field(ref.name, _required(ref.name, fields, "units"))
        found.append(ChartQuery(ref.name.removesuffix(".sql"), title, units, sql))
    return tuple(found)
