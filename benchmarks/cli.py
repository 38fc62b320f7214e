"""`vamosjuntos run` timed as its users run it: the console script in a fresh process, settings from the
environment, Prefect's ephemeral API (the default) or a running `prefect server start`.

Nothing is inside the command to mark its stages, so they come from what Prefect itself recorded: the
`lakehouse` flow run's start and end in the Prefect database (SQLite under the API's PREFECT_HOME). Before
the flow starts: interpreter, imports, the CLI's checks, Prefect's temporary server (ephemeral), creating
the flow run; after it ends: printing the answers, stopping that server, the interpreter's exit. Inside
the flow run, the spans of the task runs that do our work (and of the two subflows whose body does it)
split it into that work and Prefect's own time between (creating subflow and task runs, their states;
also the little of our code that runs between tasks, such as a date's lock, while Prefect's own work
inside `publish` and `answer` counts as ours). Measured within one run, it needs no pairing of runs that
the machine's speed varies between; load during the run still moves it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.plan import DATE
from flows.layout import SPARK_STEPS, ZONES

if TYPE_CHECKING:
    from flows.lake import Lake

FLOW = "lakehouse"
# Inside the flow run: the tasks that do our work (their run names less Prefect's "-abc" suffix), and the
# subflows whose own body does it.
WORK_TASKS = ("land_ibge", "land_pnadc", *SPARK_STEPS, "quality_gate")
WORK_FLOWS = ("publish", "answer")
EXPECTED = {*WORK_TASKS, *WORK_FLOWS}


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


def _run_lake(lake: str | Path) -> Lake:
    """The run's lake as the harness laid it out: a zone root in the harness's own environment is not the
    run's."""
    from flows.lake import Lake
    from flows.settings import Settings

    roots = {f"{zone}_root": None for zone in ZONES}
    return Lake(Settings(_env_file=None, lake_root=str(lake), **roots))  # type: ignore[call-arg]


def sent_ahead(lake: str | Path) -> tuple[float, float] | None:
    """When the stream's query went out and its first batch came back, if `vamosjuntos run` sent it ahead,
    while Prefect started (the raw PNAD manifest's `query_sent_ahead`; flows/sources/mongo/ahead.py)."""
    from flows.layout import raw_pnadc

    times = (_run_lake(lake).manifest("raw", raw_pnadc(DATE)) or {}).get("query_sent_ahead")
    if not times:
        return None
    sent, answered = (dt.datetime.fromisoformat(times[k]).timestamp() for k in ("sent_at", "answered_at"))
    return sent, answered


def flow_marks(
    database: Path, t0: float, t1: float, settle_s: float = 5.0, lake: str | Path | None = None
) -> list[dict[str, Any]]:
    """The `lakehouse` flow run that started between t0 and t1, as a stage mark; none if not found. Its
    `info`: `work_s`, the union of our work's spans inside it, `prefect_s` the rest, `work` their names,
    `tasks_s` the union of the tasks' spans alone (without the subflows `publish` and `answer`).

    `lake`: the run's lake, whose raw manifest says whether the stream's query was sent ahead, while
    Prefect started: the server built its answer then, from the query until its first batch came back, and
    that span is our work too (in `tasks_s`, and in `work_s` where it falls inside the flow run): Prefect's
    time that our work overlapped is not Prefect's overhead, and the answer waiting for its task is.

    A running server records task runs from events, so a row may still lack its end when the command
    exits: until every kind of work is there (for up to `settle_s`), it reads again; if one is still
    missing, or a task was retried (its span then holds the failed attempt and the retry's delay),
    `prefect_s` (and `tasks_s`) is None rather than a span that counts our work as Prefect's.
    """
    deadline = time.monotonic() + settle_s
    while True:
        found = _flow_run(database, t0, t1, sent_ahead(lake) if lake is not None else None)
        if found is None or set(found[2]["work"]) == EXPECTED or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if found is None:
        return []
    start, end, info = found
    if set(info["work"]) != EXPECTED or info["retried"]:
        info["prefect_s"] = info["tasks_s"] = None
    return [{"name": f"{FLOW} flow", "start": start, "end": end, "info": info}]


def _flow_run(
    database: Path, t0: float, t1: float, ahead: tuple[float, float] | None = None
) -> tuple[float, float, dict[str, Any]] | None:
    if not database.exists():
        return None
    flows = (
        "SELECT f.name, r.start_time, r.end_time FROM flow_run r JOIN flow f ON f.id = r.flow_id "
        "WHERE r.start_time IS NOT NULL AND r.end_time IS NOT NULL"
    )
    tasks = (
        "SELECT name, start_time, end_time, run_count FROM task_run "
        "WHERE start_time IS NOT NULL AND end_time IS NOT NULL"
    )
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)) as db:
            flow_runs, task_runs = db.execute(flows).fetchall(), db.execute(tasks).fetchall()
    except sqlite3.Error:
        return None
    spans = [(n, _epoch(a), _epoch(b)) for n, a, b in flow_runs]
    inside = sorted((a, b) for n, a, b in spans if n == FLOW and a and b and t0 <= a <= b <= t1)
    if not inside:
        return None
    start, end = inside[-1]
    # "land_ibge-3a8" is a run of land_ibge; "publish-0", the task of the subflow publish, is not work.
    named = [(n, a, b, 1) for n, a, b in spans if n in WORK_FLOWS]
    tasks_named = [(n.rsplit("-", 1)[0], _epoch(a), _epoch(b), c or 1) for n, a, b, c in task_runs]
    named += [t for t in tasks_named if t[0] in WORK_TASKS]
    work = [
        (n, a, b, c) for n, a, b, c in named if a is not None and b is not None and start <= a <= b <= end
    ]
    work_spans = [(a, b) for _, a, b, _ in work]
    task_spans = [(a, b) for n, a, b, _ in work if n in WORK_TASKS]
    answer_s = 0.0
    if ahead is not None and t0 <= ahead[0] <= ahead[1] <= t1:  # this command's query, sent ahead
        answer_s = ahead[1] - ahead[0]
        task_spans.append(ahead)
        if ahead[1] > start:
            work_spans.append((max(ahead[0], start), min(ahead[1], end)))
    work_s = _covered(work_spans)
    info = {
        "work_s": work_s,
        # The tasks alone: the same code as the steps called directly, so a run's time less theirs
        # leaves what Prefect adds beside the steps' own start-up and light work (analysis/e2e.py).
        "tasks_s": _covered(task_spans),
        "sent_ahead_s": answer_s,  # the server's answer to the query sent ahead, built while Prefect started
        "prefect_s": end - start - work_s,
        "work": sorted({n for n, *_ in work}),
        "retried": sorted({n for n, _, _, c in work if c > 1}),
    }
    return start, end, info


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

    payload = load_latest(_run_lake(lake))
    return [{"id": a["id"], "answer": a["answer"], "rows": a["rows"]} for a in payload["answers"]]
