"""Table rows for the template: each turns one dict of the analysis into the cells of one Markdown row."""

from __future__ import annotations

from typing import Any, Final

from benchmarks.analysis.e2e import CPU_APART, CPU_NAMES, CPU_OWN
from benchmarks.analysis.formats import cell, count, human_bytes, mb, num, pct, rate, ratio, secs
from benchmarks.analysis.verdicts import INCONCLUSIVE, MET, NOT_MEASURED, NOT_MET

Cells = list[str]
# How each verdict of the analysis reads in the targets table.
VERDICT_CELLS: Final = {
    MET: "**met**",
    NOT_MET: "**not met**",
    INCONCLUSIVE: "_inconclusive_",
    NOT_MEASURED: "not measured",
}


def target_row(t: dict[str, Any]) -> Cells:
    return [t["target"], t["measured"], VERDICT_CELLS[t["verdict"]], t["reason"] or ""]


def contestant_row(c: dict[str, Any], spark_server: bool = False) -> Cells:
    """`spark_server`: a column for the Spark server's tree, which did the Spark work of the runs using it."""
    row = [
        c["label"],
        str(c["wall"]["n"]),
        cell(c["wall"]),
        pct(c["wall"]["spread"]),
        cell(c["peak"], mb),
        cell(c["python"], mb),
        cell(c["server"], mb),
        count(c["rows_out"]),
    ]
    if spark_server:
        row.append(cell(c["spark_server"], mb) if c["spark_server"]["median"] else "–")
    return row


def cpu_row(c: dict[str, Any]) -> Cells:
    """A contestant's CPU seconds (medians): in all, how busy that kept the cores, then by process."""
    cpu = c["cpu"]
    by_kind = [secs(cpu[k]["median"]) if cpu[k]["median"] else "–" for k in (*CPU_OWN, *CPU_APART)]
    return [c["label"], secs(c["wall"]["median"]), cell(cpu["total"]), pct(cpu["busy"]["median"]), *by_kind]


def cpu_header(_: object = None) -> Cells:
    own = [CPU_NAMES[k] for k in CPU_OWN]
    apart = [f"{CPU_NAMES[k]} (read apart)" for k in CPU_APART]
    return ["contestant", "wall time", "CPU in all", "of the cores' time", *own, *apart]


def stage_row(r: dict[str, Any]) -> Cells:
    return [r["name"], cell(r["time"]), pct(r["share"]), cell(r["peak"], mb), cell(r["python"], mb)]


def extraction_row(d: dict[str, Any]) -> Cells:
    return [
        count(d["size"]),
        str(d["ratio"]["n"]),
        cell(d["ours_rate"], rate),
        cell(d["drain_rate"], rate),
        ratio(d["ratio"]),
        ratio(d.get("in_process_ratio") or {}),
        ratio(d.get("workers_gain") or {}),
        ratio(d["stream_ratio"]),
        pct(d["count_share"]["median"]),
        pct((d.get("count_own_share") or {}).get("median", float("nan"))),
        cell(d["ours_peak"], mb),
        cell(d["ours_growth"], mb),
        cell(d["drain_peak"], mb),
        cell(d["server_peak"], mb),
        pct(d["first_batch_share"]),
    ]


def anatomy_row(p: dict[str, Any]) -> Cells:
    return [p["name"], secs(p["seconds"]), num(p["us_per_doc"], 1), f"{p['x_drain']:.2f}×"]


def part_row(p: dict[str, Any]) -> Cells:
    return [p["name"], secs(p["seconds"]), pct(p["share"])]


def profile_row(r: dict[str, Any]) -> Cells:
    return [f"`{r['function']}`", count(r["calls"]), secs(r["tottime_s"]), secs(r["cumtime_s"])]


def unit_row(u: dict[str, Any]) -> Cells:
    return [u["zone"], f"`{u['unit']}`", human_bytes(u["bytes"]), pct(u["share"], 2)]


def column_row(c: dict[str, Any]) -> Cells:
    return [c["name"], human_bytes(c["bytes"]), pct(c["share"]), num(c["per_row"])]


def question_row(q: dict[str, Any]) -> Cells:
    return [
        f"Q{q['id']}",
        q["columns"],
        q["files"],
        q["row_groups"],
        human_bytes(q["bytes_partitions"]),
        human_bytes(q["bytes_stats"]),
        human_bytes(q["duckdb_read"]),
        f"${q['athena_usd']:.6f}",
        f"{q['warm_s'] * 1e3:,.1f} ms",
    ]


def scaling_summary(sc: dict[str, Any]) -> list[Cells]:
    per = sc["per_size"]
    flows = any(r["flow_wall"] is not None for r in per)

    def ratio_of(v: float | None) -> str:
        return "–" if v is None else f"{v:.2f}×"

    def orig(r: dict[str, Any], key: str, fmt: Any) -> str:
        """Where the original way failed: how far it got (its time and peak then are floors)."""
        failure = r["orig_failure"]
        if failure and r[f"orig_{key}"] is None:
            return f"failed after {secs(failure['wall'])}" if key == "wall" else f"≥ {mb(failure['peak'])}"
        return fmt(r[f"orig_{key}"])

    rows = [
        ["ours (steps): wall time", *[secs(r["ours_wall"]) for r in per]],
        ["original way: wall time", *[orig(r, "wall", secs) for r in per]],
        ["**speed-up** (original ÷ ours)", *[ratio_of(r["speedup"]) for r in per]],
    ]
    if flows:
        rows += [
            ["`vamosjuntos run` (ephemeral API): wall time", *[secs(r["flow_wall"]) for r in per]],
            ["`vamosjuntos run` (running server): wall time", *[secs(r["flow_server_wall"]) for r in per]],
        ]
        if any(r.get("flow_warm_wall") is not None for r in per):
            rows.append(
                [
                    "`vamosjuntos run` (running Prefect and Spark servers): wall time",
                    *[secs(r.get("flow_warm_wall")) for r in per],
                ]
            )
    rows += [
        ["ours (steps): peak (tree)", *[mb(r["ours_peak"]) for r in per]],
        ["of which Python", *[mb(r["ours_python"]) for r in per]],
    ]
    if flows:
        rows.append(["`vamosjuntos run` (ephemeral API): peak (tree)", *[mb(r["flow_peak"]) for r in per]])
    rows += [
        ["original way: peak (tree)", *[orig(r, "peak", mb) for r in per]],
        ["**memory** (ours ÷ original)", *[ratio_of(r["memory_ratio"]) for r in per]],
        ["server peak (apart)", *[mb(r["server_peak"]) for r in per]],
        ["ours: documents/s", *[rate(r["docs_per_s"]) for r in per]],
    ]
    if any(r.get("ours_probe") is not None for r in per):
        probe = [ratio_of(r.get("ours_probe")) for r in per]
        rows.append(["speed probe before ours (× the run's fastest)", *probe])
    steps = list(per[0]["step_peaks"]) if per else []
    rows += [[f"ours: peak in {s}", *[mb(r["step_peaks"][s]) for r in per]] for s in steps]
    return rows


def sizes_header(sc: dict[str, Any]) -> Cells:
    return ["", *[count(n) for n in sc["sizes"]]]


def stage_header(sc: dict[str, Any]) -> Cells:
    sizes = sc["sizes"]
    header = ["stage", *[count(n) for n in sizes]]
    if len(sizes) > 1:
        header += [f"µs/doc {sizes[i]:,}→{sizes[i + 1]:,}" for i in range(len(sizes) - 1)]
        header.append(f"exponent {sizes[-2]:,}→{sizes[-1]:,}")
    return header


def scaling_row(r: dict[str, Any]) -> Cells:
    name = f"**{r['name']}**" if r["name"] == "whole run" else r["name"]
    row = [name, *[secs(x) for x in r["seconds"]]]
    if len(r["seconds"]) > 1:
        row += [num(x, 1) for x in r["marginal_us"]] + [num(r["exponent"])]
    return row


def spark_row(s: dict[str, Any]) -> Cells:
    return [
        s["step"],
        count(s["size"]),
        secs(s["wall"]),
        str(s["jobs"] if s["jobs"] is not None else "–"),
        str(s["stages"]),
        str(s["tasks"]),
        secs(s["run_s"]),
        num(s["busy"]),
        secs(s["single_task_s"]),
        secs(s["gc_s"]),
        human_bytes(s["shuffle"]),
        human_bytes(s["spill"]),
        num(s["us_per_doc"], 1),
    ]


FILTERS = {name: fn for name, fn in globals().items() if name.endswith(("_row", "_summary", "_header"))}
