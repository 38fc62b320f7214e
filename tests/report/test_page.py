"""The report page of a real run in a real browser: charts from the run's numbers, answers with units."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from flows.lake import Lake
from flows.layout import gate_report
from flows.report import page
from flows.report.store import location
from flows.settings import Settings
from flows.summary import zone_counts
from tests.support.chromium import Chromium, chromium_executable
from tests.support.local_run import RUN_DATE, LocalRun

UNITS = {1: "R$", 2: "R$", 3: "R$", 6: "years", 7: "years", 8: "R$", 9: "R$", 10: "R$"}
PAGE_STATE = """(() => {
  const box = (el) => el.getBoundingClientRect();
  const charts = {};
  for (const svg of document.querySelectorAll('svg.chart')) {
    charts[svg.id] = {
      width: box(svg).width,
      bars: [...svg.querySelectorAll('rect.bar')].map((r) => ({
        key: r.dataset.key, value: parseFloat(r.dataset.value), width: box(r).width, height: box(r).height,
      })),
      nodata: svg.querySelectorAll('text.nodata').length,
    };
  }
  const cards = [...document.querySelectorAll('article.answer')].map((a) => (
    {id: Number(a.dataset.question), rows: Number(a.dataset.rows), text: a.innerText}));
  const zones = [...document.querySelectorAll('#zones tr[data-zone]')].map((r) => (
    {zone: r.dataset.zone, table: r.dataset.table, records: r.cells[2].innerText}));
  return {charts, cards, zones, title: document.title};
})()"""


def _people(lake: Lake) -> list[dict[str, Any]]:
    """The consumer's target public straight from its Parquet files, partition values from the folders."""
    rows = []
    for path in lake.committed_files("consumer", "publico_alvo"):
        parts = dict(
            seg.split("=", 1) for seg in path.split("/") if "=" in seg and not seg.startswith("run=")
        )
        rows += [{**r, **parts} for r in pq.read_table(path).to_pylist()]
    return rows


def _averages(people: list[dict[str, Any]], key: str, field: str) -> dict[str, float]:
    groups: dict[str, list[float]] = {}
    for p in people:
        if p[field] is not None:
            groups.setdefault(p[key], []).append(p[field])
    return {k: sum(v) / len(v) for k, v in groups.items()}


@pytest.fixture(scope="module")
def browser_view(
    local_run: LocalRun, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Chromium]:
    executable = chromium_executable()
    if executable is None:  # a missing dependency is a failure, never a skip
        pytest.fail("chromium is not installed: apt-get install -y chromium (bash .ci/setup does it)")
    path = Path(location(local_run.lake))
    with Chromium(tmp_path_factory.mktemp("chromium"), executable) as browser:
        browser.open(path.as_uri())
        state = browser.evaluate(PAGE_STATE)
    return state, browser


@pytest.mark.integration
def test_the_report_renders_in_chromium_without_errors_or_requests(
    browser_view: tuple[dict[str, Any], Chromium],
) -> None:
    state, browser = browser_view
    assert browser.problems() == []
    assert all(u.startswith("file://") for u in browser.requests()), browser.requests()
    assert state["title"].startswith("#VamosJuntos")


@pytest.mark.integration
def test_the_charts_are_drawn_from_the_consumer_data(
    browser_view: tuple[dict[str, Any], Chromium], local_run: LocalRun
) -> None:
    state, _ = browser_view
    charts = state["charts"]
    assert set(charts) == {
        "income-by-state", "schooling-by-state", "income-by-region", "schooling-by-region", "records-by-zone",
    }  # fmt: skip
    people = _people(local_run.lake)
    expected = {
        "income-by-state": _averages(people, "uf_sigla", "renda"),
        "schooling-by-state": _averages(people, "uf_sigla", "anosesco"),
        "income-by-region": _averages(people, "regiao_sigla", "renda"),
        "schooling-by-region": _averages(people, "regiao_sigla", "anosesco"),
    }
    ufs = {
        r["uf_sigla"] for r in pq.read_table(local_run.lake.committed_files("consumer", "ufs")[0]).to_pylist()
    }
    for chart_id, want in expected.items():
        chart = charts[chart_id]
        got = {b["key"]: b["value"] for b in chart["bars"]}
        assert got == pytest.approx(want, rel=1e-9), chart_id
        # one row per IBGE state/region: the ones without a value are shown as "no data", not dropped
        expected_rows = 27 if "state" in chart_id else 5
        assert len(chart["bars"]) + chart["nodata"] == expected_rows
        if "state" in chart_id:
            assert set(got) <= ufs
        # drawn: every bar has a size, bars are sorted by value, and lengths are proportional to values
        assert chart["width"] > 300
        assert all(b["width"] > 0 and b["height"] > 0 for b in chart["bars"])
        values = [b["value"] for b in chart["bars"]]
        assert values == sorted(values, reverse=True)
        scale = [b["width"] / b["value"] for b in chart["bars"]]
        assert max(scale) == pytest.approx(min(scale), rel=0.01)


@pytest.mark.integration
def test_the_answers_and_zone_counts_shown_are_the_runs(
    browser_view: tuple[dict[str, Any], Chromium], local_run: LocalRun
) -> None:
    state, _ = browser_view
    cards = {c["id"]: c for c in state["cards"]}
    assert sorted(cards) == list(range(1, 11))
    for a in local_run.answers:
        card = cards[a["id"]]
        assert card["rows"] == a["rows"]
        if a["answer"] is None:
            assert "no data" in card["text"]
        elif isinstance(a["answer"], str):
            assert a["answer"] in card["text"]
        else:
            assert f"{a['answer']:,.2f}" in card["text"]
        if a["answer"] is not None and a["id"] in UNITS:  # the unit each SQL file declares, by the value
            assert UNITS[a["id"]] in card["text"]
    assert "no data" in cards[6]["text"]  # no men in the consumer zone

    counts = zone_counts(local_run.lake, RUN_DATE)
    shown = {(z["zone"], z["table"]): z["records"] for z in state["zones"]}
    assert shown == {
        (c["zone"], c["table"]): "-" if c["records"] is None else f"{c['records']:,}" for c in counts
    }
    raw = next(c["records"] for c in counts if (c["zone"], c["table"]) == ("raw", "pnadc"))
    flow = {b["key"]: b["value"] for b in state["charts"]["records-by-zone"]["bars"]}
    assert flow["raw"] == raw


def test_rendering_escapes_what_it_shows(tmp_path: Path) -> None:
    lake = Lake(Settings(lake_root=str(tmp_path / "lake")))
    answers = [
        {"id": i, "question": "Q <script>alert(1)</script>", "answer": None, "rows": 0} for i in range(1, 11)
    ]
    data = {
        "by_state": [
            {"uf_sigla": "XX", "uf_nome": "<b>X</b>", "regiao_sigla": "N", "regiao_nome": "Norte",
             "avg_renda": None, "avg_anosesco": None, "with_renda": 0, "with_anosesco": 0, "people": 0},
        ],
        "by_region": [
            {"regiao_sigla": "N", "regiao_nome": "Norte", "avg_renda": 10.0, "avg_anosesco": 2.0,
             "with_renda": 1, "with_anosesco": 1, "people": 1},
        ],
    }  # fmt: skip
    html = page.render(page.context(lake, answers, [], data, {"engine": "duckdb"}))
    assert "<script" not in html and "&lt;script&gt;" in html
    assert "<b>X</b>" not in html and "&lt;b&gt;X&lt;/b&gt;" in html
    assert html.count('class="nodata"') >= 2  # the state with no values, in both state charts


def test_the_page_shows_the_counts_and_verdict_the_run_hands_it(tmp_path: Path) -> None:
    """Inside a `lakehouse` run the report gets the transform's counts and gate verdict, not the lake's."""
    lake = Lake(Settings(lake_root=str(tmp_path / "lake")))  # nothing committed: nothing to read back
    answers = [{"id": i, "question": f"Q{i}", "answer": None, "rows": 0} for i in range(1, 11)]
    data: dict[str, Any] = {"by_state": [], "by_region": []}
    counts = [
        {"zone": "raw", "table": "pnadc", "records": 1234},
        {"zone": "consumer", "table": "x", "records": None},
    ]
    gate = {
        "ingestion_date": RUN_DATE,
        "passed": False,
        "checks": [
            {
                "name": "pnadc: idade within range",
                "passed": False,
                "observed": 3,
                "expected": "0 rows outside",
            }
        ],
    }
    ctx = page.context(lake, answers, [], data, {"engine": "duckdb"}, counts=counts, gate=gate)
    assert [(c["table"], c["shown"]) for c in ctx["counts"]] == [("pnadc", "1,234"), ("x", "-")]
    assert ctx["gate"] == gate and [c["name"] for c in ctx["gate_failed"]] == ["pnadc: idade within range"]


@pytest.mark.parametrize(
    ("damage", "what"),
    [
        ("[]", "a JSON array, not an object"),
        ('{"checks": 7}', "not a list of checks as the gate writes it"),
        ('{"passed": true}', "not a list of checks as the gate writes it"),
        ('{"checks": [{"passed": false}]}', "not a list of checks as the gate writes it"),
    ],
)
def test_a_gate_report_changed_outside_the_pipeline_is_shown_unreadable_not_fatal(
    tmp_path: Path, damage: str, what: str
) -> None:
    """Read back (a rollback republishes the page without the run's verdict), a damaged gate report is
    named on the page, where it failed the page and with it the rollback's answers."""
    lake = Lake(Settings(lake_root=str(tmp_path / "lake")))
    manifest = {"run_id": "r1", "files": [], "records": 0, "ingestion_date": RUN_DATE}
    lake.write_json("consumer", "publico_alvo/_manifest.json", manifest)
    report = Path(lake.path("processing", gate_report(RUN_DATE)))
    report.parent.mkdir(parents=True)
    report.write_text(damage)
    answers = [{"id": i, "question": f"Q{i}", "answer": None, "rows": 0} for i in range(1, 11)]
    data: dict[str, Any] = {"by_state": [], "by_region": []}
    ctx = page.context(lake, answers, [], data, {"engine": "duckdb"}, counts=[])
    assert ctx["gate"] is None and ctx["gate_failed"] == []
    assert ctx["gate_unreadable"] == f"{report} is damaged ({what})"
    html = page.render(ctx)
    assert "quality gate report unreadable" in html and f"{report} is damaged" in html
