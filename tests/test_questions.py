"""The SQL files' headers: one parser says what each query answers and in what unit."""

from __future__ import annotations

import pytest

from flows.questions import (
    UNITS,
    SqlHeaderError,
    chart_queries,
    header,
    query_label,
    questions,
    units_field,
)

SQL = """-- question: Average schooling of men in Mato Grosso.
-- unit: years
-- rows: men in Mato Grosso in the consumer zone: none,
-- so the answer is NULL ("no data"), never 0.
-- Ties break by name so the answer is stable.
-- not a continuation: the field ended at the free comment above
SELECT avg(anosesco) AS answer, count(*) AS row_count
-- unit: R$ (below the header: SQL, not a header field)
FROM publico_alvo
"""


def test_the_header_is_the_opening_comment_lines_with_their_continuations() -> None:
    assert header(SQL) == {
        "question": "Average schooling of men in Mato Grosso.",
        "unit": "years",
        "rows": 'men in Mato Grosso in the consumer zone: none, so the answer is NULL ("no data"), never 0.',
    }
    assert header("SELECT 1") == {}
    assert query_label(SQL) == "question 'Average schooling of men in Mato Grosso.'"
    assert query_label("-- chart: by state\nSELECT 1") == "chart query 'by state'"
    assert query_label("SELECT 1") == "query"


def test_every_question_declares_its_unit_and_what_its_rows_are() -> None:
    units = {q.id: q.unit for q in questions()}
    assert units == {1: "R$", 2: "R$", 3: "R$", 4: "state", 5: "state",
                     6: "years", 7: "years", 8: "R$", 9: "R$", 10: "R$"}  # fmt: skip
    assert all(q.rows_note and q.text for q in questions())
    q6 = questions()[5]
    assert q6.rows_note.endswith('so the answer is NULL ("no data"), never 0.')


def test_every_chart_query_declares_the_unit_of_each_measure() -> None:
    charts = {c.name: c for c in chart_queries()}
    assert set(charts) == {"by_state", "by_region"}
    for chart in charts.values():
        assert chart.units == {"avg_renda": "R$", "avg_anosesco": "years"}
        assert chart.title.startswith("average income and schooling")


def test_an_unknown_unit_or_a_malformed_units_field_is_a_clear_error() -> None:
    assert units_field("x.sql", "a=R$, b=years") == {"a": "R$", "b": "years"}
    with pytest.raises(
        SqlHeaderError, match=r"x\.sql: unit 'BRL' is not one of " + ", ".join(UNITS).replace("$", r"\$")
    ):
        units_field("x.sql", "a=BRL")
    with pytest.raises(SqlHeaderError, match=r"column=unit pairs, got 'R\$'"):
        units_field("x.sql", "R$")
