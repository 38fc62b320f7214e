"""`vamosjuntos run` timed as its users run it: the console script in a fresh process, settings from the
environment, Prefect's ephemeral API (the default) or a running `prefect server start`.

Nothing is inside the command to mark its stages, so they come from what Prefect itself recorded: the
`lakehouse` flow run's start and end in the Prefect database (SQLite under the API's PREFECT_HOME). Before
the flow starts: interpreter, imports, the CLI's checks, Prefect's temporary server (ephemeral), creating
the flow run; after it ends: printing the answers, stopping that server, the interpreter's exit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

FLOW = "lakehouse"


def executable() -> str:
    """The console script installed beside this interpreter (the project's venv), else the one on PATH."""
    beside = Path(sys.executable).with_name("vamosjuntos")
    found = str(beside) if beside.exists() else shutil.which("vamosjuntos")
    if not found:
        raise FileNotFoundError("no `vamosjuntos` console script: run `bash .ci/setup` first")
    return found


def command(ingestion_date: str) -> list[str]:
    return [executable(), "run", "--ingestion-date", ingestion_date]


def environment(
    lake: str, mongo_uri: str, prefect_home: Path, api_url: str | None, run_dir: Path
) -> dict[str, str]:
    """What a user sets: the lake, the MongoDB to read, the IBGE snapshot (no internet here); with
    `api_url`, the running server to report to. Its log file stays with the run (TMPDIR)."""
    env = {
        "VAMOSJUNTOS_LAKE_ROOT": lake,
        "VAMOSJUNTOS_MONGO_URI": mongo_uri,
        "VAMOSJUNTOS_IBGE_SOURCE": "snapshot",
        "PREFECT_HOME": str(prefect_home),
        "TMPDIR": str(run_dir),
    }
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()  # stored in UTC, naive


def flow_marks(database: Path, t0: float, t1: float) -> list[dict[str, Any]]:
    """The `lakehouse` flow run that started between t0 and t1, as a stage mark; none if not found."""
    if not database.exists():
        return []
    query = (
        "SELECT r.start_time, r.end_time FROM flow_run r JOIN flow f ON f.id = r.flow_id "
        "WHERE f.name = ? AND r.start_time IS NOT NULL AND r.end_time IS NOT NULL"
    )
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)) as db:
            rows = db.execute(query, (FLOW,)).fetchall()
    except sqlite3.Error:
        return []
    spans = [(_epoch(a), _epoch(b)) for a, b in rows]
    inside = sorted((a, b) for a, b in spans if a is not None and b is not None and t0 <= a and b <= t1)
    return [{"name": f"{FLOW} flow", "start": inside[-1][0], "end": inside[-1][1]}] if inside else []


def answers(lake: str) -> list[dict[str, Any]]:
    """The run's answers as the steps' worker reports them (id, answer, rows), read from the lake."""
    from flows.answers import load_latest
    from flows.lake import Lake
    from flows.settings import Settings

    payload = load_latest(Lake(Settings(_env_file=None, lake_root=lake)))  # type: ignore[call-arg]
    return [{"id": a["id"], "answer": a["answer"], "rows": a["rows"]} for a in payload["answers"]]
