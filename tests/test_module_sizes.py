"""Modules a reader can hold: none in flows/ or benchmarks/ over 300 lines (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 300


@pytest.mark.parametrize(("package", "at_least"), [("flows", 50), ("benchmarks", 20)])
def test_no_module_is_over_300_lines(package: str, at_least: int) -> None:
    modules = (ROOT / package).rglob("*.py")
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in modules}
    assert len(sizes) > at_least  # the scan saw the package, not an empty folder
    assert {path: n for path, n in sizes.items() if n > LIMIT} == {}
