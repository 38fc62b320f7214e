"""A class-data-sharing archive of the local Spark JVM's classes (issue 13: the JVM's cold start).

A local run's Spark JVM loads, parses and verifies ~25,000 classes from PySpark's jars (the AWS SDK bundle
alone is 686 MB) before and during its first steps. Java's AppCDS keeps those classes parsed and verified in
one archive that later JVMs map instead. Side by side on the 400,000-document lake (two rounds, in turn):
the session started in 3.4–4.3 s instead of 6.0–6.4 s, ibge_to_processing took 6.9–7.5 s instead of
8.6–9.0 s and pnadc_to_processing 16.5–17.2 s instead of 18.6–19.7 s (docs/benchmarks.md: the whole run).

Built once per machine by `python -m flows.spark.class_cache` (`.ci/setup` calls it), used by every local
session when it matches this Java and these jars.

The archive's file name is a digest of the Java binary and the jars (name, size, mtime): another Java or
another jar set looks for another file, so a stale archive is never used; a JVM whose own checks refuse
the archive runs without it (`-Xshare:auto`), silently. A truncated archive would crash the JVM, so it is
written under a temporary name, mapped once by a JVM that must exit cleanly, and only then renamed into
place. Kubernetes steps run in the image, whose JVMs never see this file.

A build first removes the archives no JVM can map any more (flows/spark/class_archives.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flows.spark.class_archives import archive_name, prune, record_path, write_record
from flows.spark.small_run import child_environment

log = logging.getLogger(__name__)

# The JVM's CDS logging off: a refused archive (another Java, a changed jar) must not print warnings.
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"
_DUMP_ENV = "VAMOSJUNTOS_SPARK_CLASS_ARCHIVE_DUMP"  # set by `build` for its training process only
TRAINING_ROWS = 3_000
TRAINING_TIMEOUT_S = 600.0  # about a minute here
EXIT_WAIT_S = 180.0  # the training JVM writes the archive as it exits: up to this long


def cache_dir(configured: str | None = None) -> Path:
    """`VAMOSJUNTOS_SPARK_CLASS_CACHE_DIR` if set, else beside the jar cache (~/.cache/vamosjuntos)."""
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vamosjuntos" / "spark-cds"


def _java() -> Path | None:
    """The `java` Spark's launcher runs: $JAVA_HOME/bin/java, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return Path(found).resolve() if found and Path(found).exists() else None


def _jars() -> Path | None:
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        return None
    jars = Path(next(iter(spec.submodule_search_locations))) / "jars"
    return jars if jars.is_dir() else None


def archive_path(directory: Path | None = None) -> Path | None:
    """Where the archive for this Java and these jars is (or would be); None without Java or PySpark."""
    java, jars = _java(), _jars()
    if java is None or jars is None:
        return None
    return (directory or cache_dir()) / archive_name(java, jars)


def jvm_options(master: str, enabled: bool = True, directory: Path | None = None) -> str:
    """The local driver's options for the archive: map it if built, else nothing.

    The training run of `build` asks for a dump instead (its environment names the file to write). The
    archive only ever speeds a session up: anything in the way of finding it (an unreadable cache folder,
    a jar removed meanwhile, no home folder) means a session without it, never a failed one.
    """
    if master.startswith("k8s://"):
        return ""
    dump = os.environ.get(_DUMP_ENV)
    if dump:
        return f"-XX:ArchiveClassesAtExit={dump} {QUIET}" if _one_argument(dump) else ""
    if not enabled:
        return ""
    try:
        path = archive_path(directory)
        found = path is not None and path.is_file()
    except (OSError, RuntimeError):
        return ""
    return f"-XX:SharedArchiveFile={path} {QUIET}" if found and _one_argument(str(path)) else ""


def _one_argument(path: str) -> bool:
    """Spark's launcher splits extraJavaOptions at white space: a path with any stays unused."""
    return not any(c.isspace() or c in "'\"" for c in path)


def build(directory: Path | None = None, rows: int = TRAINING_ROWS) -> Path:
    """Build the archive for this Java and these jars (nothing to do if it exists); return its path.

    The training is a small local run of the real steps (embedded MongoDB, IBGE snapshot, the three Spark
    steps), so the archive holds the classes a run loads.
    """
    final = archive_path(directory)
    if final is None:
        raise RuntimeError("no Java or no PySpark here: nothing to archive (install them: bash .ci/setup).")
    if final.is_file():
        if not record_path(final).is_file():  # built before records were kept
            write_record(final, _java(), _jars())
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(f"{final.name}.{os.getpid()}.partial")
    try:
        _train_in_a_child(partial, rows)
        if not partial.is_file() or partial.stat().st_size == 0:
            raise RuntimeError(f"the training JVM wrote no archive at {partial}")
        _check_maps(partial)
        write_record(final, _java(), _jars())
        os.replace(partial, final)  # readers see a whole, checked archive or none
    finally:
        partial.unlink(missing_ok=True)
    return final


def _train_in_a_child(partial: Path, rows: int) -> None:
    """Run the training in a fresh interpreter whose JVM dumps to `partial`; returns once that JVM ended."""
    with tempfile.TemporaryDirectory(prefix="vamosjuntos-cds-") as work:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "flows.spark.class_cache", "--train", work, "--rows", str(rows)],
                env=child_environment(**{_DUMP_ENV: str(partial)}), capture_output=True, text=True,
                check=False, timeout=TRAINING_TIMEOUT_S,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"the training run took over {TRAINING_TIMEOUT_S:.0f} s: stopped") from exc
    if done.returncode != 0:
        raise RuntimeError(f"the training run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")


def _check_maps(archive: Path) -> None:
    """A JVM maps the archive and exits cleanly (a damaged one crashes it: never put in place)."""
    java = _java()
    assert java is not None
    with tempfile.TemporaryDirectory(prefix="vamosjuntos-cds-check-") as work:  # where a crash log goes
        check = subprocess.run(
            [str(java), f"-XX:SharedArchiveFile={archive}", *QUIET.split(), "-XX:-CreateCoredumpOnCrash",
             "-version"],
            capture_output=True, text=True, check=False, cwd=work, timeout=120,
        )  # fmt: skip
    if check.returncode != 0:
        raise RuntimeError(f"a JVM could not map the new archive (exit {check.returncode}): not used")


def _train(work: Path, rows: int) -> None:
    """The steps of a local run on `rows` generated documents, in this process (its JVM dumps at exit)."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    from flows.spark.small_run import run_small

    try:
        run_small(work, rows)
    finally:
        session = SparkSession.getActiveSession()
        if session is not None:
            session.stop()
    # The JVM writes the archive as it exits, which it does when its standard input closes: wait for it
    # here, so the archive is whole when this process ends.
    proc = getattr(SparkContext._gateway, "proc", None)
    if proc is not None:
        proc.stdin.close()
        proc.wait(timeout=EXIT_WAIT_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.spark.class_cache",
        description="Build the local Spark JVM's class archive for this Java and these jars (once).",
    )
    parser.add_argument("--train", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=TRAINING_ROWS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.train:
        _train(args.train, args.rows)
        return 0
    from flows.settings import Settings

    settings = Settings()
    if not settings.spark_class_cache:
        print("class-cache: not built (VAMOSJUNTOS_SPARK_CLASS_CACHE is off)")
        return 0
    started = time.monotonic()
    directory = cache_dir(settings.spark_class_cache_dir)
    # First: a build that fails for want of disk space must not keep the space the stale archives hold.
    try:
        if directory.is_dir():
            for stale in prune(directory):
                print(f"class-cache: removed {stale}: no JVM can use it any more")
    except OSError as exc:  # a folder we cannot search: the build says so, if it cannot either
        print(f"class-cache: stale archives not looked for in {directory}: {exc}", file=sys.stderr)
    try:
        existing = archive_path(directory)
        if existing is None or not existing.is_file():
            print("class-cache: building the Spark JVM's class archive (a small local run, about a minute)")
        path = build(directory)
    except (RuntimeError, OSError) as exc:
        print(f"class-cache: not built: {exc}", file=sys.stderr)
        return 1
    print(f"class-cache: {path} ({path.stat().st_size >> 20} MB, {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
