"""The data-quality gate between processing and consumer.

Every check is computed from the lake itself (manifests, and the processing Parquet through DuckDB), so
its verdict does not depend on where the Spark step ran. A failed check stops the flow before the
consumer zone is replaced: readers keep the previous, good consumer data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from flows import layout
from flows.contract import DOMAINS, IDADE_RANGE, NUMBER_RANGES
from flows.engines.base import QueryEngine
from flows.engines.duckdb_engine import DuckDBEngine
from flows.errors import QualityGateFailed
from flows.lake import Lake
from flows.layout import PNADC, UFS, processing, quarantine
from flows.settings import Settings


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    observed: Any
    expected: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _reconcile(lake: Lake, raw_unit: str, processing_unit: str, quarantine_unit: str) -> list[Check]:
    raw = lake.manifest("raw", raw_unit)
    processing = lake.manifest("processing", processing_unit)
    quarantine = lake.manifest("processing", quarantine_unit)
    if raw is None or processing is None or quarantine is None:
        missing = [
            u
            for u, m in ((raw_unit, raw), (processing_unit, processing), (quarantine_unit, quarantine))
            if m is None
        ]
        return [
            Check(f"{processing_unit}: committed", False, f"missing: {missing}", "all three units committed")
        ]
    fresh = processing.get("raw_run_id") == raw["run_id"] == quarantine.get("raw_run_id")
    total = processing["records"] + quarantine["records"]
    return [
        Check(
            f"{processing_unit}: built from the current raw batch",
            fresh,
            f"raw run {raw['run_id']}, processing from {processing.get('raw_run_id')}",
            "same run",
        ),
        Check(
            f"{processing_unit}: raw = processing + quarantine",
            raw["records"] == total,
            f"{raw['records']} = {processing['records']} + {quarantine['records']}",
            "equal",
        ),
    ]


def reconciliation(lake: Lake, ingestion_date: str) -> list[Check]:
    checks = []
    for batch in layout.batches(ingestion_date):
        checks += _reconcile(lake, batch.raw, batch.processing, batch.quarantine)
    return checks


def expectations(lake: Lake, ingestion_date: str, max_quarantine_share: float) -> list[Check]:
    """Expectations on the date's processing data itself, queried with DuckDB over the committed Parquet.

    Not Athena, even in the cloud: the catalog declares the consumer tables only. On S3 DuckDB streams the
    columns each count needs (flows/engines/duckdb_engine.py), so the flow-run pod never holds the table.
    """
    d = ingestion_date
    engine = DuckDBEngine(lake)
    try:
        engine.register("pnadc", "processing", processing(PNADC, d))
        quarantined = engine.register("quarantine", "processing", quarantine(PNADC, d))
        engine.register("ufs", "processing", processing(UFS, d))
        return expected_of(engine, quarantined, max_quarantine_share)
    finally:
        engine.close()


def expected_of(engine: QueryEngine, quarantined: int, max_quarantine_share: float) -> list[Check]:
    """The checks, as Athena-dialect counts over the views `pnadc` and `ufs` of the engine holding them."""

    def count(sql: str) -> int:
        return int(engine.query(sql)[1][0][0])

    def none_of(name: str, count_sql: str, expected: str) -> Check:
        n = count(count_sql)
        return Check(name, n == 0, n, expected)

    lo, hi = IDADE_RANGE
    checks = [
        none_of("pnadc: _id unique", "SELECT count(*) - count(DISTINCT _id) FROM pnadc", "0 duplicates"),
        none_of(
            "pnadc: idade within range",
            f"SELECT count(*) FROM pnadc WHERE idade NOT BETWEEN {lo} AND {hi}",
            f"0 rows outside {lo}-{hi}",
        ),
        none_of(
            "pnadc: every uf is an IBGE state",
            "SELECT count(*) FROM pnadc p WHERE NOT EXISTS (SELECT 1 FROM ufs u WHERE u.uf_nome = p.uf)",
            "0 unmatched rows",
        ),
    ]
    for field, (low, high) in NUMBER_RANGES.items():
        checks.append(
            none_of(
                f"pnadc: {field} within range",
                f"SELECT count(*) FROM pnadc WHERE {field} NOT BETWEEN {low} AND {high}",
                f"0 rows outside {low}-{high}",
            )
        )
    for field, domain in DOMAINS.items():
        values = ", ".join("'" + v + "'" for v in domain)
        checks.append(
            none_of(
                f"pnadc: {field} within its domain",
                f"SELECT count(*) FROM pnadc WHERE {field} IS NOT NULL AND {field} NOT IN ({values})",
                "0 rows outside",
            )
        )
    total = count("SELECT count(*) FROM pnadc") + quarantined
    share = quarantined / total if total else 0.0
    checks.append(
        Check(
            f"pnadc: quarantine share <= {max_quarantine_share:.2%}",
            share <= max_quarantine_share,
            f"{share:.4%} ({quarantined} of {total})",
            f"<= {max_quarantine_share:.2%}",
        )
    )
    return checks


def run_gate(lake: Lake, settings: Settings, ingestion_date: str) -> list[Check]:
    checks = reconciliation(lake, ingestion_date)
    if all(c.passed for c in checks):
        checks += expectations(lake, ingestion_date, settings.max_quarantine_share)
    return checks


def enforce(checks: list[Check]) -> None:
    failed = [c for c in checks if not c.passed]
    if failed:
        detail = "; ".join(f"{c.name} (observed {c.observed}, expected {c.expected})" for c in failed)
        raise QualityGateFailed(f"{len(failed)} of {len(checks)} checks failed: {detail}")
