"""The answers artifacts: each answer with its unit; data shown as text (a hostile name injects nothing)."""

from __future__ import annotations

from markdown_it import MarkdownIt

from flows.report.artifacts import answers_table, markdown_summary

HOSTILE = '<script>alert("x")</script> | **bold** [link](http://evil) `code` _em_\nsecond line'


def _render(markdown: str) -> str:
    """As a Markdown viewer with raw HTML allowed would show it (the worst case for the artifact)."""
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)


def test_a_hostile_state_name_is_shown_as_text_in_the_answers_summary() -> None:
    answers = [
        {"id": 4, "question": "The state with the lowest average income?", "answer": HOSTILE, "rows": 3},
        {"id": 1, "question": "Average income (renda) | all?", "answer": 2303.02, "rows": 10},
        {"id": 6, "question": "Schooling <b>of men</b>?", "answer": None, "rows": 0},
    ]
    queries = [{"id": 4, "bytes_scanned": 2048, "total_ms": 12}]
    markdown = markdown_summary(answers, queries, "/lake/<script>/`x`/latest.html")
    html = _render(markdown)

    assert "<script" not in html and "<b>" not in html and "<a " not in html
    assert "<strong>bold</strong>" not in html and "<code>" not in html and "<em>" not in html
    assert "&lt;script&gt;" in html and "**bold**" in html and "[link](http://evil)" in html
    # the table keeps its shape: one header, three rows of six cells, the hostile text in one cell
    assert html.count("<tr>") == 4
    assert all(row.count("<td") == 6 for row in html.split("<tr>")[2:])
    assert "R$ 2,303.02" in html and "no data" in html and "2.0 KB" in html


def test_the_answers_table_shows_each_answer_with_its_unit_and_what_its_query_cost() -> None:
    answers = [
        {"id": 1, "question": "Average income?", "answer": 2303.0249, "rows": 10},
        {"id": 4, "question": "Lowest income state?", "answer": "Paraná", "rows": 9},
        {"id": 6, "question": "Men in MT?", "answer": None, "rows": 0},
        {"id": 7, "question": "Schooling in PR?", "answer": 11.5, "rows": 3},
    ]
    queries = [{"id": 1, "query_id": "q-1", "bytes_scanned": 2048, "engine_ms": 5, "total_ms": 12}]
    table = answers_table(answers, queries)
    assert [r["answer"] for r in table] == ["R$ 2,303.02", "Paraná", "no data", "11.50 years"]
    assert table[0] == {
        "id": 1, "question": "Average income?", "answer": "R$ 2,303.02", "rows": 10,
        "bytes_scanned": 2048, "engine_ms": 5, "total_ms": 12, "query_id": "q-1",
    }  # fmt: skip
    assert table[2]["bytes_scanned"] is None and table[2]["rows"] == 0


def test_the_summary_shows_each_answer_with_its_unit() -> None:
    answers = [
        {"id": 7, "question": "Schooling in PR?", "answer": 11.5, "rows": 3},
        {"id": 9, "question": "Income per mesoregion?", "answer": 1234567.0, "rows": 3},
    ]
    html = _render(markdown_summary(answers, [], "/lake/latest.html"))
    assert "<strong>11.50 years</strong>" in html and "<strong>R$ 1,234,567.00</strong>" in html
