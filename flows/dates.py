"""Ingestion dates: calendar dates at the edge (CLI, flow parameters, step entrypoints), `YYYY-MM-DD` inside.

An ingestion date becomes part of lake paths (`…/ingestion_date=2026-11-25/…`), so only a real calendar
date written exactly that way is accepted: `2026-13-01`, `../../x` and an empty string are refused, never
taken for today.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re

from flows.errors import ConfigurationError

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def parse_date(text: str) -> dt.date:
    """`text` as a calendar date, or ValueError saying what is expected."""
    try:
        if _ISO_DATE.fullmatch(text):
            return dt.date.fromisoformat(text)
    except ValueError:
        pass
    raise ValueError(f"not a calendar date written YYYY-MM-DD: {text!r}")


def ingestion_date(value: dt.date | str | None) -> str:
    """The lake's form of an ingestion date (`YYYY-MM-DD`); None means today (UTC)."""
    if value is None:
        return today()
    if isinstance(value, dt.datetime):  # a datetime is a date too: refuse it rather than drop the time
        raise ConfigurationError(f"ingestion date must be a date, not a date and time: {value!r}")
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return parse_date(value).isoformat()
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"ingestion date {exc}") from None


def date_argument(text: str) -> str:
    """argparse `type=` for `--ingestion-date`: the lake's form, or argparse's usage error."""
    try:
        return parse_date(text).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
