"""The plots say what their legends say: a line's colour belongs to one series."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.colors import to_hex

from benchmarks import plots
from benchmarks.analysis import analyse
from tests.benchmarks import results_fixture as fx

WHOLE_RUNS = {"ours: whole run", "original way: whole run", "vamosjuntos run"}


def test_no_stage_of_the_scaling_plot_takes_a_whole_runs_colour() -> None:
    a = analyse(fx.results(), plots={"scaling": "bench-scaling.png"})
    for stage in a["scaling"]["stages"]:  # every stage long enough to be drawn
        stage["seconds"] = [s + 1.0 for s in stage["seconds"]]
    figures: list[Any] = []
    plots._scaling(plt, a["scaling"], lambda fig, name: figures.append(fig))
    time_axes = figures[0].axes[0]
    lines = {line.get_label(): to_hex(line.get_color()) for line in time_axes.get_lines()}
    plt.close(figures[0])

    stages = {label: colour for label, colour in lines.items() if label not in WHOLE_RUNS}
    whole = {lines[label] for label in WHOLE_RUNS if label in lines}
    assert {"ours: whole run", "original way: whole run"} <= lines.keys()
    assert len(stages) == len(a["scaling"]["stages"]) >= 10, lines
    assert not set(stages.values()) & whole, lines
    assert len(set(stages.values())) == len(stages), "two stages share a colour"


def test_the_extraction_plot_draws_the_in_process_contestant_when_the_run_had_one() -> None:
    def labels(results: Any) -> set[str]:
        figures: list[Any] = []
        plots._extraction(plt, analyse(results)["extraction"], lambda fig, name: figures.append(fig))
        throughput, memory = figures[0].axes
        found = {t.get_text() for ax in (throughput, memory) for t in ax.get_legend().get_texts()}
        plt.close(figures[0])
        return found

    assert "extract_pnadc, encoded in process" in labels(fx.results())
    older = fx.results()
    older.runs = [r for r in older.runs if r["label"] != fx.EXTRACT_IN_PROCESS]
    assert "extract_pnadc, encoded in process" not in labels(older)
