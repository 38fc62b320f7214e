"""Storage and scan cost: bytes per zone, where the consumer table's bytes are, what each question reads."""

from __future__ import annotations

from typing import Any

from benchmarks.analysis.stats import stat
from benchmarks.scan_estimate import ATHENA_MIN_BYTES, ATHENA_USD_PER_TB, TB

ATHENA_MIN_USD = ATHENA_MIN_BYTES / TB * ATHENA_USD_PER_TB


def _layout(lay: dict[str, Any]) -> dict[str, Any]:
    total = lay["footer_bytes"] + sum(lay["column_bytes"].values())
    rows = max(lay["rows"], 1)
    columns = [
        {"name": f"`{c}`", "bytes": b, "share": b / total, "per_row": b / rows}
        for c, b in lay["column_bytes"].items()
    ]
    footer = lay["footer_bytes"]
    columns.append(
        {"name": "Parquet footers", "bytes": footer, "share": footer / total, "per_row": footer / rows}
    )
    return {"rows": lay["rows"], "files": lay["files"], "row_groups": lay["row_groups"], "columns": columns}


def _question(qid: str, s: dict[str, Any], warm_s: float) -> dict[str, Any]:
    reads = s["reads"]
    return {
        "id": qid,
        "columns": "; ".join(
            f"{r['table']}: {', '.join(r['columns']) or '(row counts only)'}" for r in reads
        ),
        "files": "; ".join(f"{r['files_after_partition_pruning']}/{r['files']}" for r in reads),
        "row_groups": "; ".join(f"{r['row_groups_after_statistics']}/{r['row_groups_total']}" for r in reads),
        "bytes_partitions": s["bytes_partition_pruning"],
        "bytes_stats": s["bytes_with_statistics"],
        "duckdb_read": s.get("duckdb_bytes_read"),
        "athena_usd": s["athena_usd_with_statistics"],
        "warm_s": warm_s,
        "pruned": any(r["files_after_partition_pruning"] < r["files"] for r in reads),
    }


def analyse(q: dict[str, Any], baseline: dict[str, Any], size: int) -> dict[str, Any] | None:
    if not q:
        return None
    zones = {z: sum(u.values()) for z, u in q["zones"].items()}
    raw = zones.get("raw") or float("nan")
    units = [
        {"zone": z, "unit": u, "bytes": b, "share": b / raw}
        for z, us in q["zones"].items()
        for u, b in sorted(us.items())
    ]
    duck = q["duckdb"]
    questions = [
        _question(qid, q["questions"][qid], duck["per_question_warm_s"][qid])
        for qid in sorted(q["questions"], key=int)
    ]
    return {
        "size": size,
        "zones": zones,
        "zone_shares": {z: b / raw for z, b in zones.items()},
        "units": units,
        "consumer_share": zones.get("consumer", 0) / raw,
        "baseline": baseline or None,
        "baseline_raw_x": (baseline["raw_json_bytes"] / raw) if baseline else None,
        "layout": _layout(q["publico_alvo_layout"]) if q.get("publico_alvo_layout") else None,
        "questions": questions,
        "pruned": [x["id"] for x in questions if x["pruned"]],
        "bytes_partitions_total": sum(x["bytes_partitions"] for x in questions),
        "athena_min_usd": ATHENA_MIN_USD,
        "cold_s": duck["cold_s"],
        "warm": stat(duck["warm_s"]),
    }
