"""flows/services/answering.py without Prefect: the ten answers over a lake built by the services equal an
independent pandas computation from the source documents; they are stored, and the report is written."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from flows import answers
from flows.report.formats import show
from flows.services.answering import answer
from tests.services.conftest import Built
from tests.support import reference

pytestmark = pytest.mark.integration  # a SecantusDB server and Spark build the lake (conftest.py)


def _shown_answers(page: str) -> list[str]:
    """The value of each answer card, as the page shows it (its unit's tags dropped), spaces aside."""
    values = re.findall(r'<div class="v[^"]*">(.*?)</div>', page, flags=re.S)
    return ["".join(html.unescape(re.sub(r"<[^>]+>", "", v)).split()) for v in values]


def test_the_answers_match_pandas_and_are_stored_with_their_run(built: Built, tmp_path: Path) -> None:
    settings, lake = built.copy(tmp_path)
    done = built.transformed
    answered = answer(settings, lake, "run-1", counts=done.counts, gate=done.gate)
    reference.assert_answers_match(answered.rows, reference.answers(built.docs))
    assert answered.engine == "duckdb"
    assert [q["id"] for q in answered.queries] == list(range(1, 11))
    latest = answers.load_latest(lake)
    assert latest["answers"] == answered.rows
    assert latest["run"]["flow_run_id"] == "run-1" and latest["run"]["queries"] == answered.queries
    page = Path(answered.report_path).read_text()
    assert "<html" in page.lower()
    # Each card shows its answer as the report formats it (unit, thousands separators), in question order.
    assert _shown_answers(page) == ["".join(str(show(a)).split()) for a in answered.rows]


def test_without_the_runs_counts_the_report_reads_them_from_the_lake(built: Built, tmp_path: Path) -> None:
    settings, lake = built.copy(tmp_path)
    answered = answer(settings, lake, "run-2")
    reference.assert_answers_match(answered.rows, reference.answers(built.docs))
    assert Path(answered.report_path).is_file()
