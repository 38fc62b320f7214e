"""`python -m benchmarks` as a user runs it: what it refuses, it refuses before measuring anything, in one
line and without a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import size

REPO = Path(__file__).resolve().parents[2]


def _benchmarks(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("text", "documents"),
    [("368210", 368_210), ("368_210", 368_210), ("100k", 100_000), ("1.5M", 1_500_000), ("4.1M", 4_100_000)],
)
def test_sizes_are_read_as_users_write_them(text: str, documents: int) -> None:
    assert size(text) == documents


@pytest.mark.parametrize(
    "args",
    [
        ["--repeat", "0"],
        ["--flow-repeat", "-1"],
        ["--scale-repeat", "two"],
        ["--sizes", "100k,-5"],
        ["--extract-sizes", "0"],
        ["--e2e-size", "inf"],
        ["--e2e-size", "1e1000000"],  # refused at once, not after decimal's arithmetic on a million digits
        ["--e2e-size", "2000M"],
        ["--sizes", "100k,17M"],  # more than the generator can number (2^24)
        ["--e2e-size", "1.5"],
        ["--profile-size", "abc"],
    ],
)
def test_a_count_that_is_not_one_is_refused_before_anything_runs(args: list[str], tmp_path: Path) -> None:
    # `plan` has `run`'s parser and measures nothing: a value wrongly accepted cannot start a benchmark here
    done = _benchmarks("plan", *args, cwd=tmp_path)
    assert done.returncode == 2
    assert f"argument {args[0]}: not a number of" in done.stderr
    assert repr(args[1].split(",")[-1]) in done.stderr  # the value at fault, alone
    assert "Traceback" not in done.stderr


def test_sizes_written_with_a_thousands_separator_are_refused_not_read_as_two(tmp_path: Path) -> None:
    done = _benchmarks("plan", "--sizes", "100k,368,210", cwd=tmp_path)
    assert done.returncode == 2
    assert "argument --sizes: 368,210 looks like one number with a thousands separator" in done.stderr
    assert "write 368210 or 368_210" in done.stderr
    assert "(or, for two sizes, 368,210.0)" in done.stderr
    assert _benchmarks("plan", "--sizes", "100k,368210,2M", cwd=tmp_path).returncode == 0
    two = _benchmarks("plan", "--sizes", "368,210.0", cwd=tmp_path)
    assert two.returncode == 0 and "scaling at 368, 210," in two.stdout


@pytest.mark.parametrize("args", [["--repeat", "0"], ["--sizes", "368,210"]])
def test_run_refuses_a_bad_value_before_it_makes_anything(args: list[str], tmp_path: Path) -> None:
    # `run` itself, once: a value it took would start seeding a server in `work` (the tests above use
    # `plan`, which shares its parser and writes nothing either way)
    work, out = tmp_path / "work", tmp_path / "b.md"
    done = _benchmarks("run", "--work-dir", str(work), "--out", str(out), *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"argument {args[0]}:" in done.stderr and "Traceback" not in done.stderr
    assert not work.exists() and not out.exists()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "No such file"),
        ("# Benchmarks\n", "Expecting value"),
        (json.dumps([1, 2]), "a saved run is a JSON object, not list"),
        (json.dumps({"not": "a run"}), "unexpected keyword argument 'not'"),
        (json.dumps({"plan": 1, "machine": 1}), "its 'plan' and 'machine' are not objects"),
        (json.dumps({"plan": {}, "machine": {}, "runs": [1]}), "its 'runs' are not runs this harness saved"),
        (json.dumps({"plan": {}, "machine": {}, "runs": [{"label": "x"}]}), "KeyError: 'stages'"),
    ],
)
def test_a_report_from_a_file_that_is_no_saved_run_says_so(
    content: str | None, why: str, tmp_path: Path
) -> None:
    results = tmp_path / "results.json"
    if content is not None:
        results.write_text(content)
    out = tmp_path / "b.md"
    done = _benchmarks("report", "--results", str(results), "--out", str(out), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f"python -m benchmarks report: error: cannot read {results}: ")
    assert why in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()
