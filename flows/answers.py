"""Answers to the ten questions: computed by an engine, stored in the lake, printed for people."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from flows import layout
from flows.engines.base import QueryEngine
from flows.errors import AnswerError, DamagedLakeFile, LakeError
from flows.lake import Lake, utcnow
from flows.questions import Question, questions
from flows.report.formats import show

LATEST = layout.ANSWERS


@dataclass(frozen=True)
class Answer:
    id: int
    question: str
    answer: float | str | None
    rows: int


_FIELDS = tuple(f.name for f in fields(Answer))  # what a run stores of each answer, no more


def _value(raw: Any) -> float | str | None:
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return None
    if isinstance(raw, str):
        return raw
    return float(raw)


def answer_all(engine: QueryEngine, selected: tuple[Question, ...] | None = None) -> list[Answer]:
    results = []
    for q in selected or questions():
        columns, rows = engine.query(q.sql)
        if len(rows) != 1 or columns[:2] != ["answer", "row_count"]:
            raise ValueError(
                f"question {q.id} must return one row (answer, row_count); got {columns} x {len(rows)}"
            )
        value, count = rows[0][0], int(rows[0][1] or 0)
        results.append(Answer(q.id, q.text, _value(value) if count else None, count))
    return results


def _non_finite(answers: list[dict[str, Any]]) -> list[str]:
    return [
        f"question {a['id']}: {a['answer']}"
        for a in answers
        if isinstance(a["answer"], float) and not math.isfinite(a["answer"])
    ]


def store(lake: Lake, answers: list[Answer], run: dict[str, Any]) -> str:
    """Replace the latest answers; refused (the previous ones stay) if any answer is not a finite number."""
    rows = [asdict(a) for a in answers]
    if bad := _non_finite(rows):
        raise AnswerError(
            f"not storing answers that are not finite numbers ({'; '.join(bad)}): the consumer data holds "
            "values beyond the contract's ranges; the previous answers were kept. See the quarantine and "
            "docs/lake-and-quality.md."
        )
    payload = {"generated_at": utcnow(), "run": run, "answers": rows}
    return lake.write_json("consumer", LATEST, payload)


def load_latest(lake: Lake) -> dict[str, Any]:
    path = lake.path("consumer", LATEST)
    try:
        payload = lake.read_json("consumer", LATEST)
    except DamagedLakeFile as exc:
        raise _damaged(exc.briefly()) from None
    if payload is None:
        raise LakeError(f"No answers in {lake.root('consumer')}: run `vamosjuntos run` first.")
    if not isinstance(payload.get("answers"), list) or not all(map(_is_answer, payload["answers"])):
        raise _damaged(f"{path} is damaged (its answers are not answers as a run writes them)")
    # Only what a run stores: a key added beside them (a NaN there failed `--format json`) is not an answer's.
    payload["answers"] = [{name: row[name] for name in _FIELDS} for row in payload["answers"]]
    if bad := _non_finite(payload["answers"]):
        raise LakeError(
            f"The latest answers in {path} hold values that are not finite numbers "
            f"({'; '.join(bad)}), written by an older version: run `vamosjuntos run` again."
        )
    return payload


def _is_answer(row: Any) -> bool:
    """An answer as a run stores it: one of our questions, its value in that question's unit."""
    if not isinstance(row, dict) or not all(name in row for name in _FIELDS):
        return False
    if not isinstance(row["question"], str) or type(row["id"]) is not int or type(row["rows"]) is not int:
        return False
    if row["id"] not in {q.id for q in questions()} or type(row["answer"]) not in _STORED:
        return False
    if isinstance(row["answer"], float) and not math.isfinite(row["answer"]):
        return True  # an older version's Infinity: load_latest says so in its own words
    try:
        show(row)  # a value of its question's unit (a state's name, a number)
    except ValueError:
        return False
    return True


_STORED = (float, str, type(None))  # what `_value` gives a stored answer (JSON keeps a float's ".0")


def _damaged(briefly: str) -> LakeError:
    return LakeError(
        f"The latest answers cannot be read: {briefly}, changed outside the pipeline. Run `vamosjuntos run` "
        "again to answer anew (or restore the file from a backup)."
    )


def as_table(answers: list[dict[str, Any]]) -> str:
    lines = [f"{'#':>2}  {'answer':>14}  {'rows':>7}  question", "-" * 100]
    for a in answers:
        lines.append(f"{a['id']:>2}  {show(a)!s:>14}  {a['rows']:>7,}  {a['question']}")
    return "\n".join(lines)


def as_json(answers: list[dict[str, Any]]) -> str:
    return json.dumps(answers, ensure_ascii=False, indent=2, allow_nan=False)  # never invalid JSON
