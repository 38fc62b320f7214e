"""What every step entrypoint shares: its command line, settings and exit code."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from pyspark.sql import SparkSession

from flows.dates import date_argument
from flows.errors import NOT_RETRIED, VamosJuntosError
from flows.settings import Settings


def step_main(
    name: str,
    run: Callable[..., Any],
    argv: list[str] | None = None,
    configure: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """Parse `--ingestion-date` and `--lake-root` (plus the step's own flags), run, report."""
    parser = argparse.ArgumentParser(prog=f"python -m flows.spark.jobs.{name}")
    parser.add_argument("--ingestion-date", required=True, type=date_argument)
    parser.add_argument("--lake-root", help="overrides VAMOSJUNTOS_LAKE_ROOT")
    if configure:
        configure(parser)
    args = vars(parser.parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lake_root = args.pop("lake_root")
    settings = Settings(lake_root=lake_root) if lake_root else Settings()
    # Called in a process that already has a session (a test, a notebook), that session is not ours to stop.
    ours = SparkSession.getActiveSession() is None
    try:
        result = run(settings, **args)
    except NOT_RETRIED as exc:
        print(f"{name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    except VamosJuntosError as exc:
        print(f"{name} failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if ours:
            _stop_spark(name)
    logging.getLogger(name).info("done: %s", result)
    return 0


def _stop_spark(name: str) -> None:
    """Stop the step's session before the interpreter exits. On Kubernetes, stopping is when Spark deletes
    its executor pods, their PVCs and ConfigMap; left to the JVM's shutdown hook, that races the exit."""
    session = SparkSession.getActiveSession()
    if session is None:
        return
    try:
        session.stop()
    except Exception as exc:  # the step's outcome stands; the driver pod's exit and owner refs still clean up
        logging.getLogger(name).warning("stopping Spark failed: %s", exc)
