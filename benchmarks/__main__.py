"""`python -m benchmarks run [--smoke]`: run the benchmarks and write the report.

python -m benchmarks run                      # everything, full size: docs/benchmarks.md + docs/img/
python -m benchmarks run --smoke              # seconds-sized, into benchmarks/.work/smoke/ (CI)
python -m benchmarks run --sections extraction --extract-sizes 100k,500k --repeat 5
python -m benchmarks run --sizes 20k,50k --e2e-size 20k --flow-sizes 50k   # a quick check of every path
python -m benchmarks report --results benchmarks/.work/results.json   # re-render a saved run
python -m benchmarks plan                     # what a run would do
python -m benchmarks seed                     # seed its servers ahead of a quiet run (minutes at 2M)
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import signal
import sys
from decimal import Decimal
from pathlib import Path

from flows.settings import MAX_SEED_ROWS

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("e2e", "extraction", "storage", "scaling")
# What the generator can number (flows/generator.py): more failed in the middle of seeding, hours in.
MAX_DOCUMENTS = MAX_SEED_ROWS
MAX_DIGITS = 12  # of a size before its k or M


def size(text: str) -> int:
    """A number of documents: 368210, 368_210, 100k, 4.1M; a whole number above zero (in decimal, so that
    4.1M is 4,100,000 exactly: in binary floating point it falls just short)."""
    cleaned = text.strip().lower().replace("_", "").replace(",", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(cleaned[-1:], 1)
    try:
        number = Decimal(cleaned[:-1] if scale > 1 else cleaned)
        # A size's digits are checked before any arithmetic: 1e999999 would take the process a while.
        if not number.is_finite() or number.adjusted() > MAX_DIGITS:
            raise ArithmeticError
        value = number * scale
        if value < 1 or value > MAX_DOCUMENTS or value != value.to_integral_value():
            raise ArithmeticError
    except ArithmeticError:  # decimal's InvalidOperation and Overflow are ArithmeticErrors
        raise argparse.ArgumentTypeError(
            f"not a number of documents: {text!r} (a whole number, 1 to {MAX_DOCUMENTS:,}: 368210, 100k, 2M)"
        ) from None
    return int(value)


def repetitions(text: str) -> int:
    """A number of repetitions: a whole number, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a number of repetitions: {text!r} (1 or more)")
    return value


def sizes(text: str) -> tuple[int, ...]:
    """Sizes separated by commas. "368,210" is refused rather than read as 368 and 210 documents: a comma
    before exactly three digits, after at most three, is how a thousands separator looks."""
    parts = [t.strip() for t in text.split(",")]
    for before, after in itertools.pairwise(parts):
        if re.fullmatch(r"\d{1,3}", before) and re.fullmatch(r"\d{3}", after):
            raise argparse.ArgumentTypeError(
                f"{before},{after} looks like one number with a thousands separator, and sizes are"
                f" separated by commas: write {before}{after} or {before}_{after}"
                f" (or, for two sizes, {before},{after}.0)"
            )
    return tuple(size(t) for t in parts if t)


def sections(text: str) -> tuple[str, ...]:
    chosen = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown sections {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    return chosen


def _plan(args: argparse.Namespace):
    from benchmarks.plan import FULL, SMOKE, with_overrides

    return with_overrides(
        SMOKE if args.smoke else FULL,
        e2e_size=args.e2e_size,
        extract_sizes=args.extract_sizes,
        scale_sizes=args.sizes,
        repeat=args.repeat,
        repeat_large=args.repeat_large,
        flow_repeat=args.flow_repeat,
        scale_repeat=args.scale_repeat,
        profile_size=args.profile_size,
        flow_sizes=args.flow_sizes,
        sections=args.sections,
        with_flow=False if args.no_flow else None,
        with_spark_server=False if args.no_spark_server else None,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from benchmarks import report
    from benchmarks.suite import Runner

    plan = _plan(args)
    work = Path(args.work_dir)
    default_out = work / "smoke" if plan.smoke else ROOT / "docs"
    out = Path(args.out) if args.out else default_out / "benchmarks.md"
    img = (
        Path(args.img_dir) if args.img_dir else (default_out / "img" if plan.smoke else ROOT / "docs" / "img")
    )
    results_path = (
        Path(args.results)
        if args.results
        else work / ("results-smoke.json" if plan.smoke else "results.json")
    )
    print(f"benchmarks: {report.describe_plan(plan)}", flush=True)
    runner = Runner(plan, work, log=lambda m: print(m, flush=True), save_to=results_path)
    try:
        results = runner.run()
    except BaseException as exc:  # stopped or failed: what was measured stays, to report or to read
        signalled = isinstance(exc, KeyboardInterrupt | SystemExit)
        runner.stopped("stopped by a signal" if signalled else f"{type(exc).__name__}: {exc}")
        runner.results.save(results_path)
        print(
            f"stopped; what was measured is in {results_path} (render it with `python -m benchmarks report "
            f"--results {results_path} --out FILE --img-dir DIR`: without them it replaces docs/)",
            flush=True,
        )
        raise
    results.save(results_path)
    report.write(results, out, img)
    print(f"results: {results_path}\nreport:  {out}\nplots:   {img}/bench-*.png")
    print(f"took {results.duration_s / 60:.1f} min")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from benchmarks import report
    from benchmarks.plan import Results

    try:
        results = Results.load(Path(args.results))
    except (OSError, ValueError, TypeError) as exc:  # missing, unreadable, not JSON, not a saved run
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        print(f"python -m benchmarks report: error: cannot read {args.results}: {reason}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else ROOT / "docs" / "benchmarks.md"
    img = Path(args.img_dir) if args.img_dir else ROOT / "docs" / "img"
    report.write(results, out, img)
    print(f"report: {out}")
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    """Seed (once) the server data folders a run of this plan reads, so the run itself does not wait."""
    from benchmarks import servers

    for n in _plan(args).sizes:
        servers.seeded_store(Path(args.work_dir), n, log=lambda m: print(m, flush=True))
        print(f"{n:,}: seeded", flush=True)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from benchmarks import report

    print(report.describe_plan(_plan(args)))
    return 0


def stop_on_sigterm() -> None:
    """SIGTERM ends a run as Ctrl-C does: by an exception, so the contestant's whole tree is stopped on the
    way out (benchmarks.measure) instead of outliving the harness."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def main(argv: list[str] | None = None) -> int:
    stop_on_sigterm()
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    helps = {
        "run": "run the benchmarks",
        "plan": "print what a run would do",
        "seed": "seed the servers a run would read (ahead of a quiet run; no measurement)",
    }
    for name, func in (("run", cmd_run), ("plan", cmd_plan), ("seed", cmd_seed)):
        p = sub.add_parser(name, help=helps[name])
        p.add_argument(
            "--smoke", action="store_true", help="tiny sizes, one repetition, no `vamosjuntos run` (CI)"
        )
        p.add_argument("--repeat", type=repetitions, help="repetitions at sizes up to 500k (default 3)")
        p.add_argument(
            "--flow-repeat", type=repetitions, help="end-to-end repetitions that time `vamosjuntos run` (3)"
        )
        p.add_argument("--repeat-large", type=repetitions, help="repetitions above 500k (default 1)")
        p.add_argument(
            "--scale-repeat", type=repetitions, help="repetitions of each scaling size (default 1)"
        )
        p.add_argument("--sizes", type=sizes, help="scaling sizes, comma-separated: 100k,368210,1M,2M")
        p.add_argument("--extract-sizes", type=sizes, help="extraction sizes, e.g. 100k,500k,2M")
        p.add_argument(
            "--flow-sizes",
            type=sizes,
            help="scaling sizes that also time `vamosjuntos run` once (default 2M)",
        )
        p.add_argument("--e2e-size", type=size, help="end-to-end size (default 368,210, the real collection)")
        p.add_argument("--profile-size", type=size, help="size of the extraction anatomy and profile (100k)")
        p.add_argument("--sections", type=sections, help=f"a subset of {','.join(SECTIONS)}")
        p.add_argument("--no-flow", action="store_true", help="skip timing `vamosjuntos run`")
        p.add_argument(
            "--no-spark-server",
            action="store_true",
            help="skip timing `vamosjuntos run` against a running `vamosjuntos spark-server`",
        )
        p.add_argument(
            "--work-dir",
            default=str(ROOT / "benchmarks" / ".work"),
            help="seeded servers (reused across runs), lakes, logs (default benchmarks/.work)",
        )
        p.add_argument("--out", help="the report (default docs/benchmarks.md; smoke: WORK/smoke/)")
        p.add_argument("--img-dir", help="where the plots go (default docs/img)")
        p.add_argument("--results", help="where the raw results JSON goes (default WORK/results.json)")
        p.set_defaults(func=func)
    rep = sub.add_parser("report", help="re-render the report from a saved results JSON")
    rep.add_argument("--results", required=True)
    rep.add_argument("--out")
    rep.add_argument("--img-dir")
    rep.set_defaults(func=cmd_report)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
