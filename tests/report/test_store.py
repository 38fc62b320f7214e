"""Where the report lives: in the lake, written by each run, opened by `vamosjuntos report`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flows.cli import main
from flows.lake import Lake
from flows.report.store import existing_location, location, write
from flows.settings import Settings
from tests.support.local_run import LocalRun


def test_a_report_replaces_the_previous_one_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    lake = Lake(Settings(lake_root=str(tmp_path / "lake")))
    with pytest.raises(Exception, match=r"No report at .*run `vamosjuntos run`"):
        existing_location(lake)
    first = write(lake, "<!doctype html><p>first</p>")
    assert first == location(lake) == existing_location(lake)
    second = write(lake, "<!doctype html><p>second, with ção</p>")
    assert second == first
    assert Path(second).read_text(encoding="utf-8") == "<!doctype html><p>second, with ção</p>"
    assert [p.name for p in Path(second).parent.iterdir()] == ["latest.html"]


@pytest.mark.integration
def test_every_run_writes_the_report_into_the_lake(local_run: LocalRun) -> None:
    path = Path(location(local_run.lake))
    assert path == Path(local_run.settings.zone_root("consumer")) / "_reports" / "latest.html"
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>")
    # self-contained: nothing to fetch (no src/href at all), and a policy that forbids fetching anyway
    assert not re.search(r"\s(src|href)\s*=", html)
    assert "default-src 'none'" in html
    assert "<script" not in html
    payload = local_run.lake.read_json("consumer", "_answers/latest.json")
    assert payload["run"]["engine"] == "duckdb"
    assert [q["id"] for q in payload["run"]["queries"]] == list(range(1, 11))
    assert all(q["bytes_scanned"] is None and q["total_ms"] >= 0 for q in payload["run"]["queries"])


@pytest.mark.integration
def test_vamosjuntos_report_prints_or_opens_the_report(
    local_run: LocalRun, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VAMOSJUNTOS_LAKE_ROOT", local_run.settings.lake_root)
    where = location(local_run.lake)

    assert main(["report", "--print-path"]) == 0
    assert capsys.readouterr().out.strip() == where

    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    assert main(["report"]) == 0
    assert opened == [Path(where).as_uri()]


def test_vamosjuntos_report_without_a_report_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VAMOSJUNTOS_LAKE_ROOT", str(tmp_path / "empty"))
    assert main(["report", "--print-path"]) == 1
    assert "run `vamosjuntos run`" in capsys.readouterr().err
