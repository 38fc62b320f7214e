"""The report's plots (`docs/img/bench-*.png`), drawn from the analysis' numbers (the memory traces from
the runs themselves)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.analysis import e2e as e2e_runs
from benchmarks.analysis.formats import MB
from benchmarks.plan import EXTRACT_IN_PROCESS, FLOW, ORIGINAL, OURS, Results


def _bars(ax: Any, xs: list[Any], stats: list[dict[str, float]], **kw: Any) -> None:
    ax.errorbar(
        xs,
        [s["median"] for s in stats],
        yerr=[[s["median"] - s["low"] for s in stats], [s["high"] - s["median"] for s in stats]],
        marker="o",
        capsize=4,
        **kw,
    )


def _e2e(plt: Any, e: dict[str, Any], results: Results, save: Any) -> None:
    colors = plt.get_cmap("tab20")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [2.3, 1]})
    k = 0
    for y, table in enumerate(e["stages"]):
        left = 0.0
        for row in table["rows"]:
            width = row["time"]["median"]
            prefix = "ours: " if y == 0 else "original: "
            ax1.barh(y, width, left=left, color=colors(k % 20), edgecolor="white", label=prefix + row["name"])
            k, left = k + 1, left + width
    others = e["contestants"][2:]
    for i, c in enumerate(others, start=2):
        ax1.barh(i, c["wall"]["median"], color="0.75")
    labels = [t["label"] for t in e["stages"]] + [c["label"] for c in others]
    ax1.set_yticks(range(len(labels)), labels, fontsize=8)
    ax1.invert_yaxis()
    ax1.legend(fontsize=6, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    ax1.set_xlabel("seconds (median per stage; grey: whole run)")
    ax1.set_title(f"End to end at {e['size']:,} documents: time by stage")
    peaks = [c["peak"] for c in e["contestants"]]
    ax2.bar(
        range(len(peaks)),
        [p["median"] / MB for p in peaks],
        yerr=[
            [(p["median"] - p["low"]) / MB for p in peaks],
            [(p["high"] - p["median"]) / MB for p in peaks],
        ],
        color=["tab:blue", "tab:red", "tab:purple", "0.6", "tab:olive", "0.8"][: len(peaks)],
        capsize=4,
    )
    spark = [c.get("spark_server", {}).get("median") or 0 for c in e["contestants"]]
    stacked = [i for i, x in enumerate(spark) if x]
    if stacked:  # `vamosjuntos spark-server`'s JVM, outside the run's tree: stacked on it, hatched
        ax2.bar(
            stacked,
            [spark[i] / MB for i in stacked],
            bottom=[peaks[i]["median"] / MB for i in stacked],
            color="white",
            edgecolor="tab:olive",
            hatch="//",
            label="its Spark server's JVM",
        )
        # Headroom above the tallest stack, which the legend would otherwise cover
        top = max(peaks[i]["median"] / MB + spark[i] / MB for i in stacked)
        ax2.set_ylim(top=max(ax2.get_ylim()[1], top * 1.2))
        ax2.legend(fontsize=7, loc="upper left")
    names = [
        c["label"]
        .replace("running Prefect and Spark servers", "Prefect + Spark servers")
        .replace(" (", "\n(")
        for c in e["contestants"]
    ]
    ax2.set_xticks(range(len(peaks)), names, fontsize=6, rotation=30, ha="right")
    ax2.set_ylabel("peak PSS of the process tree (MB)")
    ax2.set_title("Peak memory (bars: min–max)")
    save(fig, "bench-e2e.png")

    fig, ax = plt.subplots(figsize=(10, 4.2))
    runs = e2e_runs.runs(results, e["size"])
    traced = [(OURS, runs["ours"], "tab:blue"), (ORIGINAL, runs["orig"], "tab:red")]
    if runs["flow"]:  # its tree also holds Prefect's temporary API server
        traced.append((FLOW, runs["flow"], "tab:purple"))
    for label, rs, color in traced:
        run = sorted(rs, key=lambda r: r.wall_s)[len(rs) // 2]
        ts = [t[0] for t in run.trace]
        ax.plot(ts, [t[1] / MB for t in run.trace], color=color, label=f"{label}: process tree")
        ax.plot(ts, [t[2] / MB for t in run.trace], color=color, ls="--", lw=1, label=f"{label}: Python")
        ax.plot(ts, [t[3] / MB for t in run.trace], color=color, ls=":", lw=1, label=f"{label}: server")
    ax.set_xlabel("seconds since the process started")
    ax.set_ylabel("PSS (MB)")
    ax.set_title("Memory over time, median run of each (tree = Python + Spark JVM [+ Prefect]; server apart)")
    ax.legend(fontsize=7)
    save(fig, "bench-e2e-memory.png")


def _extraction(plt: Any, ex: list[dict[str, Any]], save: Any) -> None:
    sizes = [d["size"] for d in ex]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    _bars(ax1, sizes, [d["ours_rate"] for d in ex], label="extract_pnadc", color="tab:blue")
    _bars(ax1, sizes, [d["drain_rate"] for d in ex], label="bare drain", color="tab:gray")
    # Results from before the encoder workers have no in-process contestant.
    in_process = all((d.get("in_process_rate") or {}).get("n") for d in ex)
    if in_process:
        rates = [d["in_process_rate"] for d in ex]
        _bars(ax1, sizes, rates, label=EXTRACT_IN_PROCESS, color="tab:purple", ls="--")
    ax1.set(xscale="log", xlabel="documents", ylabel="documents per second")
    ax1.set_ylim(bottom=0)
    ax1.set_title("Extraction throughput (bars: min–max)")
    ax1.legend()
    for key, label, color in (
        ("ours_peak", "extract_pnadc", "tab:blue"),
        ("drain_peak", "bare drain", "tab:gray"),
    ):
        ax2.plot(sizes, [d[key]["median"] / MB for d in ex], marker="o", label=label, color=color)
    if in_process:
        peaks = [d["in_process_peak"]["median"] / MB for d in ex]
        ax2.plot(sizes, peaks, marker="o", ls="--", label=EXTRACT_IN_PROCESS, color="tab:purple")
    server = [d["server_peak"]["median"] / MB for d in ex]
    ax2.plot(sizes, server, marker="s", ls=":", color="tab:green", label="server (not counted)")
    ax2.set(xscale="log", xlabel="documents", ylabel="peak PSS during extraction (MB)")
    ax2.set_ylim(bottom=0)
    ax2.set_title("Extraction memory")
    ax2.legend()
    save(fig, "bench-extraction.png")


def _flow_and_failures(ax: Any, per: list[dict[str, Any]], key: str, unit: float) -> None:
    """`vamosjuntos run` where it was timed; where the original way failed, how far it got (an ×)."""
    flow = [(r["size"], r[f"flow_{key}"] / unit) for r in per if r[f"flow_{key}"] is not None]
    if flow:
        ax.plot(*zip(*flow, strict=True), marker="D", ls="none", color="tab:purple", label="vamosjuntos run")
    failed = [(r["size"], r["orig_failure"][key] / unit) for r in per if r["orig_failure"]]
    if failed:
        ax.plot(
            *zip(*failed, strict=True),
            marker="x",
            ms=10,
            ls="none",
            color="tab:red",
            label="original: failed",
        )


# Our stages' lines: none of the colours the whole runs use (ours blue, the original red, `vamosjuntos run`
# purple, the server green), so no stage can be read as a whole run.
# More colours than the stages the worker marks (eleven), so none repeats; all dark enough on white.
STAGE_COLORS = (
    "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray",
    "black", "darkgoldenrod", "teal", "magenta", "salmon", "darkslategray",
)  # fmt: skip


def _scaling(plt: Any, sc: dict[str, Any], save: Any) -> None:
    sizes, per = sc["sizes"], sc["per_size"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5.5))
    drawn = [row for row in sc["stages"] if max(row["seconds"]) >= 0.5]
    for i, row in enumerate(drawn):
        color = STAGE_COLORS[i % len(STAGE_COLORS)]
        ax1.plot(sizes, row["seconds"], marker=".", ls="--", lw=1, label=row["name"], color=color)
    ax1.plot(
        sizes, [r["ours_wall"] for r in per], marker="o", color="tab:blue", lw=2.5, label="ours: whole run"
    )
    orig = [(r["size"], r["orig_wall"]) for r in per if r["orig_wall"] is not None]
    if orig:
        ax1.plot(
            *zip(*orig, strict=True), marker="s", color="tab:red", lw=2.5, label="original way: whole run"
        )
    _flow_and_failures(ax1, per, "wall", 1.0)
    ax1.set(xscale="log", yscale="log", xlabel="documents", ylabel="seconds")
    ax1.set_title("Time: whole run and our stages (log-log)")
    # Below the plot: inside it the legend hid the lower stages' lines
    ax1.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    ax2.plot(sizes, [r["ours_peak"] / MB for r in per], marker="o", color="tab:blue", lw=2.5, label="ours")
    orig = [(r["size"], r["orig_peak"] / MB) for r in per if r["orig_peak"] is not None]
    if orig:
        ax2.plot(*zip(*orig, strict=True), marker="s", color="tab:red", lw=2.5, label="original way")
    _flow_and_failures(ax2, per, "peak", MB)
    ax2.plot(
        sizes,
        [r["server_peak"] / MB for r in per],
        marker="^",
        ls=":",
        color="tab:green",
        label="server (apart)",
    )
    ax2.set(xscale="log", xlabel="documents", ylabel="peak PSS of the process tree (MB)")
    ax2.set_ylim(bottom=0)
    ax2.set_title("Peak memory")
    ax2.legend(fontsize=7)
    save(fig, "bench-scaling.png")


def _scan(plt: Any, st: dict[str, Any], save: Any) -> None:
    qs = st["questions"]
    fig, ax = plt.subplots(figsize=(10, 3.8))
    width = 0.27
    series = (("bytes_partitions", "partition pruning only"), ("bytes_stats", "+ row-group statistics"))
    for k, (key, label) in enumerate((*series, ("duckdb_read", "DuckDB measured"))):
        ax.bar(
            [int(q["id"]) + (k - 1) * width for q in qs],
            [(q[key] or 0) / 1024 for q in qs],
            width,
            label=label,
        )
    ax.axhline(10 * 1024, color="tab:red", ls="--", lw=1, label="Athena's 10 MB minimum")
    ax.set_yscale("log")
    ax.set_xticks([int(q["id"]) for q in qs], [f"Q{q['id']}" for q in qs])
    ax.set_ylabel("kB read")
    ax.set_title(f"Bytes each question reads at {st['size']:,} documents")
    ax.legend(fontsize=8)
    save(fig, "bench-scan.png")


def draw(results: Results, a: dict[str, Any], img: Path) -> dict[str, str]:
    """Every plot the analysis has numbers for; returns {name: file name}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(img / name, dpi=110)
        plt.close(fig)
        made[name.removeprefix("bench-").removesuffix(".png")] = name

    if a["e2e"]:
        _e2e(plt, a["e2e"], results, save)
    if a["extraction"]:
        _extraction(plt, a["extraction"], save)
    if a["scaling"]:
        _scaling(plt, a["scaling"], save)
    if a["storage"]:
        _scan(plt, a["storage"], save)
    return made
