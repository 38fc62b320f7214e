"""The operator's commands of `vamosjuntos` (flows/cli.py): a backfill of a date range, a rollback."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from flows.dates import date_argument

if TYPE_CHECKING:
    from flows.settings import Settings


def add_range_options(run: argparse.ArgumentParser) -> None:
    run.add_argument("--from", dest="start", type=date_argument, help="first date of a backfill (YYYY-MM-DD)")
    run.add_argument("--to", dest="end", type=date_argument, help="last date of a backfill, included")
    run.add_argument(
        "--rerun-completed",
        action="store_true",
        help="with --from/--to: run again the dates a backfill already completed (default: skip them)",
    )


def is_backfill(args: argparse.Namespace) -> bool:
    """Whether `run` was given a range; a usage error if it is half a range or also a single date."""
    if args.start is None and args.end is None:
        if args.rerun_completed:
            raise SystemExit("error: --rerun-completed goes with --from and --to")
        return False
    if args.start is None or args.end is None:
        raise SystemExit("error: a backfill needs both --from and --to")
    if args.ingestion_date is not None:
        raise SystemExit("error: give either --ingestion-date or --from/--to, not both")
    from flows.errors import ConfigurationError
    from flows.ops.backfill import dates_between

    try:
        dates_between(args.start, args.end)
    except ConfigurationError as exc:
        raise SystemExit(f"error: {exc}") from None
    return True


def run_backfill(args: argparse.Namespace, settings: Settings) -> int:
    """`vamosjuntos run --from/--to` with the settings `cmd_run` read and checked."""
    from flows.answers import as_table, load_latest
    from flows.lake import Lake
    from flows.ops.backfill_flow import backfill

    outcomes = backfill(
        settings=settings,
        start=args.start,
        end=args.end,
        rows=args.rows,
        seed=args.seed,
        full_refresh=args.full_refresh,
        rerun_completed=args.rerun_completed,
    )
    print("\n" + "\n".join(f"{o['ingestion_date']}  {o['outcome']}" for o in outcomes))
    print("\n" + as_table(load_latest(Lake(settings))["answers"]))
    return 0  # a consumer left behind the newest date: the flow's WARNING said so (backfill_flow.py)


def add_rollback(sub: Any, common: argparse.ArgumentParser) -> None:
    back = sub.add_parser(
        "rollback",
        parents=[common],
        help="make the previous committed run of a consumer table current again; republish; answer again",
    )
    back.add_argument("table", help="consumer table: publico_alvo, regioes, ufs, mesorregioes, microrregioes")
    back.add_argument("--to", dest="to_run_id", help="the run to make current (default: the previous one)")
    back.add_argument("--list", action="store_true", help="list the table's runs in the lake, change nothing")
    back.set_defaults(func=cmd_rollback)


def cmd_rollback(args: argparse.Namespace) -> int:
    from flows.errors import RollbackError
    from flows.lake import Lake
    from flows.ops.rollback import check, kept, records, unfinished
    from flows.settings import Settings

    settings = Settings()  # the environment, read once here
    lake = Lake(settings)
    runs = kept(lake, args.table)  # an unknown or never committed table fails here, before Prefect starts
    if args.list:
        for r in runs:
            said = f"{records(r.records)}  finished {r.finished_at}"
            if r.damaged:  # the current run is read from the table's manifest: only a return to it is lost
                said = (
                    f"{r.damaged}: a later rollback cannot return to it"
                    if r.current
                    else f"cannot be rolled back to: {r.damaged}"
                )
            print(f"{'*' if r.current else ' '} {r.run_id}  {said}")
        return 0
    check(lake, args.table, args.to_run_id)  # a refused rollback is not a failed run: say so before it starts
    from flows.answers import as_table
    from flows.console import quiet_consoles
    from flows.ops.rollback_flow import rollback
    from flows.orphans import start_guarded

    if not args.verbose:
        quiet_consoles()
    from flows.in_process import TemporaryServer, flow_settings

    start_guarded()  # Prefect's temporary server ends with this command, even killed
    server = TemporaryServer().start()  # as `vamosjuntos run` starts it (flows/in_process.py)
    with flow_settings():  # as `vamosjuntos run`: no heartbeats, time for a slow temporary server's start
        server.wait()
        try:
            result = rollback(table=args.table, to_run_id=args.to_run_id, settings=settings)
        except Exception as exc:
            try:
                stuck = unfinished(lake, args.table)
            except Exception:  # the lake unreadable too: the first error says more
                stuck = False
            if not stuck:
                raise
            # the lake rolled back, the catalog or the answers did not follow: say how to finish it (the
            # user's own command: with --to, the same run, whether the swap to it happened or not)
            again = f"vamosjuntos rollback {args.table}" + (
                f" --to {args.to_run_id}" if args.to_run_id else ""
            )
            what = (str(exc).strip().splitlines() or [""])[0][:300]
            raise RollbackError(
                f"consumer/{args.table} is rolled back in the lake, but the catalog or the answers did not "
                f"follow ({type(exc).__name__}: {what}): once that is fixed, run `{again}` again, it "
                "finishes the rollback."
            ) from exc
    done = result["rollback"]
    rolled = f"rolled back from run {done['from_run_id']} to run {done['to_run_id']} by {done['by']}"
    if done["resumed"]:
        by = done["resumed_by"]
        rolled = f"{rolled} at {done['at']} (not recorded as carried through: finished now by {by})"
    print(f"consumer/{done['table']}: {rolled}; catalog republished\n")
    print(as_table(result["answers"]))
    return 0
