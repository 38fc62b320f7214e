"""The ten business questions: one SQL file each, in Athena's (Trino) dialect, with its question text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^--\s*question:\s*(.+)$", re.MULTILINE)
_FILE = re.compile(r"^q(\d\d)_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Question:
    id: int
    slug: str
    text: str
    sql: str  # Athena (Trino) dialect; each returns one row: answer, row_count


@cache
def questions() -> tuple[Question, ...]:
    found = []
    for ref in resources.files("flows").joinpath("sql").iterdir():
        match = _FILE.match(ref.name)
        if not match:
            continue
        sql = ref.read_text(encoding="utf-8")
        header = _HEADER.search(sql)
        if not header:
            raise ValueError(f"{ref.name} has no '-- question:' header")
        found.append(Question(int(match.group(1)), match.group(2), header.group(1).strip(), sql))
    found.sort(key=lambda q: q.id)
    if [q.id for q in found] != list(range(1, 11)):
        raise ValueError(f"expected questions 1..10, found {[q.id for q in found]}")
    return tuple(found)
