"""Answering the ten questions: run their SQL on the query engine, store the answers, build the report."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from flows import answers as answers_mod
from flows.answers import Answer
from flows.engines.base import QueryEngine
from flows.engines.duckdb_engine import DuckDBEngine
from flows.lake import Lake
from flows.questions import questions
from flows.report.chart_data import chart_data, chart_sqls
from flows.report.page import context, render
from flows.report.store import write
from flows.services.quality_gate import GateVerdict
from flows.settings import Settings


@dataclass(frozen=True)
class Answered:
    """The answers, what each question's query cost, and where the HTML report was stored."""

    answers: list[Answer]
    queries: list[dict[str, Any]]  # per question: its id and the engine's QueryCost
    engine: str
    report_path: str

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [asdict(a) for a in self.answers]


def engine_name(settings: Settings) -> str:
    return settings.answer_engine or settings.engine


def open_query_engine(settings: Settings, lake: Lake) -> QueryEngine:
    """Athena in its workgroup, or DuckDB with the consumer tables declared as views."""
    if engine_name(settings) == "athena":
        from flows.engines.athena import AthenaEngine  # pyathena: only where Athena answers

        return AthenaEngine(settings)
    engine = DuckDBEngine(lake)
    try:
        engine.register_consumer()
    except Exception:
        engine.close()
        raise
    return engine


def answer(
    settings: Settings,
    lake: Lake,
    run_id: str,
    counts: list[dict[str, Any]] | None = None,
    gate: GateVerdict | None = None,
) -> Answered:
    """Answer every question, keep the answers (lake) and the report (lake).

    `counts` and `gate`, when the caller has them from this run's transform, are what the report shows;
    without them the report reads them back from the lake (the consumer's ingestion date).
    """
    engine = open_query_engine(settings, lake)
    try:
        # Athena starts them all now and runs them concurrently; DuckDB runs each when asked.
        engine.prefetch([q.sql for q in questions()] + chart_sqls())
        results = answers_mod.answer_all(engine)
        charts = chart_data(engine)
        queries = [{"id": q.id, **engine.stats[q.sql]} for q in questions()]
    finally:
        engine.close()
    run = {"flow_run_id": run_id, "engine": engine_name(settings), "queries": queries}
    answers_mod.store(lake, results, run)
    rows = [asdict(a) for a in results]
    report = gate.as_report() if gate is not None else None
    path = write(lake, render(context(lake, rows, queries, charts, run, counts=counts, gate=report)))
    return Answered(results, queries, engine_name(settings), path)
