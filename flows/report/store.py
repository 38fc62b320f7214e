"""Where the report lives: one HTML file in the consumer zone (`layout.REPORT`), replaced whole by a run."""

from __future__ import annotations

import tempfile
from pathlib import Path

from flows import layout
from flows.errors import LakeError
from flows.lake import Lake

CONTENT_TYPE = "text/html; charset=utf-8"  # on S3: a browser opens it rather than downloading it


def write(lake: Lake, html: str) -> str:
    """Store the report, replacing the previous one atomically (readers see the old or the new); its path."""
    return lake.write_file("consumer", layout.REPORT, html.encode("utf-8"), content_type=CONTENT_TYPE)


def location(lake: Lake) -> str:
    return lake.path("consumer", layout.REPORT)


def existing_location(lake: Lake) -> str:
    """Where the latest report is; a clear error if no run has written one yet."""
    path = location(lake)
    if not lake.fs("consumer").exists(path):
        raise LakeError(f"No report at {path}: run `vamosjuntos run` (or the answer flow) first.")
    return path


def local_copy(lake: Lake) -> Path:
    """A local file with the latest report: the lake's own file locally, a downloaded copy from S3."""
    path = existing_location(lake)
    if "://" not in path:
        return Path(path)
    target = Path(tempfile.gettempdir()) / "vamosjuntos-report.html"
    target.write_bytes(lake.fs("consumer").cat_file(path))
    return target
