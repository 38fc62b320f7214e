"""What a run left in each zone, and the quality gate's verdict, read back from the lake."""

from __future__ import annotations

from typing import Any

from flows.lake import Lake
from flows.layout import units_of


def zone_counts(lake: Lake, ingestion_date: str) -> list[dict[str, Any]]:
    """One row per table and zone: records committed for this ingestion date (consumer: current)."""
    rows = []
    for zone, unit, table in units_of(ingestion_date):
        manifest = lake.manifest(zone, unit)
        rows.append({"zone": zone, "table": table, "records": manifest["records"] if manifest else None})
    return rows


def format_counts(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'zone':<11} {'table':<30} {'records':>10}", "-" * 53]
    for r in rows:
        records = "-" if r["records"] is None else f"{r['records']:,}"
        lines.append(f"{r['zone']:<11} {r['table']:<30} {records:>10}")
    return "\n".join(lines)


def format_gate(report: dict[str, Any] | None) -> str:
    if report is None:
        return "quality gate: no report for this date"
    checks = report["checks"]
    failed = [c for c in checks if not c["passed"]]
    verdict = "FAILED" if failed else "PASSED"
    head = f"quality gate: {verdict} ({len(checks) - len(failed)}/{len(checks)} checks passed)"
    return "\n".join(
        [head] + [f"  FAIL {c['name']}: observed {c['observed']}, expected {c['expected']}" for c in failed]
    )
