"""`vamosjuntos`: run the lakehouse, print its answers."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys

# Offline by default: no telemetry calls from a machine that may have no internet.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _check_java() -> None:
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        sys.exit(
            "Spark needs Java 17 and none was found on PATH.\n"
            "  Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless\n"
            "  macOS:         brew install openjdk@17\n"
            "then run this command again."
        )


def cmd_run(args: argparse.Namespace) -> int:
    _check_java()
    from flows.answers import as_table
    from flows.lake import Lake
    from flows.pipeline import lakehouse
    from flows.settings import Settings
    from flows.summary import format_counts, format_gate, gate_report_name, zone_counts

    date = args.ingestion_date or dt.datetime.now(dt.UTC).date().isoformat()
    rows = lakehouse(rows=args.rows, seed=args.seed, ingestion_date=date)
    lake = Lake(Settings())
    print("\n" + format_counts(zone_counts(lake, date)))
    print("\n" + format_gate(lake.read_json("processing", gate_report_name(date))))
    print("\n" + as_table(rows))
    return 0


def cmd_answers(args: argparse.Namespace) -> int:
    from flows.answers import as_json, as_table, load_latest
    from flows.lake import Lake
    from flows.settings import Settings

    payload = load_latest(Lake(Settings()))
    print(as_json(payload["answers"]) if args.format == "json" else as_table(payload["answers"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vamosjuntos", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the whole lakehouse flow and print the answers")
    run.add_argument("--rows", type=int, help="documents to seed the embedded MongoDB with (default 368,210)")
    run.add_argument("--seed", type=int, help="generator seed for the embedded MongoDB")
    run.add_argument("--ingestion-date", help="YYYY-MM-DD (default: today, UTC)")
    run.set_defaults(func=cmd_run)
    ans = sub.add_parser("answers", help="print the answers of the latest run in the lake")
    ans.add_argument("--format", choices=("table", "json"), default="table")
    ans.set_defaults(func=cmd_answers)
    args = parser.parse_args(argv)
    from flows.errors import VamosJuntosError

    try:
        return int(args.func(args))
    except VamosJuntosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
