"""The benchmarks keep working: their smoke mode runs every section and writes a complete report.

Not a timed test: nothing here asserts on speed, only that every section was measured and reported with
finite, positive numbers. Everything goes to a temporary folder, never to docs/.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.plan import Results
from benchmarks.rows import VERDICT_CELLS

ROOT = Path(__file__).resolve().parent.parent
PLOTS = (
    "bench-e2e.png",
    "bench-e2e-memory.png",
    "bench-extraction.png",
    "bench-scaling.png",
    "bench-scan.png",
)


@pytest.mark.integration
@pytest.mark.timeout(1800)
def test_smoke_run_reports_every_section_with_sane_numbers(tmp_path: Path) -> None:
    out, img, results = tmp_path / "benchmarks.md", tmp_path / "img", tmp_path / "results.json"
    docs_report = ROOT / "docs" / "benchmarks.md"
    before = docs_report.stat().st_mtime_ns if docs_report.exists() else None
    cmd = [sys.executable, "-m", "benchmarks", "run", "--smoke", "--work-dir", str(tmp_path / "work")]
    cmd += ["--out", str(out), "--img-dir", str(img), "--results", str(results)]

    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1700)

    assert proc.returncode == 0, f"smoke run failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    text = out.read_text()
    for title in report.SECTION_TITLES.values():
        assert title in text, f"section missing: {title}"
    assert "_Not run._" not in text
    assert "Smoke run" in text
    targets = text.split(report.SECTION_TITLES["targets"])[1].split("## 1.")[0]
    for target in report.TARGETS.values():
        row = next(line for line in targets.splitlines() if target in line)
        # Inconclusive is a verdict too: the smoke sizes are small enough for the machine's noise to decide.
        assert row.split(" | ")[2] in VERDICT_CELLS.values(), row
    for plot in PLOTS:
        assert (img / plot).stat().st_size > 10_000, plot
        assert f"img/{plot}" in text

    numbers = report.numbers(Results.load(results))
    expected = {
        "e2e_speedup",
        "e2e_memory_ratio",
        "questions_cold_s",
        "zone_raw_bytes",
        "zone_consumer_bytes",
    }
    assert expected <= set(numbers)
    assert any(k.startswith("extract_") for k in numbers) and any(k.startswith("scaling_") for k in numbers)
    bad = {
        k: v for k, v in numbers.items() if not (isinstance(v, float | int) and math.isfinite(v) and v > 0)
    }
    assert not bad, f"not finite and positive: {bad}"
    # Both contestants of the end-to-end comparison computed the same target public.
    data = Results.load(results)
    assert data.failures == []
    rows = {
        r["label"]: r["extra"].get("rows_out") or r["extra"].get("counts", {}).get("consumer publico_alvo")
        for r in data.runs
        if "e2e" in r["extra"]["sections"]
    }
    assert rows["ours (steps)"] == rows["original way"] > 0
    # The smoke run never touches the committed report.
    after = docs_report.stat().st_mtime_ns if docs_report.exists() else None
    assert before == after
