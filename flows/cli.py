"""`vamosjuntos`: run the lakehouse, print its answers."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

# Offline by default: no telemetry calls from a machine that may have no internet.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from flows.arguments import rows_argument, seed_argument
from flows.dates import date_argument
from flows.ops.commands import add_range_options, add_rollback, is_backfill, run_backfill
from flows.spark.server_command import add_spark_server

if TYPE_CHECKING:
    from flows.in_process import TemporaryServer
    from flows.settings import Settings

JAVA_HELP = (
    "  Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless\n"
    "  macOS:         brew install openjdk@17\n"
    "  elsewhere:     https://adoptium.net/ (Temurin 17), then put its bin/ on PATH or set JAVA_HOME"
)


def _java_major() -> int | None:
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not os.path.exists(java):
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def _check_java() -> None:
    major = _java_major()
    if major is None or major < 17:
        found = "none was found" if major is None else f"found Java {major}"
        sys.exit(f"Spark needs Java 17 or newer, and {found}.\n{JAVA_HELP}\nthen run this command again.")


def _check_spark(settings: Settings) -> None:
    """Spark steps in this process need PySpark (the `spark` extra): say so before ingesting anything."""
    from flows.errors import ConfigurationError
    from flows.spark.runner import require_local_spark

    if settings.spark_runner == "local":
        try:
            require_local_spark()
            if settings.spark_remote:
                from flows.spark.session import check_remote

                check_remote(settings)
        except ConfigurationError as exc:
            sys.exit(str(exc))


def _check_lake(settings: Settings) -> None:
    """Before anything starts: every local zone root (and the embedded MongoDB's folder) can be written."""
    from flows.errors import LakeError
    from flows.layout import ZONES

    roots = [settings.zone_root(z) for z in ZONES]
    folders = [Path(root) for root in roots if "://" not in root]
    if settings.mongo_uri is None:
        folders.append(settings.local_mongo_path)
    for folder in folders:
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        if not existing.is_dir():
            raise LakeError(
                f"the lake folder {folder} cannot be created: {existing} is a file, not a folder. "
                "Set VAMOSJUNTOS_LAKE_ROOT to a folder (it is created if missing)."
            )
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
                pass
        except OSError as exc:
            raise LakeError(
                f"the lake folder {folder} cannot be written ({exc.strerror or exc}). "
                "Set VAMOSJUNTOS_LAKE_ROOT to a folder this user can write to."
            ) from None


def cmd_run(args: argparse.Namespace) -> int:
    backfill = is_backfill(args)  # a usage error (as `main` found before Prefect's server started)
    from flows.dates import ingestion_date
    from flows.settings import Settings

    settings = Settings()  # the environment, read once here
    _check_spark(settings)
    if settings.spark_remote is None:  # else Spark's JVM is the server's
        _check_java()
    from flows.in_process import TemporaryServer, flow_settings
    from flows.orphans import start_guarded

    _check_lake(settings)
    start_guarded()  # before any process starts, unless `main` did (flows/server_launch.py): each carries
    # the run's mark.
    from flows.sources.embedded_mongo import launch_ahead, launched_uri, stop_untaken
    from flows.sources.mongo import ahead

    embedded = settings.mongo_uri is None
    if embedded:
        launch_ahead(settings.local_mongo_path)  # it opens its data folder while Prefect's server starts
    try:
        if not backfill:  # the stream's query too: the server builds its answer meanwhile (mongo/ahead.py)
            uri = launched_uri(settings.local_mongo_path) if embedded else None
            ahead.send_ahead(settings, ingestion_date(args.ingestion_date), args.full_refresh, uri)
        # In ephemeral mode the server `main` launched, else one started now while the flows are imported;
        # before the settings context, which would hide the API URL it gives Prefect.
        server = TemporaryServer().start()
        with flow_settings():
            return _run(args, settings, backfill, server)
    finally:
        ahead.discard()
        stop_untaken()  # not only at exit: a command run in a longer process (a test) ends here


def _run(args: argparse.Namespace, settings: Settings, backfill: bool, server: TemporaryServer) -> int:
    from flows.answers import as_table
    from flows.console import quiet_consoles
    from flows.dates import ingestion_date
    from flows.lake import Lake
    from flows.ops.backfill import behind
    from flows.pipeline import lakehouse
    from flows.summary import format_counts, format_gate

    if not args.verbose:
        quiet_consoles()  # Prefect's console handlers exist now that it is imported
    server.wait()
    if backfill:
        return run_backfill(args, settings)
    date = ingestion_date(args.ingestion_date)
    run = lakehouse(
        rows=args.rows, seed=args.seed, ingestion_date=date, full_refresh=args.full_refresh, settings=settings
    )
    print("\n" + format_counts(run.counts))
    print("\n" + format_gate(run.gate.as_report()))
    print("\n" + as_table(run.answer_rows))
    if advice := behind(Lake(settings)):  # an older date run alone, as a backfill of one
        print(f"\nNote: {advice}.")
    return 0


def cmd_answers(args: argparse.Namespace) -> int:
    from flows.answers import as_json, as_table, load_latest
    from flows.lake import Lake
    from flows.settings import Settings

    payload = load_latest(Lake(Settings()))
    print(as_json(payload["answers"]) if args.format == "json" else as_table(payload["answers"]))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from flows.lake import Lake
    from flows.report.store import existing_location, local_copy
    from flows.settings import Settings

    lake = Lake(Settings())
    if args.print_path:
        print(existing_location(lake))
        return 0
    path = local_copy(lake)
    import webbrowser

    if not webbrowser.open(path.resolve().as_uri()):
        print(f"No browser to open it with; the report is at {path}")
    else:
        print(f"Opened {path}")
    return 0


def after_a_signal(args: argparse.Namespace) -> str:
    """What to do after a command was stopped by a signal: it depends on the command (Terminated's text)."""
    if args.command == "rollback":
        return (
            "A rollback makes its run current in one step or not at all, then republishes the catalog and "
            "answers again: run the same command again. A rollback that did not happen happens; one that "
            "stopped before the catalog and the answers followed is finished; one that completed is "
            f"refused, not repeated on an earlier run (`vamosjuntos rollback {args.table} --list` shows "
            "which run is current)."
        )
    if args.command != "run":  # answers, report: they only read the lake
        return "Nothing in the lake changed; run the command again."
    kept = "What a run had committed stays as it was and what it was writing is not visible; "
    if getattr(args, "start", None) is not None:
        return (
            f"{kept}run the same range again (`--from {args.start} --to {args.end}`): the backfill skips "
            "the dates it completed."
        )
    date = (
        f"`--ingestion-date {args.ingestion_date}`" if args.ingestion_date else "today's (UTC) unless named"
    )
    return f"{kept}run the same date again ({date}) to finish it."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vamosjuntos", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--verbose", action="store_true", help="print tracebacks on the console too (always in the log file)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", parents=[common], help="run the whole lakehouse flow and print the answers")
    run.add_argument(
        "--rows", type=rows_argument, help="documents to seed the embedded MongoDB with (default 368,210)"
    )
    run.add_argument(
        "--seed", type=seed_argument, help="generator seed for the embedded MongoDB (0 to 2^32 - 1)"
    )
    run.add_argument("--ingestion-date", type=date_argument, help="YYYY-MM-DD (default: today, UTC)")
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help="extract the whole MongoDB collection instead of the documents after the last ingested _id",
    )
    add_range_options(run)
    run.set_defaults(func=cmd_run)
    ans = sub.add_parser("answers", parents=[common], help="print the answers of the latest run in the lake")
    ans.add_argument("--format", choices=("table", "json"), default="table")
    ans.set_defaults(func=cmd_answers)
    rep = sub.add_parser(
        "report", parents=[common], help="open the latest HTML report (answers, zone counts, charts)"
    )
    rep.add_argument("--print-path", action="store_true", help="print where the report is instead")
    rep.set_defaults(func=cmd_report)
    add_rollback(sub, common)
    add_spark_server(sub, common)
    args = parser.parse_args(argv)
    from flows.console import command_log, record_failure, summary
    from flows.errors import Terminated
    from flows.termination import terminated_on_signals

    if args.command == "run":
        from flows.server_launch import head_start

        is_backfill(args)  # a usage error before anything starts
        head_start()  # Prefect's temporary server, where plainly needed, starts while Prefect is imported
    if args.command in ("run", "rollback"):
        # Prefect sets up its console logging on import, and not at all if the root logger already has a
        # handler: import it before the log file's handler joins the root logger.
        import prefect.main  # noqa: F401
    with command_log(args.command) as log_path:
        try:
            if args.command == "spark-server":  # it stops on a signal by design (spark/server_command.py)
                return int(args.func(args))
            with terminated_on_signals(after_a_signal(args)):
                return int(args.func(args))
        except (Exception, Terminated) as exc:  # every failure ends in one summary; the trace goes to the log
            record_failure(exc, log_path)
            if args.verbose:
                traceback.print_exception(exc, file=sys.stderr)
            print(summary(exc, log_path), file=sys.stderr)
            return exc.exit_code if isinstance(exc, Terminated) else 1


if __name__ == "__main__":
    from flows.entry import leave

    sys.exit(leave(main()))
