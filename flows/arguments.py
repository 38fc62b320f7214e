"""The command line's whole numbers, each refused with what it must be (argparse says which option)."""

from __future__ import annotations

import argparse


def count_argument(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {value}")
    return value


def rows_argument(text: str) -> int:
    """Documents to generate: 0 or more, no more than the generator can number."""
    from flows.settings import MAX_SEED_ROWS  # not at import: `--help` needs no pydantic

    value = count_argument(text)
    if value > MAX_SEED_ROWS:
        raise argparse.ArgumentTypeError(f"at most {MAX_SEED_ROWS:,} documents can be generated: {value:,}")
    return value


def seed_argument(text: str) -> int:
    """The generator's seed: as the settings take it."""
    from flows.settings import MAX_SEED

    value = count_argument(text)
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"at most {MAX_SEED:,}: {value:,}")
    return value
