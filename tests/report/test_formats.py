"""An answer shows with its unit, the same on the report page, in the Prefect artifacts and in the CLI."""

from __future__ import annotations

import re

import pytest

from flows.questions import questions
from flows.report.formats import NO_DATA, Shown, fmt_bytes, fmt_ms, show, show_answer


@pytest.mark.parametrize(
    ("value", "unit", "shown", "parts"),
    [
        (2303.0249, "R$", "R$ 2,303.02", ("R$", "2,303.02", "")),
        (1234567.891, "R$", "R$ 1,234,567.89", ("R$", "1,234,567.89", "")),
        (0.0, "R$", "R$ 0.00", ("R$", "0.00", "")),
        (9.5349, "years", "9.53 years", ("", "9.53", "years")),
        (12, "years", "12.00 years", ("", "12.00", "years")),
        ("Paraná", "state", "Paraná", ("", "Paraná", "")),
        (None, "R$", NO_DATA, ("", NO_DATA, "")),
        (None, "years", NO_DATA, ("", NO_DATA, "")),
        (None, "state", NO_DATA, ("", NO_DATA, "")),
    ],
)
def test_an_answer_is_shown_with_its_unit(value: object, unit: str, shown: str, parts: tuple) -> None:
    got = show_answer(value, unit)  # type: ignore[arg-type]
    assert str(got) == shown
    assert (got.prefix, got.text, got.suffix) == parts
    assert got.no_data is (value is None)


def test_no_data_is_never_a_zero_and_a_zero_is_never_no_data() -> None:
    assert show_answer(None, "years") == Shown(NO_DATA, no_data=True)
    assert not show_answer(0.0, "years").no_data


@pytest.mark.parametrize(("value", "unit"), [(2303.02, "state"), ("Paraná", "R$"), ("9.5", "years")])
def test_a_value_of_the_wrong_kind_for_its_unit_is_an_error(value: object, unit: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"unit '{unit}'")):
        show_answer(value, unit)  # type: ignore[arg-type]


def test_a_stored_answer_takes_the_unit_its_sql_file_declares() -> None:
    by_id = {q.id: q for q in questions()}
    assert str(show({"id": 1, "answer": 2150.5})) == "R$ 2,150.50"
    assert str(show({"id": 4, "answer": "Pará"})) == "Pará"
    assert str(show({"id": 6, "answer": None})) == "no data"  # no men in the consumer zone
    assert str(show({"id": 7, "answer": 11.25})) == "11.25 years"
    assert {q.id for q in by_id.values() if q.unit == "R$"} == {1, 2, 3, 8, 9, 10}


def test_bytes_and_durations() -> None:
    assert [fmt_bytes(n) for n in (None, 0, 1023, 2048, 5 * 1024**3)] == [
        "n/a",
        "0 B",
        "1,023 B",
        "2.0 KB",
        "5.0 GB",
    ]
    assert [fmt_ms(ms) for ms in (None, 12, 9_999, 12_345)] == ["n/a", "12 ms", "9,999 ms", "12.3 s"]
