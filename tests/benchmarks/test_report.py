"""The report from a small hand-built run: its structure, and verdicts that follow the numbers."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

from benchmarks import report
from benchmarks.analysis import analyse
from benchmarks.analysis.targets import TARGETS, judge
from benchmarks.plan import Results
from tests.benchmarks import results_fixture as fx


def verdicts(a: dict) -> dict[str, str]:
    return {t["key"]: t["verdict"] for t in judge(a)}


def test_every_section_and_target_is_rendered_with_a_verdict() -> None:
    text = report.render(analyse(fx.results()))

    for title in report.SECTION_TITLES.values():
        assert title in text
    assert "_Not run._" not in text
    targets = text.split("## Targets")[1].split("## 1.")[0]
    rows = [line for line in targets.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == len(TARGETS)
    for row, target in zip(rows, TARGETS.values(), strict=True):
        assert target in row
        assert row.split(" | ")[2] in ("**met**", "**not met**", "not measured")


def test_findings_state_numbers_not_code_paths() -> None:
    text = report.render(analyse(fx.results()))

    assert "flows/" not in text and ".py" not in text
    assert "### Where the time goes" in text
    assert "`ingest_pnadc` 6.00 s (37%)" in text  # the largest of ours, from the stage table


def test_verdicts_come_from_the_numbers() -> None:
    a = analyse(fx.results())
    # The fixture's flow: 0.93× the original, 10 s over the steps; steps 1.5×, 67% of its memory.
    v = verdicts(a)
    assert v["run_speed"] == "not met" and v["prefect_ephemeral"] == "not met"
    assert v["run_memory"] == "not met"  # the flow peaks at 1,600 MB against 1,500 MB
    # Against a running server: 3 s over the steps (≤ 5 s), but 1.27× the original (< 1.5×).
    assert v["prefect_server"] == "met" and v["run_server"] == "not met"
    assert v["memory_pss"] == "met" and v["ibge_step"] == "met" and v["spark_apps"] == "met"

    faster = copy.deepcopy(a)
    faster["e2e"]["flow"]["speedup"]["median"] = 1.6
    faster["e2e"]["flow"]["overhead"]["median"] = 4.0
    faster["e2e"]["flow"]["memory_ratio"]["median"] = 0.9
    v = verdicts(faster)
    assert v["run_speed"] == "met" and v["prefect_ephemeral"] == "met" and v["run_memory"] == "met"

    rss = copy.deepcopy(a)
    rss["machine"]["memory_metric"] = "rss"
    rss["pss_probes"] = {
        "n": 3,
        "read_s": {"median": 1.2, "high": 2.0},
        "pss_over_rss": {"low": 0.95, "high": 0.99},
    }
    row = next(t for t in judge(rss) if t["key"] == "memory_pss")
    assert row["verdict"] == "not met"
    assert "took 1.20 s (up to 2.00 s) in 3 probes" in row["reason"] and "95%–99%" in row["reason"]


def test_a_target_not_met_says_the_measured_reason() -> None:
    rows = {t["key"]: t for t in judge(analyse(fx.results()))}

    assert "ingest_pnadc 6.00 s" in rows["run_speed"]["reason"]  # our largest stage
    assert "Python driver is 200 MB" in rows["run_memory"]["reason"]
    assert rows["pnadc_marginal"]["measured"].startswith("8.1 µs")
    assert "5.0 µs of executor time" in rows["pnadc_marginal"]["reason"]
    assert all(t["reason"] == "" for t in rows.values() if t["verdict"] != "not met")


def test_sizes_the_run_did_not_reach_are_not_measured_never_met() -> None:
    a = analyse(fx.results())
    v = verdicts(a)
    # extraction ran at 100k and 500k only (both ≥ 0.8×): 2M is missing, so no verdict.
    assert v["extract_ratio"] == "not measured"
    assert v["large_speed"] == v["large_memory"] == v["scaling"] == "not measured"

    small = copy.deepcopy(a)
    small["e2e"]["size"] = 100_000
    small["e2e"]["flow"]["speedup"]["median"] = 5.0
    assert verdicts(small)["run_speed"] == "not measured"


def test_the_largest_size_judged_when_both_ran_there() -> None:
    base = fx.results()
    extra = [
        fx.ours(fx.LARGE, 0, ["scaling"], peak_mb=400),
        fx.original(fx.LARGE, 0, ["scaling"], peak_mb=3000),
    ]
    plan = base.plan | {"scale_sizes": [100_000, fx.E2E, fx.LARGE]}
    results = replace(base, plan=plan, runs=base.runs + [r.as_dict() for r in extra])
    rows = {t["key"]: t for t in judge(analyse(results, plots={"scaling": "bench-scaling.png"}))}

    assert rows["large_memory"]["verdict"] == "met"  # 400 MB ≤ ⅓ of 3,000 MB
    speedup = analyse(results)["scaling"]["per_size"][-1]["speedup"]
    assert rows["large_speed"]["verdict"] == ("met" if speedup >= 3 else "not met")
    assert rows["scaling"]["verdict"] == "met"


def test_a_run_without_sections_renders_not_run() -> None:
    plan = fx.results().plan | {"sections": ["extraction"]}
    empty = Results(plan=plan, machine=fx.results().machine)
    a = analyse(empty)
    text = report.render(a)

    assert text.count("_Not run._") == 4
    assert {t["verdict"] for t in a["targets"]} <= {"not measured", "met"}


def test_write_draws_the_plots_it_links(tmp_path: Path) -> None:
    out = report.write(fx.results(), tmp_path / "benchmarks.md", tmp_path / "img")

    text = out.read_text()
    for name in (
        "bench-e2e.png",
        "bench-e2e-memory.png",
        "bench-extraction.png",
        "bench-scaling.png",
        "bench-scan.png",
    ):
        assert (tmp_path / "img" / name).stat().st_size > 10_000
        assert f"(img/{name})" in text
