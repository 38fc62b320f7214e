"""What ships or runs outside pytest (flows/, benchmarks/, docs/ scripts) never imports the tests: a helper
both need lives in the non-test module, and the tests import it from there."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for d in ("flows", "benchmarks", "docs") for p in (ROOT / d).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_nothing_outside_the_tests_imports_them() -> None:
    found = {
        str(p.relative_to(ROOT)): sorted(n for n in _imports(p) if n == "tests" or n.startswith("tests."))
        for p in SOURCES
    }
    assert SOURCES and not {p: names for p, names in found.items() if names}
