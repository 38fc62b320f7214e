"""`vamosjuntos run` measured as the benchmark measures it: the console script, a real MongoDB-protocol
server, Prefect's ephemeral API, the flow run's span read back from Prefect's own database. Not timed."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from benchmarks import cli, servers
from benchmarks.measure import BenchmarkError, run_command
from benchmarks.plan import DATE, FLOW
from flows.answers import Answer, store

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_vamosjuntos_run_is_measured_with_the_flow_run_prefect_recorded(tmp_path: Path) -> None:
    path, _ = servers.seeded_store(tmp_path / "work", 2_000, log=lambda _: None)
    home, run_dir, lake = tmp_path / "prefect-home", tmp_path / "run", str(tmp_path / "run" / "lake")
    with servers.serving(path) as server:
        run = run_command(
            cli.command(DATE),
            run_dir,
            task="cli",
            label=FLOW,
            size=2_000,
            server_pid=server.proc.pid,
            env=cli.environment(lake, server.uri, home, None, run_dir),
            timeout_s=800,
            marks=lambda t0, t1: cli.flow_marks(home / "prefect.db", t0, t1, lake=lake),
        )

    names = [s.name for s in run.stages]
    assert names == ["startup", "lakehouse flow", "shutdown"], Path(run.extra["log"]).read_text()[-3000:]
    assert sum(s.seconds for s in run.stages) == pytest.approx(run.wall_s)
    flow = run.stage("lakehouse flow")
    assert flow is not None and 0 < flow.seconds < run.wall_s
    # Inside it: every task and subflow doing our work, found in Prefect's record, and Prefect's time between.
    assert flow.info["work"] == sorted((*cli.WORK_TASKS, *cli.WORK_FLOWS))
    assert 0 < flow.info["work_s"] < flow.seconds and flow.info["prefect_s"] > 0
    assert flow.info["work_s"] + flow.info["prefect_s"] == pytest.approx(flow.seconds)
    # The command sent the stream's query before the flow run began (flows/sources/mongo/ahead.py): the
    # stream's work is counted from then. Publish and answer are subflows, not tasks.
    assert flow.info["sent_ahead_s"] > 0
    assert 0 < flow.info["tasks_s"] < flow.info["work_s"] + flow.info["sent_ahead_s"]
    # The tree's memory: Python, the Spark JVM and Prefect's temporary server, more than Python alone.
    assert run.peak_mem > run.peak_mem_python > 0 and run.sampling["n"] > 0
    answers = cli.answers(lake)
    assert [a["id"] for a in answers] == list(range(1, 11))
    assert (run_dir / "lake" / "consumer").is_dir()


def _recorded(database: Path, tasks: list[tuple[str, str, str, int]]) -> None:
    """A Prefect database's few columns flow_marks reads: one `lakehouse` run from 00:00:00 to 00:01:40,
    its `publish` and `answer` subflows, and `tasks` (name, start, end, run_count)."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.executescript(
            "CREATE TABLE flow (id TEXT, name TEXT);"
            "CREATE TABLE flow_run (flow_id TEXT, start_time TEXT, end_time TEXT);"
            "CREATE TABLE task_run (name TEXT, start_time TEXT, end_time TEXT, run_count INTEGER);"
        )
        day = "2026-12-02 00:"
        db.executemany(
            "INSERT INTO flow VALUES (?, ?)", [("1", "lakehouse"), ("2", "publish"), ("3", "answer")]
        )
        flows = [("1", "00:00", "01:40"), ("2", "01:20", "01:25"), ("3", "01:30", "01:35")]
        db.executemany("INSERT INTO flow_run VALUES (?, ?, ?)", [(f, day + a, day + b) for f, a, b in flows])
        rows = [(n, day + a, day + b, c) for n, a, b, c in tasks] + [
            ("publish-0", day + "01:19", day + "01:26", 1)
        ]
        db.executemany("INSERT INTO task_run VALUES (?, ?, ?, ?)", rows)
        db.commit()


WORK = [  # 85 s of work in 100 s (publish, answer 10 s): two IBGE endpoints at once, then one after another
    ("land_ibge-3a8", "00:01", "00:03", 1),
    ("land_ibge-d2b", "00:02", "00:04", 1),
    ("land_pnadc-fe5", "00:05", "00:30", 1),
    ("ibge_to_processing", "00:31", "00:40", 1),
    ("pnadc_to_processing", "00:40", "01:10", 1),
    ("quality_gate-cba", "01:10", "01:11", 1),
    ("processing_to_consumer", "01:11", "01:18", 1),
]


@pytest.mark.parametrize(
    ("tasks", "prefect_s", "tasks_s"),
    [
        (WORK, 15.0, 75.0),  # the tasks: 85 s of work less the two subflows' 10 s
        (WORK[:-1], None, None),  # not every task recorded yet
        ([*WORK[:4], ("pnadc_to_processing", "00:40", "01:10", 2), *WORK[5:]], None, None),  # retried
    ],
)
def test_prefects_own_time_is_the_flow_run_less_our_work(
    tmp_path: Path, tasks: list[tuple[str, str, str, int]], prefect_s: float | None, tasks_s: float | None
) -> None:
    _recorded(tmp_path / "prefect.db", tasks)
    t0 = dt.datetime(2026, 12, 2, tzinfo=dt.UTC).timestamp()
    (mark,) = cli.flow_marks(tmp_path / "prefect.db", t0 - 1, t0 + 101, settle_s=0)
    assert mark["end"] - mark["start"] == 100
    assert mark["info"]["prefect_s"] == (pytest.approx(prefect_s) if prefect_s is not None else None)
    assert mark["info"]["tasks_s"] == (pytest.approx(tasks_s) if tasks_s is not None else None)
    assert "publish" in mark["info"]["work"] and (mark["info"]["work_s"] == 85 or prefect_s is None)


def _sent_ahead(lake: Path, at: tuple[float, float] | None) -> Path:
    """A raw manifest saying when the stream's query was sent ahead and answered (None: it was not)."""
    unit = lake / "raw" / "pnadc" / f"ingestion_date={DATE}"
    unit.mkdir(parents=True)
    stamp = [dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds") for t in at or ()]
    times = dict(zip(("sent_at", "answered_at"), stamp, strict=True)) if at else None
    manifest = {"run_id": "r1", "files": [], "records": 0, "query_sent_ahead": times}
    (unit / "_manifest.json").write_text(json.dumps(manifest))
    return lake


@pytest.mark.parametrize(
    ("ahead", "tasks_s", "prefect_s", "answer_s"),
    [
        # Sent 0.5 s before the flow run began, answered 3 s into it: the server's answer is the stream's
        # work, before and inside the flow run (inside it Prefect had only land_ibge's 1-4 s as ours).
        ((-0.5, 3.0), 76.5, 14.0, 3.5),
        (None, 75.0, 15.0, 0.0),  # the stream sent its own query, in its task
        ((-5.0, -2.0), 75.0, 15.0, 0.0),  # before this command started: not this command's query
    ],
)
def test_the_answer_to_a_query_sent_ahead_is_the_stream_s_work(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ahead: tuple[float, float] | None,
    tasks_s: float,
    prefect_s: float,
    answer_s: float,
) -> None:
    monkeypatch.setenv("VAMOSJUNTOS_RAW_ROOT", str(tmp_path / "the harness's own"))  # not the run's lake
    _recorded(tmp_path / "prefect.db", WORK)
    t0 = dt.datetime(2026, 12, 2, tzinfo=dt.UTC).timestamp()
    lake = _sent_ahead(tmp_path / "lake", (t0 + ahead[0], t0 + ahead[1]) if ahead else None)
    (mark,) = cli.flow_marks(tmp_path / "prefect.db", t0 - 1, t0 + 101, settle_s=0, lake=lake)
    assert mark["info"]["tasks_s"] == pytest.approx(tasks_s)
    assert mark["info"]["prefect_s"] == pytest.approx(prefect_s)
    assert mark["info"]["sent_ahead_s"] == pytest.approx(answer_s)
    assert mark["info"]["work_s"] + mark["info"]["prefect_s"] == pytest.approx(100)


def test_the_run_s_answers_are_read_from_its_lake_not_the_harness_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path / "lake"
    stored = [Answer(1, "Average income?", 2150.5, 10), Answer(4, "State with the most?", "Bahia", 7)]
    store(cli._run_lake(lake), stored, {"flow_run_id": "r1"})
    monkeypatch.setenv("VAMOSJUNTOS_CONSUMER_ROOT", str(tmp_path / "the harness's own"))  # not the run's lake
    assert cli.answers(str(lake)) == [
        {"id": 1, "answer": 2150.5, "rows": 10},
        {"id": 4, "answer": "Bahia", "rows": 7},
    ]


def test_work_spans_that_overlap_are_counted_once() -> None:
    assert cli._covered([(5.0, 6.0), (0.0, 2.0), (1.0, 3.0), (1.5, 2.5)]) == 4.0
    assert cli._covered([]) == 0.0


def test_a_failing_command_reports_how_far_it_got(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError) as failed:
        run_command(
            ["python3", "-c", "import sys; print('boom: MemoryError'); sys.exit(3)"],
            tmp_path,
            task="cli",
            label="x",
            size=1,
        )
    assert "exited with 3" in str(failed.value) and "boom: MemoryError" in str(failed.value)
    assert failed.value.wall_s > 0


def test_no_flow_run_in_the_window_leaves_the_command_whole(tmp_path: Path) -> None:
    assert cli.flow_marks(tmp_path / "missing.db", 0, 1) == []
    run = run_command(["python3", "-c", "pass"], tmp_path, task="cli", label="x", size=1)
    assert [s.name for s in run.stages] == ["whole command"]


def test_a_terminated_harness_stops_its_contestant_tree(tmp_path: Path) -> None:
    """SIGTERM to the harness (as `timeout` or a CI job's cancel sends it) stops the contestant and its
    children instead of leaving them running."""
    pids = tmp_path / "pids"
    contestant = (
        "import os, subprocess, time; c = subprocess.Popen(['sleep', '300']); "
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{c.pid}}'); time.sleep(300)"
    )
    harness = (
        "import sys; from pathlib import Path; from benchmarks.__main__ import stop_on_sigterm; "
        "from benchmarks.measure import run_command; stop_on_sigterm(); "
        f"run_command([sys.executable, '-c', {contestant!r}], Path({str(tmp_path)!r}), "
        "task='x', label='x', size=1)"
    )
    proc = subprocess.Popen([sys.executable, "-c", harness], cwd=ROOT)
    deadline = time.monotonic() + 60
    while not pids.exists() or len(pids.read_text().split()) < 2:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    tree = [psutil.Process(int(pid)) for pid in pids.read_text().split()]

    proc.send_signal(signal.SIGTERM)

    try:
        assert proc.wait(30) == 128 + signal.SIGTERM
        _, alive = psutil.wait_procs(tree, timeout=10)
        assert not alive, f"still running: {alive}"
    finally:  # a failing run of this test leaves nothing behind either
        for p in tree:
            with contextlib.suppress(psutil.Error):
                p.kill()


def test_a_stopped_benchmark_run_keeps_what_it_measured(tmp_path: Path) -> None:
    """A run stopped midway (SIGTERM: a cancelled job, a machine gone slow) saves the runs it finished, for
    `report --results` to render or a reader to read, instead of losing them with the process."""
    results, log = tmp_path / "results.json", tmp_path / "run.log"
    cmd = [sys.executable, "-m", "benchmarks", "run", "--sections", "extraction", "--extract-sizes", "2k,3k"]
    cmd += ["--profile-size", "3k", "--repeat", "3", "--work-dir", str(tmp_path), "--results", str(results)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while "rep 1:" not in log.read_text():  # one contestant measured
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-2000:]
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    saved = json.loads(results.read_text())
    assert saved["runs"] and saved["runs"][0]["size"] == 2_000 and saved["runs"][0]["wall_s"] > 0
    assert "what was measured is in" in log.read_text()
