"""Storage and scan cost, measured: bytes per zone, the ten questions' time on DuckDB, and what DuckDB
read next to what the Parquet footers say a question must read (benchmarks/scan_estimate.py).

Bytes per zone come from the lake's manifests (only committed data counts). DuckDB's own profiler
(`io.total_bytes_read`) gives the bytes it actually read, as a check of the estimates.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from benchmarks.marks import Marks
from benchmarks.parquet_files import file_meta, layout
from benchmarks.scan_estimate import analyse_question
from flows.lake import MANIFEST
from flows.layout import CONSUMER_TABLES, PUBLICO_ALVO, ZONES


def zone_bytes(settings: Any) -> dict[str, dict[str, int]]:
    """Bytes of every committed unit, by zone, from the manifests."""
    out: dict[str, dict[str, int]] = {}
    for zone in ZONES:
        root = Path(settings.zone_root(zone))
        units = {}
        for manifest in sorted(root.rglob(MANIFEST)):
            data = json.loads(manifest.read_text())
            unit = str(manifest.parent.relative_to(root))
            units[unit] = sum(int(f["bytes"]) for f in data["files"])
        out[zone] = units
    return out


def run(spec: dict[str, Any], marks: Marks, settings: Any) -> dict[str, Any]:
    from flows.answers import answer_all
    from flows.engines.duckdb_engine import DuckDBEngine
    from flows.lake import Lake
    from flows.questions import questions

    lake = Lake(settings)
    result: dict[str, Any] = {"zones": zone_bytes(settings)}

    # Timings: a fresh connection, the views, the ten questions cold, then warm repetitions.
    with marks.stage("duckdb: register the consumer views"):
        engine = DuckDBEngine(lake)
        engine.register_consumer()
    with marks.stage("duckdb: ten questions, cold"):
        t0 = time.perf_counter()
        answers = answer_all(engine)
        cold = time.perf_counter() - t0
    per_question: dict[int, list[float]] = {q.id: [] for q in questions()}
    totals = []
    with marks.stage("duckdb: ten questions, warm repetitions"):
        for _ in range(int(spec.get("repeat", 5))):
            t_all = time.perf_counter()
            for q in questions():
                t0 = time.perf_counter()
                answer_all(engine, (q,))
                per_question[q.id].append(time.perf_counter() - t0)
            totals.append(time.perf_counter() - t_all)
    result["duckdb"] = {
        "cold_s": cold,
        "warm_s": totals,
        "per_question_warm_s": {str(k): statistics.median(v) for k, v in per_question.items()},
        "answers": [{"id": a.id, "answer": a.answer, "rows": a.rows} for a in answers],
    }

    # What DuckDB actually read, from its profiler, one question at a time.
    prof = Path(spec["work"]) / "duckdb-profile.json"
    engine.con.execute("PRAGMA enable_profiling='json'")
    engine.con.execute(f"SET profiling_output='{prof}'")
    duck_bytes = {}
    for q in questions():
        engine.query(q.sql)
        duck_bytes[str(q.id)] = json.loads(prof.read_text()).get("io", {}).get("total_bytes_read")
    engine.con.execute("PRAGMA disable_profiling")
    engine.close()

    # The estimate from the Parquet footers.
    with marks.stage("scan estimates from Parquet metadata"):
        tables = {t: [file_meta(p) for p in lake.committed_files("consumer", t)] for t in CONSUMER_TABLES}
        schema = {}
        for name, files in tables.items():
            arrow = pq.read_schema(files[0].path) if files else None
            cols = {f.name: "VARCHAR" for f in arrow} if arrow is not None else {}
            for f in files[:1]:
                cols.update({k: "VARCHAR" for k in f.partition})
            schema[name] = cols
        scans = {}
        for q in questions():
            scans[str(q.id)] = analyse_question(q.sql, tables, schema) | {
                "duckdb_bytes_read": duck_bytes.get(str(q.id)),
                "slug": q.slug,
            }
    result["questions"] = scans
    result["consumer_files"] = {t: len(f) for t, f in tables.items()}
    result["publico_alvo_layout"] = layout(tables[PUBLICO_ALVO])
    return result
