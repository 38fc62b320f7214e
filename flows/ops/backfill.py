"""Backfill: the lakehouse for each date of a range, once, oldest first, resumable after a failure.

A date is complete when a `lakehouse` run of it has finished (published and answered): the backfill then
records it in the lake, beside the consumer zone (`_backfill/ingestion_date=<date>.json`: the consumer
runs and the answers of that date). A rerun of the same range skips complete dates and starts again at
the first one that is not, so a failure in the middle (a source down, a failed quality gate) costs only
the dates from there on. A date's own run is idempotent (it replaces that date's units), so
`rerun_completed` may redo a range on purpose.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from flows.dates import ingestion_date
from flows.errors import ConfigurationError, DamagedLakeFile
from flows.lake import Lake, utcnow
from flows.layout import CONSUMER_TABLES, PNADC, PUBLICO_ALVO, backfill_record

log = logging.getLogger(__name__)

MAX_DAYS = 366  # a longer range is more likely a typo (a wrong year) than a plan


def dates_between(start: dt.date | str, end: dt.date | str) -> list[str]:
    """Every date from `start` to `end`, both included, oldest first; ConfigurationError if not a range."""
    first, last = dt.date.fromisoformat(ingestion_date(start)), dt.date.fromisoformat(ingestion_date(end))
    if last < first:
        raise ConfigurationError(f"backfill range ends before it starts: from {first} to {last}.")
    days = (last - first).days + 1
    if days > MAX_DAYS:
        raise ConfigurationError(
            f"backfill range from {first} to {last} is {days} days, more than {MAX_DAYS}: split it."
        )
    return [(first + dt.timedelta(days=n)).isoformat() for n in range(days)]


def completed(
    lake: Lake, date: str, logger: logging.Logger | logging.LoggerAdapter[Any] | None = None
) -> dict[str, Any] | None:
    """The record of a date's finished run, if a backfill completed it. A record changed outside the
    pipeline (not the object it wrote, or without its finish time) says nothing: the date counts as not
    complete, so the backfill runs it again (a date's run is idempotent) and writes it anew."""
    try:
        record = lake.read_json("consumer", backfill_record(date))
    except DamagedLakeFile as exc:
        why = exc.briefly()
    else:
        if record is None or isinstance(record.get("finished_at"), str):
            return record
        why = f"{lake.path('consumer', backfill_record(date))} gives no finish time"
    if logger is not None:
        logger.warning("%s: its completion record %s: the date runs again", date, why)
    return None


def mark_completed(lake: Lake, date: str, answers: list[dict[str, Any]], flow_run_id: str) -> str:
    runs = {t: (lake.manifest("consumer", t) or {}).get("run_id") for t in CONSUMER_TABLES}
    record = {
        "ingestion_date": date,
        "finished_at": utcnow(),
        "flow_run_id": flow_run_id,
        "consumer_runs": runs,
        "answers": answers,
    }
    return lake.write_json("consumer", backfill_record(date), record)


def behind(lake: Lake, logger: logging.Logger | logging.LoggerAdapter[Any] = log) -> str | None:
    """What to do when the consumer tables are older than the newest date loaded, None when they are not.

    The consumer holds one version of each table, built for the date of the run that wrote it from the
    processing dates up to it: a backfill of dates older than the newest loaded one leaves it as of its
    last date, until the newest date runs again (docs/operations.md, "Backfill"). `logger`: the flow
    run's, so that a lake it cannot read is said in the run's log too."""
    try:
        built = (lake.manifest("consumer", PUBLICO_ALVO) or {}).get("ingestion_date")
        newer = lake.partitions("processing", PNADC, after=built) if isinstance(built, str) else []
    except Exception as exc:  # advice only: a run that has done its work does not fail on it
        logger.warning(
            "Could not tell whether the consumer tables hold the newest date loaded: %s", exc, exc_info=True
        )
        return None
    if not newer:
        return None
    newest = newer[-1]
    return (
        f"the consumer tables now hold the data as of {built}, older than {newest}, the newest date loaded: "
        f"run `vamosjuntos run --ingestion-date {newest}` (or the `lakehouse/lakehouse-daily` deployment for "
        "that date) to bring them back to the newest data"
    )


@dataclass(frozen=True)
class DateOutcome:
    ingestion_date: str
    outcome: str  # "ran" | "skipped (complete)" | "failed" | "not run"
    finished_at: str | None = None
