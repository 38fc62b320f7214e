"""Modules a reader can hold: none in flows/ over 300 lines (issue 14)."""

from __future__ import annotations

from pathlib import Path

FLOWS = Path(__file__).resolve().parents[1] / "flows"
LIMIT = 300


def test_no_module_in_flows_is_over_300_lines() -> None:
    sizes = {
        p.relative_to(FLOWS.parent).as_posix(): len(p.read_text().splitlines()) for p in FLOWS.rglob("*.py")
    }
    assert len(sizes) > 50  # the scan saw the package, not an empty folder
    assert {path: n for path, n in sizes.items() if n > LIMIT} == {}
