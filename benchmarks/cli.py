"""`vamosjuntos run` timed as its users run it: the console script in a fresh process, settings from the
environment, Prefect's ephemeral API (the default) or a running `prefect server start`.

Nothing is inside the command to mark its stages, so they come from what Prefect itself recorded: the
`lakehouse` flow run's start and end in the Prefect database (SQLite under the API's PREFECT_HOME). Before
the flow starts: interpreter, imports, the CLI's checks, Prefect's temporary server (ephemeral), creating
the flow run; after it ends: printing the answers, stopping that server, the interpreter's exit. Inside
the flow run, the spans of the task runs that do our work (and of the two subflows whose body does it)
split it into that work and Prefect's own time between (creating subflow and task runs, their states):
measured within one run, so the machine's speed, which varies between runs, hardly moves it.
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
# Inside the flow run: the tasks that do our work (their run names less Prefect's "-abc" suffix), and the
# subflows whose own body does it.
WORK_TASKS = (
    "land_ibge",
    "land_pnadc",
    "ibge_to_processing",
    "pnadc_to_processing",
    "quality_gate",
    "processing_to_consumer",
)
WORK_FLOWS = ("publish", "answer")


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
    """The `lakehouse` flow run that started between t0 and t1, as a stage mark; none if not found. Its
    `info`: `work_s`, the union of our work's spans inside it, `prefect_s` the rest, `work` their names."""
    if not database.exists():
        return []
    flows = (
        "SELECT f.name, r.start_time, r.end_time FROM flow_run r JOIN flow f ON f.id = r.flow_id "
        "WHERE r.start_time IS NOT NULL AND r.end_time IS NOT NULL"
    )
    tasks = (
        "SELECT name, start_time, end_time FROM task_run "
        "WHERE start_time IS NOT NULL AND end_time IS NOT NULL"
    )
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)) as db:
            flow_runs, task_runs = db.execute(flows).fetchall(), db.execute(tasks).fetchall()
    except sqlite3.Error:
        return []
    spans = [(n, _epoch(a), _epoch(b)) for n, a, b in flow_runs]
    inside = sorted((a, b) for n, a, b in spans if n == FLOW and a and b and t0 <= a and b <= t1)
    if not inside:
        return []
    start, end = inside[-1]
    named = [(n.rsplit("-", 1)[0] if "-" in n else n, _epoch(a), _epoch(b)) for n, a, b in task_runs]
    work = [(n, a, b) for n, a, b in spans if n in WORK_FLOWS]
    work += [(n, a, b) for n, a, b in named if n in WORK_TASKS]  # not a subflow's own task ("publish-0")
    work = [(n, a, b) for n, a, b in work if a and b and start <= a <= b <= end]
    work_s = _covered([(a, b) for _, a, b in work])
    info = {"work_s": work_s, "prefect_s": end - start - work_s, "work": sorted({n for n, _, _ in work})}
    return [{"name": f"{FLOW} flow", "start": start, "end": end, "info": info}]


def _covered(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one span (the IBGE endpoints' tasks overlap)."""
    total, reach = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def answers(lake: str) -> list[dict[str, Any]]:
    """The run's answers as the steps' worker reports them (id, answer, rows), read from the lake."""
    from flows.answers import load_latest
    from flows.lake import Lake
    from flows.settings import Settings

    payload = load_latest(Lake(Settings(_env_file=None, lake_root=lake)))  # type: ignore[call-arg]
    return [{"id": a["id"], "answer": a["answer"], "rows": a["rows"]} for a in payload["answers"]]
