"""The `backfill` flow: `lakehouse` for each date of a range, oldest first (flows/ops/backfill.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.runtime import flow_run

from flows.lake import Lake
from flows.ops.backfill import DateOutcome, behind, completed, dates_between, mark_completed
from flows.ops.run_names import dated_name
from flows.parent import ParentSettings
from flows.pipeline import lakehouse
from flows.settings import Seed, SeedRows, Settings


def range_name() -> str:
    params = flow_run.parameters
    return dated_name("backfill", params.get("start")) + " to " + dated_name("", params.get("end")).strip()


@flow(name="backfill", flow_run_name=range_name)
def backfill(
    start: dt.date,
    end: dt.date,
    rows: SeedRows | None = None,
    seed: Seed | None = None,
    full_refresh: bool = False,
    rerun_completed: bool = False,
    settings: ParentSettings = None,
) -> list[dict[str, Any]]:
    """The whole lakehouse for each date from `start` to `end`, oldest first; a rerun resumes.

    Args:
        start: The first ingestion date to load (a calendar date, e.g. 2026-11-23).
        end: The last ingestion date to load, included (e.g. 2026-11-29).
        rows: Documents to generate into the embedded MongoDB (only without VAMOSJUNTOS_MONGO_URI);
            empty means the settings' default.
        seed: Random seed of the generated documents (only without VAMOSJUNTOS_MONGO_URI); empty means
            the settings' default.
        full_refresh: Extract the whole PNAD collection for every date (an authoritative snapshot each
            time) instead of only the documents after the last ingested one.
        rerun_completed: Run again the dates a backfill already completed (each date's run replaces that
            date's data); by default they are skipped, so a rerun after a failure resumes where it failed.
        settings: Set by a caller in the same process (the CLI, a test); a run started from a deployment
            reads the environment.
    """
    dates = dates_between(start, end)
    settings = settings or Settings()
    lake = Lake(settings)
    logger = get_run_logger()
    outcomes: list[DateOutcome] = []
    try:
        for date in dates:
            done = None if rerun_completed else completed(lake, date, logger)
            if done is not None:
                logger.info("%s: complete since %s, skipped", date, done["finished_at"])
                outcomes.append(DateOutcome(date, "skipped (complete)", done["finished_at"]))
                continue
            try:
                answers = lakehouse(
                    rows=rows, seed=seed, ingestion_date=date, full_refresh=full_refresh, settings=settings
                ).answer_rows
            except BaseException:
                outcomes.append(DateOutcome(date, "failed"))
                logger.error("%s failed: the dates after it were not run; rerun the backfill to resume", date)
                raise
            mark_completed(lake, date, answers, str(flow_run.get_id() or "local"))
            outcomes.append(DateOutcome(date, "ran", (completed(lake, date) or {}).get("finished_at")))
        if any(o.outcome == "ran" for o in outcomes) and (advice := behind(lake, logger)):
            logger.warning("Backfill done, but %s.", advice)
    finally:
        outcomes += [DateOutcome(d, "not run") for d in dates[len(outcomes) :]]
        create_table_artifact(
            key="backfill",
            table=[asdict(o) for o in outcomes],
            description=f"Backfill from {dates[0]} to {dates[-1]}: what each date did",
        )
    return [asdict(o) for o in outcomes]
