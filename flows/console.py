"""What a person sees when a command fails: one summary on the console, the whole story in a log file.

Every log record of a command (Prefect's, the driver's, ours) goes to a log file with its traceback. The
console shows log lines without tracebacks (unless `--verbose`), and a failure ends with one summary:
what failed, where, what to do, and the log file's path.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from flows.errors import Terminated, VamosJuntosError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_dir() -> Path:
    """The system's temp folder: not the lake, which may be a file, read-only or on S3. One folder per
    user, private (a shared one would be unwritable for the second user, and logs name the lake)."""
    return Path(tempfile.gettempdir()) / f"vamosjuntos-logs-{os.getuid()}"


@contextmanager
def command_log(command: str) -> Iterator[Path]:
    """A new log file for this command, fed by the root logger (every logger propagates to it) while the
    command runs."""
    folder = log_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    path = folder / f"{command}-{stamp}-{os.getpid()}.log"
    handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()


class _WithoutTraceback(logging.Formatter):
    """Formats a record as `inner` does, minus its traceback (the record itself is left whole for the file
    and the Prefect API, which format it after the console)."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


def quiet_consoles() -> None:
    """Console handlers (Prefect's included, once it is imported) print log lines without tracebacks."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            console = getattr(handler, "stream", None) in (sys.stderr, sys.stdout)
            if console and not isinstance(handler.formatter, _WithoutTraceback):
                handler.setFormatter(_WithoutTraceback(handler.formatter))


def summary(exc: BaseException, log_path: Path) -> str:
    """One clear message for a failure: what, where, what to do, and where the full trace is."""
    from pydantic import ValidationError

    from flows.settings import invalid_settings, is_ours

    if isinstance(exc, VamosJuntosError | Terminated):
        what = str(exc)
    elif isinstance(exc, ValidationError) and is_ours(exc):
        what = invalid_settings(exc)
    elif type(exc).__name__ == "ProfileNotFound":  # botocore's
        what = f"{exc} (AWS_PROFILE): check its name in ~/.aws/config (or AWS_CONFIG_FILE), or unset it."
    elif type(exc).__name__ == "NoCredentialsError":  # botocore's, through s3fs or boto3 (the lake, Glue)
        what = (
            "no AWS credentials were found for the lake on S3 (or Glue, Athena): set AWS_PROFILE, or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where a role gives them (on EKS, the flow's "
            "service account); for a local lake, set VAMOSJUNTOS_LAKE_ROOT to a folder."
        )
    elif isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        what = (
            f"{exc.strerror or exc}{where}: check that VAMOSJUNTOS_LAKE_ROOT (and any zone root) is a folder "
            "this user can write to."
        )
    else:
        first = (str(exc).strip().splitlines() or [""])[0][:500]
        what = f"unexpected {type(exc).__name__}: {first}"
    return f"error: {what}\n(the full trace is in {log_path}; add --verbose to print it here)"


def record_failure(exc: BaseException, log_path: Path) -> None:
    """The failure's full traceback, appended to the log file (best effort: the summary still prints)."""
    with suppress(OSError), open(log_path, "a", encoding="utf-8") as fh:
        fh.write("".join(traceback.format_exception(exc)))
