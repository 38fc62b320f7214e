"""Tests mirror the modules they test (issue 14): each folder of tests/ is named for a package of flows/, and
every test path the docs name exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
FLOWS = REPO / "flows"

# Folders of tests/ that mirror no package of flows/, each for a reason.
NOT_MIRRORS = {
    "support": "helpers and stand-ins every folder shares (IBGE server, local run, moto lakes, Chromium)",
    "benchmarks": "tests benchmarks/, the package at the repository's root",
    "terraform": "tests the terraform/ stack, which is HCL, not Python",
    "k8s/standin": "the Kubernetes API stand-in the deployment tests run against",
}
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# A test file a doc names: `tests/x/test_y.py`, `x/test_y.py` (under tests/) or `test_y.py` (anywhere there).
TEST_PATH = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*test_\w+\.py)")


def _test_folders() -> list[str]:
    return sorted(
        d.relative_to(TESTS).as_posix()
        for d in TESTS.rglob("*")
        if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))
    )


def unmirrored(folders: list[str], allowed: dict[str, str]) -> list[str]:
    return [f for f in folders if f not in allowed and not (FLOWS / f / "__init__.py").is_file()]


def test_every_test_folder_mirrors_a_package_of_flows() -> None:
    folders = _test_folders()
    assert {"sources", "sources/mongo", "engines", "lake", "spark/kubernetes"} <= set(folders)
    assert unmirrored(folders, NOT_MIRRORS) == []


def test_the_check_names_a_folder_without_a_counterpart() -> None:
    assert unmirrored(["sources", "ingestion", "publish", "support"], NOT_MIRRORS) == ["ingestion", "publish"]


def test_the_allow_list_names_only_folders_that_exist() -> None:
    assert sorted(set(NOT_MIRRORS) - set(_test_folders())) == []


def _missing(text: str) -> list[str]:
    files = {p.relative_to(TESTS).as_posix() for p in TESTS.rglob("test_*.py")}
    names = {Path(f).name for f in files}
    missing = []
    for path in TEST_PATH.findall(text):
        rel = path.removeprefix("tests/")
        if not (rel in files if "/" in rel else rel in names):
            missing.append(path)
    return missing


def test_every_test_file_the_docs_name_exists() -> None:
    named = {doc.name: _missing(doc.read_text()) for doc in DOCS}
    assert {doc: paths for doc, paths in named.items() if paths} == {}


def test_the_doc_check_sees_a_moved_test() -> None:
    text = "`tests/ingestion/test_uri_redaction.py`, `sources/test_uri_redaction.py`, `test_gone.py::test_x`"
    assert _missing(text) == ["tests/ingestion/test_uri_redaction.py", "test_gone.py"]
