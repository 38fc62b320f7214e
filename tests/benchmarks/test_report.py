"""The report from a small hand-built run: its structure, and verdicts that follow the numbers."""

from __future__ import annotations

import ast
import copy
import inspect
import math
from dataclasses import replace
from pathlib import Path

from benchmarks import report, worker
from benchmarks.analysis import analyse, e2e, run_targets, scaling, stats, targets
from benchmarks.analysis.formats import secs
from benchmarks.analysis.targets import TARGETS, judge
from benchmarks.plan import Results
from benchmarks.rows import VERDICT_CELLS
from flows.layout import SPARK_STEPS
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
        assert row.split(" | ")[2] in VERDICT_CELLS.values()


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

    # Ours waits 4 s for Spark after the extraction (the original's cold start: 4.5 s).
    assert v["overlap"] == "not met"
    overlapped = copy.deepcopy(a)
    _every_repetition(overlapped["e2e"]["spark_wait"], 0.2)
    assert verdicts(overlapped)["overlap"] == "met"
    overlapped["e2e"]["spark_wait"].update(low=0.2, high=0.9, n=3)
    row = next(t for t in judge(overlapped) if t["key"] == "overlap")
    assert row["verdict"] == "inconclusive"
    assert row["reason"].endswith(
        "(0.200 s to 0.900 s): this machine's speed varied more than the margin; in "
        "some repetitions the session is started, or finished starting, after the extraction"
    )

    faster = copy.deepcopy(a)
    _every_repetition(faster["e2e"]["flow"]["speedup"], 1.6)
    _every_repetition(faster["e2e"]["flow"]["overhead"], 4.0)
    _every_repetition(faster["e2e"]["flow"]["memory_ratio"], 0.9)
    v = verdicts(faster)
    assert v["run_speed"] == "met" and v["prefect_ephemeral"] == "met" and v["run_memory"] == "met"

    pss = next(t for t in judge(a) if t["key"] == "memory_pss")
    assert "a sample every 0.20 s (median; one read of the tree 0.10 s)" in pss["measured"]
    rss = copy.deepcopy(a)
    rss["machine"]["memory_metric"] = "rss"
    row = next(t for t in judge(rss) if t["key"] == "memory_pss")
    assert row["verdict"] == "not met" and row["reason"] == "this run measured RSS"


def _every_repetition(s: dict, value: float) -> None:
    s.update(median=value, low=value, high=value)


def test_repetitions_on_both_sides_of_a_target_are_inconclusive_with_their_range() -> None:
    a = analyse(fx.results())
    noisy = copy.deepcopy(a)
    # The median meets each target, but one repetition does not: the machine varied more than the margin.
    noisy["e2e"]["flow"]["speedup"].update(median=1.6, low=1.2, high=1.7, n=3)
    noisy["e2e"]["flow"]["overhead"].update(median=-2.0, low=-6.0, high=15.0, n=3)
    noisy["e2e"]["flow"]["memory_ratio"].update(median=0.9, low=0.8, high=1.1)
    rows = {t["key"]: t for t in judge(noisy)}

    for key in ("run_speed", "prefect_ephemeral", "run_memory"):
        assert rows[key]["verdict"] == "inconclusive"
        assert "fall on both sides of the target" in rows[key]["reason"]
    assert (
        "its 3 repetitions fall on both sides of the target (1.200× to 1.700×)" in rows["run_speed"]["reason"]
    )
    assert "(80.0% to 110.0%): the peaks varied" in rows["run_memory"]["reason"]
    assert "faster in some repetitions and slower in others" in rows["run_speed"]["reason"]
    assert rows["prefect_ephemeral"]["measured"].startswith("-2.00 s (-6.00 s to 15.0 s)")
    text = report.render(noisy | {"targets": judge(noisy)})
    assert "| _inconclusive_ |" in text and "reason (unless met)" in text

    # Not met by every repetition stays not met, and a combined row is not met when one half is not.
    _every_repetition(noisy["e2e"]["flow"]["speedup"], 1.2)
    assert verdicts(noisy)["run_speed"] == "not met"
    server = noisy["e2e"]["flow_server"]
    server["memory_ratio"].update(median=0.9, low=0.8, high=1.1)
    assert verdicts(noisy)["run_server"] == "not met"  # its speed (1.27×) is not met in any repetition
    _every_repetition(server["speedup"], 1.6)
    assert verdicts(noisy)["run_server"] == "inconclusive"


def _scaled(seconds: list[float]) -> dict:
    sizes = [100_000, 368_210, 1_000_000, 2_000_000]
    stage = scaling._stage_row("pnadc_to_processing", seconds, sizes)
    spark = [{"step": "pnadc_to_processing", "size": 2_000_000, "us_per_doc": 9.0}]
    return {"sizes": sizes, "stages": [stage], "spark": spark}


def test_the_marginal_cost_is_a_fit_over_every_size_and_a_falling_time_is_inconclusive() -> None:
    # 10 s fixed and 5 µs per document, the 1M size 4 s slow: the difference between the two largest sizes
    # says 1 µs, the fit over all four stays near 5 µs.
    seconds = [10 + 5e-6 * n for n in (100_000, 368_210, 1_000_000, 2_000_000)]
    seconds[2] += 4
    sc = _scaled(seconds)
    assert round(sc["stages"][0]["marginal_us"][-1], 1) == 1.0
    row = targets._marginal(sc)
    assert row["verdict"] == "met"
    fitted = float(row["measured"].split(" µs")[0])
    assert 4 < fitted < 6.5 and row["measured"].endswith("fitted over 100,000, 368,210, 1,000,000, 2,000,000")

    # Without the slow size, exactly 5 µs; at 9 µs per document, not met, with Spark's executor time.
    assert targets._marginal(_scaled([10 + 5e-6 * n for n in (1e5, 368_210, 1e6, 2e6)]))[
        "measured"
    ].startswith("5.0 µs")
    row = targets._marginal(_scaled([10 + 9e-6 * n for n in (1e5, 368_210, 1e6, 2e6)]))
    assert row["verdict"] == "not met" and "9.0 µs of executor time per document" in row["reason"]

    # This machine's run of 2026-12-02: the step's time fell from 1M to 2M, which no cost does.
    row = targets._marginal(_scaled([32.8, 37.7, 62.4, 56.0]))
    assert row["verdict"] == "inconclusive"
    assert "its time fell from 62.4 s at 1,000,000 to 56.0 s at 2,000,000" in row["reason"]
    assert "9.0 µs of executor time per document" in row["reason"]

    missing = _scaled([32.8, float("nan"), 62.4, 70.0])
    assert targets._marginal(missing)["verdict"] == "not measured"


def test_a_scaling_size_run_on_a_slowed_machine_is_fitted_again_without_it() -> None:
    """Each scaling size runs once: the fit says so when the speed probe found the machine slower there,
    and a verdict that the slowed size alone decides is inconclusive."""
    sizes = (100_000, 368_210, 1_000_000, 2_000_000)

    def probed(seconds: list[float], slow_at: int | None) -> dict:
        sc = _scaled(seconds)
        sc["per_size"] = [{"size": n, "ours_probe": 1.7 if n == slow_at else 1.1} for n in sizes]
        return sc

    # 5 µs per document, the 2M point 20 s slow: fitted over all, over 8 µs; without it, 5.0 µs.
    seconds = [10 + 5e-6 * n for n in sizes]
    seconds[-1] += 20
    assert targets._marginal(probed(seconds, None))["verdict"] == "not met"
    row = targets._marginal(probed(seconds, 2_000_000))
    assert row["verdict"] == "inconclusive", row
    assert "slower before the step ran at 2,000,000 (1.7× its fastest)" in row["reason"]
    assert "fitted without it: 5.0 µs per document" in row["reason"]

    # 9 µs per document throughout: not met either way, and the reason says it was refitted.
    row = targets._marginal(probed([10 + 9e-6 * n for n in sizes], 1_000_000))
    assert row["verdict"] == "not met"
    assert "at 1,000,000 (1.7× its fastest); fitted without it: 9.0 µs per document" in row["reason"]
    # Met with a slowed size, and met without it: met, no reason.
    row = targets._marginal(probed([10 + 5e-6 * n for n in sizes], 2_000_000))
    assert row["verdict"] == "met" and row["reason"] == ""
    # No probe recorded (a results file from before it): judged on the fit alone.
    unprobed = _scaled(seconds)
    unprobed["per_size"] = [{"size": n, "ours_probe": None} for n in sizes]
    assert targets._marginal(unprobed)["verdict"] == "not met"

    # Two slowed sizes: fitted again over the other two.
    sc = probed(seconds, 2_000_000)
    sc["per_size"][0]["ours_probe"] = 1.6
    row = targets._marginal(sc)
    assert "at 100,000 (1.6× its fastest), 2,000,000 (1.7× its fastest); fitted without them" in row["reason"]

    # Too few sizes at full speed to fit again: a met fit may be the slowed size's doing, so inconclusive.
    two = scaling._stage_row("pnadc_to_processing", [10.0, 12.0], [100_000, 1_000_000])
    sc = {"sizes": [100_000, 1_000_000], "stages": [two], "spark": []}
    sc["per_size"] = [{"size": 100_000, "ours_probe": 2.0}, {"size": 1_000_000, "ours_probe": 1.0}]
    row = targets._marginal(sc)
    assert row["verdict"] == "inconclusive" and "too few sizes at full speed to fit again" in row["reason"]


def test_the_scaling_table_shows_the_speed_probe_before_ours_at_each_size() -> None:
    base = fx.results()
    runs = copy.deepcopy(base.runs)
    for r in runs:
        r["extra"]["speed_probe_s"] = 0.1
    slow = next(r for r in runs if r["label"] == fx.OURS and r["size"] == 100_000)
    slow["extra"]["speed_probe_s"] = 0.2
    a = analyse(replace(base, runs=runs))

    assert [r["ours_probe"] for r in a["scaling"]["per_size"]] == [2.0, 1.0]
    assert "| speed probe before ours (× the run's fastest) | 2.00× | 1.00× |" in report.render(a)


def test_a_slope_is_least_squares() -> None:
    assert stats.slope([0, 1, 2], [1.0, 3.0, 5.0]) == 2.0
    assert stats.slope([0, 1, 2, 3], [0.0, 2.0, 1.0, 3.0]) == 0.8  # (−1.5·−1.5 + … ) / 5
    assert math.isnan(stats.slope([1, 1], [1.0, 2.0]))


def test_a_target_without_any_repetition_is_not_measured() -> None:
    a = analyse(fx.results())
    empty = copy.deepcopy(a)
    nothing = {
        "median": float("nan"),
        "low": float("nan"),
        "high": float("nan"),
        "n": 0,
        "spread": float("nan"),
    }
    empty["e2e"]["flow"]["speedup"] = dict(nothing)
    empty["e2e"]["flow"]["overhead"] = dict(nothing)
    v = verdicts(empty)
    assert v["run_speed"] == v["prefect_ephemeral"] == "not measured"


def test_a_target_not_met_says_the_measured_reason() -> None:
    rows = {t["key"]: t for t in judge(analyse(fx.results()))}

    assert "ingest_pnadc 6.00 s" in rows["run_speed"]["reason"]  # our largest stage
    assert "`vamosjuntos run` peaks at 1,600 MB" in rows["run_memory"]["reason"]
    assert "the steps called directly at 1,000 MB" in rows["run_memory"]["reason"]
    assert rows["pnadc_marginal"]["measured"].startswith("8.1 µs")
    assert "5.0 µs of executor time" in rows["pnadc_marginal"]["reason"]
    assert all(t["reason"] == "" for t in rows.values() if t["verdict"] in ("met", "not measured"))


def test_prefects_own_time_inside_the_flow_run_is_in_the_overhead_reason_when_recorded() -> None:
    """benchmarks.cli splits the flow run into our work and Prefect's time between; results from before
    that (no `prefect_s`) say nothing of it."""
    results = fx.results()
    rows = {t["key"]: t for t in judge(analyse(results))}
    assert (
        rows["prefect_ephemeral"]["verdict"] == "not met"
        and "Prefect's own" not in rows["prefect_ephemeral"]["reason"]
    )

    flows = [
        s for r in results.runs if r["label"] == fx.FLOW for s in r["stages"] if s["name"] == "lakehouse flow"
    ]
    assert flows
    for flow in flows:  # as benchmarks.cli records them
        flow["info"] = {"work_s": flow["seconds"] - 2.5, "prefect_s": 2.5, "work": ["land_pnadc"]}
    rows = {t["key"]: t for t in judge(analyse(results))}
    assert (
        "the flow 20.4 s (Prefect's own time between the tasks and subflows doing our work: 2.50 s)"
        in rows["prefect_ephemeral"]["reason"]
    )


def _flow_spans(results: Results, label: str) -> list[dict]:
    return [
        s for r in results.runs if r["label"] == label for s in r["stages"] if s["name"] == "lakehouse flow"
    ]


def _prefect_row(results: Results, key: str = "prefect_ephemeral") -> dict:
    return next(t for t in judge(analyse(results)) if t["key"] == key)


def test_the_overhead_verdict_takes_the_heavy_work_out_of_each_run_when_its_tasks_are_recorded() -> None:
    """With each flow run's tasks' time (benchmarks.cli `tasks_s`), the verdict is on the run less its own
    tasks, less the steps called directly less theirs: the work's variation between runs drops out."""
    results = fx.results()
    # Two flow runs; the steps called directly: 16.4 s, of which 15.4 s the stages that are the tasks' code
    # (Spark's start included), so 1.0 s light. The ephemeral flow runs: 26.4 s (10 s over the steps),
    # but their tasks took 22.0 s those runs.
    results.runs.append(fx.cli(fx.FLOW, fx.E2E, 1, 10, ["e2e"]).as_dict())
    flows = _flow_spans(results, fx.FLOW)
    assert len(flows) == 2
    for flow in flows:
        flow["info"] = {"work_s": 22.3, "prefect_s": 0.1, "tasks_s": 22.0, "work": ["land_pnadc"]}
    row = _prefect_row(results)
    assert row["verdict"] == "met" and row["reason"] == ""
    assert row["measured"].startswith("3.40 s at 368,210 (each flow run's wall time less its tasks' time")
    assert "whole runs' difference: 10.0 s" in row["measured"]
    text = report.render(analyse(results))
    assert "against the steps called directly less the same work (median)" in text
    assert "3.40 s (its tasks took 22.0 s, the same work called directly 15.4 s)" in text

    flows[1]["info"]["tasks_s"] = 12.0  # one run's tasks ran faster than the steps': 14.4 s to 3.40 s
    row = _prefect_row(results)
    assert row["verdict"] == "inconclusive"
    assert row["reason"].startswith(
        "its 2 repetitions fall on both sides of the target (3.400 s to 13.400 s)"
    )
    assert "the flow runs' time outside their tasks varied" in row["reason"]
    assert "its tasks took 17.0 s, the same work called directly 15.4 s" in row["reason"]

    for flow in flows:  # the same work as the steps called directly: the whole runs' 10 s, not met
        flow["info"]["tasks_s"] = 15.4
    row = _prefect_row(results)
    assert row["verdict"] == "not met" and row["measured"].startswith("10.0")

    # One run whose tasks Prefect had not all recorded: whole runs decide, not the other run alone.
    flows[0]["info"]["tasks_s"] = None
    flows[1]["info"]["tasks_s"] = 22.0
    row = _prefect_row(results)
    assert row["verdict"] == "not met"
    assert row["measured"].endswith(
        "at 368,210 (`vamosjuntos run`'s time less the steps'; 1 of 2 flow runs lack Prefect's whole "
        "record of their tasks)"
    )


def test_the_overhead_verdict_falls_back_to_whole_runs_when_a_steps_stage_is_missing() -> None:
    """A stage of the steps called directly renamed in benchmarks/worker.py would count as light work, in
    Prefect's favour: without every stage of TASK_STAGES, whole runs decide."""
    results = fx.results()
    for flow in _flow_spans(results, fx.FLOW_SERVER):
        flow["info"] = {"work_s": 22.3, "prefect_s": 0.1, "tasks_s": 22.0, "work": ["land_pnadc"]}
    assert _prefect_row(results, "prefect_server")["measured"].startswith("-3.6")  # 19.4 - 22.0 - 1.0
    for run in results.runs:
        if run["label"] == fx.OURS:
            run["stages"] = [s for s in run["stages"] if s["name"] != "quality_gate"]
    row = _prefect_row(results, "prefect_server")
    assert (
        row["measured"].startswith("3.") and "(`vamosjuntos run`'s time less the steps')" in row["measured"]
    )


def test_the_stages_taken_out_are_the_ones_the_steps_worker_marks() -> None:
    """e2e.TASK_STAGES against the stage names benchmarks/worker.py's `ours` marks (its source)."""
    tree = ast.parse(inspect.getsource(worker.ours))
    marked = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "stage"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert {"ingest_ibge", "ingest_pnadc", "spark start", "quality_gate"} <= marked
    assert set(e2e.TASK_STAGES) - set(SPARK_STEPS) <= marked


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


def _large(*runs: object, failures: list[dict] | None = None) -> dict:
    base = fx.results()
    plan = base.plan | {"scale_sizes": [100_000, fx.E2E, fx.LARGE]}
    more = [r.as_dict() for r in runs]  # type: ignore[attr-defined]
    results = replace(base, plan=plan, runs=base.runs + more, failures=failures or [])
    return analyse(results, plots={"scaling": "bench-scaling.png"})


def test_the_largest_size_judged_from_vamosjuntos_run_against_the_original() -> None:
    steps, orig = fx.ours(fx.LARGE, 0, ["scaling"], peak_mb=400), fx.original(fx.LARGE, 0, ["scaling"], 3000)
    # Without `vamosjuntos run` at 2M, the steps alone judge nothing (the target is the command users run).
    rows = {t["key"]: t for t in judge(_large(steps, orig))}
    assert rows["large_speed"]["verdict"] == rows["large_memory"]["verdict"] == "not measured"
    assert "the steps called directly:" in rows["large_speed"]["measured"]
    assert rows["scaling"]["verdict"] == "met"

    flow_s = orig.wall_s / 3 - 1  # just over 3× faster, at 900 MB (less than ⅓ of 3,000)
    flow = fx.cli(fx.FLOW, fx.LARGE, 0, flow_s - steps.wall_s + 0.0, ["large"], peak_mb=900)
    flow = replace(flow, wall_s=flow_s)
    a = _large(steps, orig, flow)
    v = verdicts(a)
    assert v["large_speed"] == "met" and v["large_memory"] == "met"
    per = a["scaling"]["per_size"][-1]
    assert per["flow_wall"] == flow_s and per["flow_peak"] == 900 * fx.MB

    slow = replace(flow, wall_s=orig.wall_s / 2, peak_mem=1200 * fx.MB)
    rows = {t["key"]: t for t in judge(_large(steps, orig, slow))}
    assert rows["large_speed"]["verdict"] == rows["large_memory"]["verdict"] == "not met"
    assert "the largest: pnadc_to_processing" in rows["large_speed"]["reason"]
    assert "ingest_pnadc" in rows["large_memory"]["reason"]
    assert "bare drain" not in rows["large_speed"]["reason"]  # the extraction did not run at 2,000,000

    # With the drain timed at 2,000,000 (section 2), the reason says what it leaves for the rest.
    extraction = [{"size": fx.LARGE, "drain_rate": {"median": fx.LARGE / 50.0}}]
    rows = {t["key"]: t for t in run_targets.large(_large(steps, orig, slow)["scaling"], extraction)}
    budget = f"{orig.wall_s / 3:.1f} s for the whole run at 3×"
    want = f"the bare drain of the same cursor alone takes 50.0 s (section 2), against {budget}"
    assert want in rows["large_speed"]["reason"]

    # With its CPU sampled, the reason weighs it against what two cores give in the time 3× allows.
    spent = replace(slow, cpu={"jvm": 200.0, "python": 20.0, "server": 60.0})
    rows = {t["key"]: t for t in judge(_large(steps, orig, spent))}
    allowed = orig.wall_s / 3
    reason = rows["large_speed"]["reason"]
    assert f"CPU: 280.0 s in {secs(slow.wall_s)}" in reason
    assert (
        "medians each: Spark's JVM 200.0 s, MongoDB's stand-in 60.0 s, the command's Python 20.0 s)" in reason
    )
    assert (
        f"more than the {secs(2 * allowed)} 2 cores give in the {secs(allowed)} 3× the original's" in reason
    )


def test_an_original_that_failed_at_the_largest_size_is_a_floor() -> None:
    steps = fx.ours(fx.LARGE, 0, ["scaling"], peak_mb=400)
    flow = replace(fx.cli(fx.FLOW, fx.LARGE, 0, 0, ["large"], peak_mb=900), wall_s=60.0)
    error = "original way (size 2000000) exited with 1 after 400 s; last log lines:\n"
    error += "java.lang.OutOfMemoryError: x"
    failed = {"label": fx.ORIGINAL, "size": fx.LARGE, "repetition": 0, "error": error}
    # It ran 400 s and reached 6,000 MB before failing: ours is at least 6.7× faster at ≤ 15% of its peak.
    a = _large(steps, flow, failures=[failed | {"wall_s": 400.0, "peak_mem": 6000 * fx.MB}])
    rows = {t["key"]: t for t in judge(a)}
    assert rows["large_speed"]["verdict"] == rows["large_memory"]["verdict"] == "met"
    assert rows["large_speed"]["measured"].startswith("≥ 6.67×")
    assert "java.lang.OutOfMemoryError: x" in rows["large_memory"]["measured"]
    assert "the largest size it finished" in rows["large_memory"]["measured"]  # the original at 368,210
    text = report.render(a)
    assert "did not finish at 2,000,000" in text and "failed after 400.0 s" in text

    # Failing early proves nothing: 100 s and 1,000 MB are no floor that meets 3× or ⅓.
    early = _large(steps, flow, failures=[failed | {"wall_s": 100.0, "peak_mem": 1000 * fx.MB}])
    assert verdicts(early)["large_speed"] == verdicts(early)["large_memory"] == "not measured"


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


def test_the_extraction_shows_what_the_encoder_workers_add_beside_it_in_process() -> None:
    a = analyse(fx.results())
    row = a["extraction"][0]
    # Ours 45k documents/s with 2 workers, in process 30k, the drain 50k (results_fixture).
    assert round(row["in_process_ratio"]["median"], 2) == 0.6
    assert round(row["workers_gain"]["median"], 2) == 1.5
    text = report.render(a)
    assert "| ratio in process | workers' gain |" in text and "| 0.60× | 1.50× |" in text
    assert "ours with 2 encoder workers" in text

    # A run from before the workers has no in-process contestant: its columns stay empty.
    older = Results(
        plan=fx.results().plan,
        machine=fx.results().machine,
        runs=[r for r in fx.results().runs if r["label"] != fx.EXTRACT_IN_PROCESS],
    )
    assert analyse(older)["extraction"][0]["workers_gain"]["n"] == 0
    assert "| 0.90× | – | – |" in report.render(analyse(older))
    slow = copy.deepcopy(a)
    _every_repetition(slow["extraction"][0]["ratio"], 0.7)
    [row] = [t for t in judge(slow) if t["key"] == "extract_ratio"]
    assert "encoder workers made it 1.50× as fast as encoding in process" in row["reason"]


def test_the_extraction_shows_the_count_s_own_time_beside_what_it_added() -> None:
    a = analyse(fx.results())
    row = a["extraction"][0]
    # Ours takes 1.11 s per 50,000 documents against the drain's 1 s; its count 50% of that alone, 30% after
    # its last batch (results_fixture).
    assert round(row["count_own_share"]["median"], 2) == round(0.5 * 50 / 45, 2)
    assert round(row["count_share"]["median"], 2) == round(0.3 * 50 / 45, 2)
    slow = copy.deepcopy(a)
    _every_repetition(slow["extraction"][0]["ratio"], 0.7)
    [target] = [t for t in judge(slow) if t["key"] == "extract_ratio"]
    assert (
        "takes 56% of a drain on the server, beside our last batches, and adds 33% after them"
        in (target["reason"])
    )
    # Results from before the count's own time was kept leave its column empty, not at 0%.
    older = copy.deepcopy(fx.results())
    for r in older.runs:
        r["extra"].pop("overlapped_count_s", None)
    assert math.isnan(analyse(older)["extraction"][0]["count_own_share"]["median"])


def test_against_a_spark_server_its_jvm_counts_and_its_first_run_stands_apart() -> None:
    a = analyse(fx.results())
    warm = a["e2e"]["flow_warm"]
    steps, orig = a["e2e"]["contestants"][0], a["e2e"]["contestants"][1]

    # The repetition, not the fresh server's first run (30 s over the steps), is what is compared.
    assert warm["wall"] == steps["wall"]["median"] - 5
    assert warm["speedup"]["median"] == orig["wall"]["median"] / warm["wall"]
    # Its memory is the run's tree and the server's JVM (700 + 950 MB against the original's 1,500).
    assert warm["peak"] == 1650 * fx.MB and warm["tree_peak"] == 700 * fx.MB
    assert warm["memory_ratio"]["median"] == 1650 / 1500
    assert a["e2e"]["first_run"]["wall"] == steps["wall"]["median"] + 30

    row = next(t for t in judge(a) if t["key"] == "run_warm")
    assert row["verdict"] == "not met"  # faster than 1.5×, but over the original's memory with the JVM
    assert "the Spark server's JVM at 950 MB" in row["reason"] and "ingest_pnadc" not in row["reason"]
    lighter = copy.deepcopy(a)
    _every_repetition(lighter["e2e"]["flow_warm"]["memory_ratio"], 0.9)
    assert verdicts(lighter)["run_warm"] == "met"

    text = report.render(a)
    assert (
        "the Spark server's tree at 950 MB (sampled apart; the memory ratio above adds the two peaks)" in text
    )
    assert (
        "first run (vamosjuntos run (running Prefect and Spark servers)), before the repetitions: 46.4 s"
        in text
    )
    assert 'the running servers serve one run apart (measured, section "first")' in text
    table = text.split("| contestant |")[1].split("\n\n")[0].splitlines()
    assert table[0].endswith("| Spark server peak (counted) |")
    rows = {line.split(" | ")[0].strip("| "): line for line in table[2:]}
    assert rows[fx.FLOW_WARM].endswith("| 950 MB |")
    assert all(line.endswith("| – |") for label, line in rows.items() if label != fx.FLOW_WARM)


def test_a_results_file_from_before_the_spark_server_says_nothing_of_one() -> None:
    base = fx.results()
    runs = [r for r in base.runs if r["label"] != fx.FLOW_WARM]
    old_file = {k: v for k, v in base.plan.items() if k != "with_spark_server"}  # saved before the field
    a = analyse(replace(base, runs=runs, plan=old_file))

    assert a["e2e"]["flow_warm"] is None and a["e2e"]["first_run"] is None
    assert "Spark servers" not in a["plan"]["text"] and "with_spark_server" not in a["changed"]
    assert verdicts(a)["run_warm"] == "not measured"
    text = report.render(a)
    assert "with_spark_server" not in text
    method = text.split("How it is measured:")[1].split("## Targets")[0]
    assert "spark-server" not in method and "one run apart" not in method  # that file's run had none
    assert (
        "the running server served the repetitions in turn (the first repetition was its first run)" in method
    )
    assert "Spark server peak" not in text and "the Spark server's tree" not in text
    assert "vamosjuntos run (running server): 1.27×" in text  # the other ways are reported as before


def test_a_run_planned_with_a_spark_server_that_never_started_says_so() -> None:
    base = fx.results()
    runs = [r for r in base.runs if r["label"] != fx.FLOW_WARM]
    first = fx.cli(fx.FLOW_SERVER, fx.E2E, -1, 20, ["first"]).as_dict()  # the Prefect server's, instead
    servers = {"prefect server start start_s": 7.5, "failed": ["vamosjuntos spark-server"]}
    failure = {
        "label": fx.FLOW_WARM,
        "size": fx.E2E,
        "repetition": -1,
        "error": "vamosjuntos spark-server did",
    }
    failure |= {"wall_s": 0.0, "peak_mem": 0, "speed_probe_s": 0.1}
    a = analyse(replace(base, runs=[*runs, first], servers=servers, failures=[failure]))

    assert verdicts(a)["run_warm"] == "not measured"
    text = report.render(a)
    assert "(prefect server start: 7.50 s); **vamosjuntos spark-server did not start**" in text
    assert "The running server's first run (vamosjuntos run (running server)), before the repetitions" in text
    assert "at 368,210 (the running servers' first run): vamosjuntos spark-server did" in text


def test_a_stopped_run_says_so_and_renders_what_it_measured() -> None:
    base = fx.results()
    a = analyse(replace(base, runs=base.runs[:6], stopped="stopped by a signal"))

    text = report.render(a)
    assert "> **Stopped midway** (stopped by a signal) after 1.0 min: below is what it measured" in text
    assert "## 1. End to end" in text and verdicts(a)["extract_ratio"] == "not measured"


def test_a_machine_that_slowed_during_the_run_is_said_with_the_contestants_it_slowed() -> None:
    base = fx.results()
    runs = copy.deepcopy(base.runs)
    for r in runs:
        r["extra"]["speed_probe_s"] = 0.1
    steady = report.render(analyse(replace(base, runs=runs)))
    assert (
        "| machine speed | a fixed Python loop, timed before each contestant: median 0.10 s, 0.10 s–0.10 s"
        in steady
    )
    assert "The machine slowed" not in steady

    slowed = next(r for r in runs if r["label"] == fx.ORIGINAL)
    slowed["extra"]["speed_probe_s"] = 0.4
    text = report.render(analyse(replace(base, runs=runs)))
    warning = text.split("> **The machine slowed during this run**")[1].split("\n")[0]
    assert f"before 1 of {len(runs)} contestants (original way at 368,210, repetition 1: 4.0×)" in warning
    assert "; the slowest 4.00× the fastest |" in text


def test_a_slowed_contestant_that_failed_is_named_with_its_repetition() -> None:
    base = fx.results()
    runs = copy.deepcopy(base.runs)
    for r in runs:
        r["extra"]["speed_probe_s"] = 0.1
    failure = {
        "label": fx.ORIGINAL,
        "size": 2_000_000,
        "repetition": 0,
        "error": "timed out",
        "wall_s": 1200.0,
    }
    failure |= {"peak_mem": 0, "speed_probe_s": 0.5}
    text = report.render(analyse(replace(base, runs=runs, failures=[failure])))

    assert "(original way at 2,000,000, repetition 1: 5.0×)" in text


def test_the_cpu_each_process_took_is_tabled_and_weighed_against_the_time_a_target_allows() -> None:
    base = fx.results()
    # The flow's processes and the MongoDB server beside it; the original's JVM and Python.
    spent = {
        fx.FLOW: {"jvm": 30.0, "python": 4.0, "prefect_api": 5.0, "encoders": 3.0, "server": 9.0},
        fx.ORIGINAL: {"jvm": 20.0, "python": 9.0, "server": 8.0},
    }
    runs = [dict(r, cpu=spent.get(r["label"], {})) for r in base.runs]
    a = analyse(replace(base, runs=runs))
    flow = a["e2e"]["flow"]

    assert flow["cpu"]["total"]["median"] == 51.0 and flow["cpu"]["cores"] == 2
    assert flow["cpu"]["busy"]["median"] == 51.0 / (2 * flow["wall"])
    row = next(t for t in judge(a) if t["key"] == "run_speed")
    orig_wall = a["e2e"]["orig_wall"]
    reason = row["reason"]
    assert f"CPU: 51.0 s in {secs(flow['wall'])}" in reason
    assert "medians each: Spark's JVM 30.0 s, MongoDB's stand-in 9.00 s, Prefect's temporary" in reason
    allowed = orig_wall / 1.5
    assert (
        f"more than the {secs(2 * allowed)} 2 cores give in the {secs(allowed)} 1.5× the original's" in reason
    )
    # A run within what the cores give says so.
    roomy = copy.deepcopy(a)
    roomy["e2e"]["flow"]["cpu"]["total"]["median"] = 2 * allowed - 1
    why = next(t for t in judge(roomy) if t["key"] == "run_speed")["reason"]
    assert f"within the {secs(2 * allowed)} 2 cores give" in why

    text = report.render(a)
    table = text.split("| contestant | wall time | CPU in all |")[1].split("\n\n")[0].splitlines()
    rows = {line.split(" | ")[0].strip("| "): line for line in table[2:]}
    assert set(rows) == {fx.FLOW, fx.ORIGINAL}  # only the contestants whose CPU was sampled
    assert "| 30.0 s | 4.00 s | 5.00 s | 3.00 s | – | 9.00 s | – | – |" in rows[fx.FLOW]
    # The cores are those the contestants could use (a container's quota), not the machine's.
    one_core = analyse(replace(base, runs=runs, machine=base.machine | {"cpus_usable": 1}))
    assert one_core["e2e"]["flow"]["cpu"]["cores"] == 1
    assert one_core["e2e"]["flow"]["cpu"]["busy"]["median"] == 51.0 / flow["wall"]
    # A fractional quota is kept whole in the budget, and said as it is.
    quota = analyse(replace(base, runs=runs, machine=base.machine | {"cpus_usable": 1.5}))
    why = next(t for t in judge(quota) if t["key"] == "run_speed")["reason"]
    assert f"the {secs(1.5 * allowed)} 1.5 cores give" in why
    third = analyse(replace(base, runs=runs, machine=base.machine | {"cpus_usable": 1 / 3}))
    why = next(t for t in judge(third) if t["key"] == "run_speed")["reason"]
    assert f"the {secs(allowed / 3)} 0.33 cores give" in why  # the budget unrounded, the cores said rounded
    single = analyse(replace(base, runs=runs, machine=base.machine | {"cpus_usable": 1}))
    why = next(t for t in judge(single) if t["key"] == "run_speed")["reason"]
    assert "of the time of 1 core;" in why and f"the {secs(allowed)} 1 core gives" in why
    whole = analyse(replace(base, runs=runs, machine=base.machine | {"cpus_usable": 2.0}))
    why = next(t for t in judge(whole) if t["key"] == "run_speed")["reason"]
    assert " 2 cores give" in why and "2.0 cores" not in why + report.render(whole)
    # A results file from before CPU was sampled has no such table, nor a CPU reason.
    old = analyse(base)
    assert "CPU in all" not in report.render(old)
    assert "CPU:" not in next(t for t in judge(old) if t["key"] == "run_speed")["reason"]


def _with_ibge_step(run: dict, repetition: int, seconds: float) -> dict:
    """A copy of one of the steps' runs, as repetition `repetition`, its IBGE step `seconds` long (a tenth
    of it in Spark's tasks)."""
    run = copy.deepcopy(run)
    run["repetition"] = repetition
    for s in run["stages"]:
        if s["name"] == "ibge_to_processing":
            s["seconds"] = seconds
            s["info"]["spark"]["run_ms"] = seconds * 100
    return run


def test_what_spark_recorded_is_the_median_repetitions_so_the_ibge_reason_agrees_with_its_median() -> None:
    base = fx.results()
    steps = [r for r in base.runs if r["label"] == fx.OURS and r["size"] == fx.E2E]
    others = [r for r in base.runs if r not in steps]
    # The first repetition the slowest, as a machine still warming up makes it.
    timed = [_with_ibge_step(steps[0], rep, t) for rep, t in enumerate((9.0, 3.0, 5.0))]
    a = analyse(replace(base, runs=others + timed))

    row = next(s for s in a["scaling"]["spark"] if s["step"] == "ibge_to_processing" and s["size"] == fx.E2E)
    assert row["wall"] == 5.0 and row["run_s"] == 0.5  # the median repetition's, not the first's 9 s
    target = next(t for t in judge(a) if t["key"] == "ibge_step")
    assert target["measured"].startswith("5.00 s (3.00 s–9.00 s)")
    assert "tasks ran 0.50 s of its 5.00 s" in target["reason"]
