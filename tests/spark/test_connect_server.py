"""Local steps on a running Spark Connect server (`vamosjuntos spark-server`, VAMOSJUNTOS_SPARK_REMOTE).

The server is the real one, started by the real command; the steps reach it over gRPC from processes that
cannot start a JVM of their own, and write what a run's own JVM writes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from flows import layout
from flows.errors import ConfigurationError, SourceUnavailable
from flows.lake import Lake
from flows.services.transform import transform
from flows.settings import Settings
from flows.sources.local_mongo import free_port
from flows.spark import server_warm_up
from flows.spark import session as session_module
from flows.spark.connect_server import (
    REMOTE_VARIABLE,
    _warm_up,
    export_line,
    printed_url,
    server_command,
    wait_until_listening,
)
from flows.spark.jvm import LOCAL_JVM_OPTIONS
from flows.spark.server_warm_up import WARM_UP_ROUNDS, WarmUpFailed, _last_lines, warm_up
from flows.spark.session import is_remote_session, spark_session
from tests.spark.test_steps import DATE, MALFORMED, land_ibge_snapshot

ROOT = Path(__file__).resolve().parents[2]
SERVER_COMMAND = [sys.executable, "-m", "flows.cli", "spark-server"]
SERVER_ENV = {"VAMOSJUNTOS_SPARK_MASTER": "local[2]", "VAMOSJUNTOS_SPARK_DRIVER_MEMORY": "1g"}


@contextmanager
def _server(log: Path, warm_up_rows: int = 0) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`vamosjuntos spark-server` on a free port, as a user starts it: the URL it prints (with its token)."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*SERVER_COMMAND, f"--port={port}", f"--warm-up-rows={warm_up_rows}"],
            env={**os.environ, **SERVER_ENV},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_listening(proc, "127.0.0.1", port, 300)
        deadline = time.monotonic() + 300  # its warm-up first
        while not (url := printed_url(log.read_text())):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-2000:]
            time.sleep(0.2)
        yield url, proc
    finally:
        if proc.poll() is None:
            jvms = psutil.Process(proc.pid).children(recursive=True)
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                for leftover in [proc, *jvms]:
                    with suppress(Exception):
                        leftover.kill()


WARM_UP_ROWS = 300  # the tests' server warms up as a user's does, on fewer documents


@pytest.fixture(scope="module")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spark-server") / "server.log"


@pytest.fixture(scope="module")
def connect_server(server_log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    with _server(server_log, WARM_UP_ROWS) as running:
        yield running


def test_the_server_warms_up_before_it_says_it_is_ready(
    connect_server: tuple[str, Any], server_log: Path
) -> None:
    said = server_log.read_text()
    warming = said.index(f"warming it up: a run's steps, {WARM_UP_ROUNDS} rounds on {WARM_UP_ROWS}")
    warmed = said.index("Warmed up in ")
    assert warming < warmed < said.index("Spark Connect server ready on")
    assert "warm-up failed" not in said


def test_the_warm_up_runs_the_steps_on_the_server_in_a_folder_of_its_own(
    connect_server: tuple[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote, _proc = connect_server
    # A user's settings in the environment the server was started from: none may reach the warm-up.
    user = tmp_path / "user"
    monkeypatch.setenv("VAMOSJUNTOS_LAKE_ROOT", str(user / "lake"))
    monkeypatch.setenv("VAMOSJUNTOS_RAW_ROOT", str(user / "raw"))
    monkeypatch.setenv("VAMOSJUNTOS_MONGO_URI", f"mongodb://127.0.0.1:{free_port()}/")  # nothing there
    monkeypatch.setenv("JAVA_HOME", "/nonexistent-java")  # the steps can only run on the server
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setattr(tempfile, "tempdir", None)  # the server makes the warm-up's folder: under it too

    warmed = warm_up(remote, rows=200, rounds=1)

    records = warmed.records
    assert records["raw/pnadc"] == 200
    assert records["processing/pnadc"] + records["processing/quarantine pnadc"] == 200
    assert records["processing/pnadc"] > 0 and records["consumer/publico_alvo"] > 0
    assert records["processing/ufs"] == 27
    assert not user.exists()
    assert list(temporary.iterdir()) == []  # its lake and MongoDB folder are gone


@pytest.mark.parametrize("stop", ["SIGTERM to the server", "Ctrl-C in its terminal"])
def test_a_server_stopped_during_its_warm_up_leaves_no_process_or_folder_behind(
    stop: str, tmp_path: Path
) -> None:
    log, temporary = tmp_path / "server.log", tmp_path / "tmp"
    temporary.mkdir()
    proc = _server_warming_up(log, TMPDIR=str(temporary))
    try:
        started = _descendants(proc.pid)
        assert any("flows.spark.server_warm_up" in _command(p) for p in started)
        if stop == "SIGTERM to the server":
            proc.send_signal(signal.SIGTERM)
        else:  # the terminal's SIGINT reaches its whole foreground group: the server and its JVM
            os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(90) == 0
        _gone, alive = psutil.wait_procs(started, timeout=60)
        assert not alive, [_command(p)[:200] for p in alive]
        said = log.read_text()
        assert "Spark Connect server stopped." in said and "ready on" not in said
        assert list(temporary.glob("vamosjuntos-warm-up-*")) == []  # its lake and MongoDB folder
    finally:
        if proc.poll() is None:
            proc.kill()


def _server_warming_up(log: Path, **env: str) -> subprocess.Popen[bytes]:
    """`vamosjuntos spark-server` started as from a terminal, once its warm-up has started its MongoDB."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*SERVER_COMMAND, f"--port={free_port()}", "--warm-up-rows=20000"],
            env={**os.environ, **SERVER_ENV, **env},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's process group of its own, as a shell gives a command
            preexec_fn=_interruptible,
        )
    deadline = time.monotonic() + 300
    while not any("secantus" in _command(p) for p in _descendants(proc.pid)):
        if time.monotonic() > deadline or proc.poll() is not None:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(log.read_text()[-2000:])
        time.sleep(0.2)
    return proc


def _interruptible() -> None:
    """Ctrl-C's SIGINT as a terminal's command gets it: a test run in the background (CI) has it ignored,
    and a child inherits that (Python then installs no KeyboardInterrupt for it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _descendants(pid: int) -> list[psutil.Process]:
    with suppress(psutil.Error):
        return psutil.Process(pid).children(recursive=True)
    return []


def _command(process: psutil.Process) -> str:
    with suppress(psutil.Error):  # one that ended meanwhile (a zombie has no command line to read)
        return " ".join(process.cmdline())
    return ""


def test_a_failed_warm_up_s_message_has_its_last_lines_without_stack_frames_or_the_token() -> None:
    remote = "sc://localhost:15002/;token=s3cr3t-Token_x"
    said = [
        "loading...", "", *[f"line {n}" for n in range(8)],
        "py4j.protocol.Py4JJavaError: an error occurred", "\tat org.apache.spark.Something(Something.java:1)",
        "error: the server at sc://localhost:15002/;token=s3cr3t-Token_x refused the session",
    ]  # fmt: skip
    text = _last_lines(said, remote)
    assert "s3cr3t-Token_x" not in text and "token=…" in text
    assert "org.apache.spark.Something" not in text and "line 3" not in text
    assert text.splitlines()[-1].startswith("error: the server at")
    assert _last_lines([], remote) == "(it said nothing)"


def _using(folder: Path) -> list[str]:
    """The command lines of the processes that name `folder` (the warm-up's SecantusDB names its data)."""
    found = []
    for process in psutil.process_iter():
        if str(folder) in (command := _command(process)):
            found.append(command[:200])
    return found


def test_a_warm_up_over_its_time_is_stopped_and_leaves_nothing_behind(
    connect_server: tuple[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote, _proc = connect_server
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setattr(tempfile, "tempdir", None)  # the server makes the warm-up's folder: under it too
    monkeypatch.setattr(server_warm_up, "WARM_UP_TIMEOUT_S", 4.0)  # it is seeding or extracting then

    with pytest.raises(WarmUpFailed, match="it took over 4 s: stopped") as failed:
        warm_up(remote, rows=20_000, rounds=2)

    assert remote.partition(";token=")[2] not in str(failed.value)
    deadline = time.monotonic() + 30
    while _using(temporary) and time.monotonic() < deadline:  # SecantusDB stops as the child leaves
        time.sleep(0.2)
    assert _using(temporary) == []
    assert list(temporary.glob("vamosjuntos-warm-up-*")) == []


def test_a_stopped_warm_up_s_folder_is_removed_again_until_what_still_writes_there_has_stopped(
    tmp_path: Path,
) -> None:
    """What the server still wrote into a stopped warm-up's folder, as a step's interrupted tasks ended: the
    folder is removed again until it stays gone (once, it was left: "Directory not empty")."""
    work = tmp_path / "vamosjuntos-warm-up-x"
    (work / "lake" / "processing").mkdir(parents=True)
    stop = time.monotonic() + 1.5

    def a_task_still_writing() -> None:
        part = 0
        while time.monotonic() < stop:
            table = work / "lake" / "processing" / "pnadc" / "_temporary"
            with suppress(OSError):  # the removal may take a folder from under it, as from Spark's
                table.mkdir(parents=True, exist_ok=True)  # Hadoop's writer makes its folders again
                (table / f"part-{part:05d}").write_bytes(b"x" * 1000)
            part += 1
            time.sleep(0.01)

    writer = threading.Thread(target=a_task_still_writing)
    writer.start()
    try:
        server_warm_up._remove(work)
    finally:
        writer.join()
    assert not work.exists()


@pytest.mark.parametrize("stopped_by", [KeyboardInterrupt, SourceUnavailable], ids=["a signal", "a failure"])
def test_a_warm_up_that_did_not_finish_releases_its_session_on_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stopped_by: type[BaseException]
) -> None:
    """Before the server removes the child's folder, the child releases its session there, which interrupts
    a step it left running (it would go on writing into the folder)."""
    said: list[str] = []

    def run_small(*_: Any, **__: Any) -> None:
        said.append("ran")
        raise stopped_by("stopped mid-step")

    monkeypatch.setattr(server_warm_up, "run_small", run_small)
    monkeypatch.setattr(session_module, "release_remote_sessions", lambda: said.append("released"))
    monkeypatch.setenv("VAMOSJUNTOS_SPARK_REMOTE", "sc://localhost:15002")
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with suppress(KeyboardInterrupt):
            server_warm_up.main(["--rows=10", "--rounds=1", f"--work={tmp_path}"])
    finally:
        for signum, handler in handlers.items():  # the child's own, not this test process's
            signal.signal(signum, handler)
    assert said == ["ran", "released"]


def test_a_server_whose_jvm_ends_during_its_warm_up_is_never_said_ready(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    proc = _server_warming_up(log)
    try:
        jvm = next(p for p in _descendants(proc.pid) if "SparkConnectServer" in _command(p))
        jvm.kill()  # as the kernel's out-of-memory killer would

        assert proc.wait(180) == 1
        said = log.read_text()
        assert "The warm-up failed" in said and "exited (code -9) during its warm-up" in said
        assert "ready on" not in said and "export VAMOSJUNTOS_SPARK_REMOTE" not in said
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_failed_warm_up_is_said_and_the_server_serves_anyway(capsys: pytest.CaptureFixture[str]) -> None:
    nowhere = f"sc://localhost:{free_port()}/;token=abc"
    with pytest.raises(WarmUpFailed, match="exit code 1") as failed:
        warm_up(nowhere, rows=10, rounds=1)
    assert "abc" not in str(failed.value) and "vamosjuntos spark-server" in str(failed.value)

    _warm_up(nowhere, 10)  # what `serve` calls: it says so and returns, to serve cold

    said = capsys.readouterr().err
    assert "The warm-up failed, so the first runs will pay Spark's warm-up themselves" in said
    assert "abc" not in said


def test_a_second_server_on_a_taken_port_is_refused_and_sigterm_stops_the_first_with_its_jvm(
    tmp_path: Path,
) -> None:
    with _server(tmp_path / "server.log") as (remote, proc):
        port = remote.rsplit(":", 1)[1].split("/", 1)[0]
        second = subprocess.run(
            [sys.executable, "-m", "flows.cli", "spark-server", "--port", port],
            env={**os.environ, **SERVER_ENV},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 1 and "already taken" in second.stderr
        jvms = psutil.Process(proc.pid).children(recursive=True)
        assert any("java" in p.name() for p in jvms)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0  # how a server is stopped: not a failure
        _gone, alive = psutil.wait_procs(jvms, timeout=60)
        assert not alive
        assert "Spark Connect server stopped." in (tmp_path / "server.log").read_text()


def _rows(lake: Lake, zone: layout.Zone, unit: str, drop: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    rows = []
    for path in lake.committed_files(zone, unit):
        table = pq.read_table(path)
        table = table.drop_columns([c for c in drop if c in table.column_names])
        folder = Path(path).parent.name  # a partition's value lives in its folder's name
        where = [("folder", folder)] if "=" in folder and not folder.startswith("run=") else []
        rows += [tuple(sorted([*r.items(), *where])) for r in table.to_pylist()]
    return sorted(rows, key=repr)


def _landed(mongo_server: Any, settings: Settings) -> Lake:
    from flows.sources.mongo import extract_pnadc

    lake = Lake(settings)
    land_ibge_snapshot(lake)
    extract_pnadc(settings, lake, DATE)
    return lake


def _step_in_a_process_without_java(lake_root: str, remote: str) -> Callable[[str], None]:
    """Runs a step as `python -m flows.spark.jobs.<step>` whose JAVA_HOME leads nowhere: it can only work
    through the server."""

    def run(step: str) -> None:
        env = {
            **os.environ,
            "VAMOSJUNTOS_SPARK_REMOTE": remote,
            "VAMOSJUNTOS_SPARK_SHUFFLE_PARTITIONS": "4",  # as the local session's (settings_for)
            "JAVA_HOME": "/nonexistent-java",
        }
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                f"flows.spark.jobs.{step}",
                "--ingestion-date",
                DATE,
                "--lake-root",
                lake_root,
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        said = [line for line in done.stderr.splitlines() if not line.lstrip().startswith("at ")]
        assert done.returncode == 0, "\n".join(said)[-3000:]  # without the JVM's stack frames

    return run


def test_the_steps_on_the_server_write_what_a_run_s_own_jvm_writes(
    spark: Any, connect_server: tuple[str, Any], mongo_server: Any, settings_for: Any, tmp_path: Path
) -> None:
    from pymongo import MongoClient

    from flows.sources.local_mongo_seed import seed

    remote, _ = connect_server
    assert not is_remote_session(spark)  # the local side really is this process's own JVM
    seed(mongo_server.uri, "ibge", "pnadc20203", 2_000, 5)
    coll = MongoClient(mongo_server.uri)["ibge"]["pnadc20203"]
    template = coll.find_one({}, {"_id": 0})
    coll.insert_many([{**template, **changes} for changes, _ in MALFORMED])
    local = settings_for(mongo_uri=mongo_server.uri, lake_root=str(tmp_path / "local"))
    served = settings_for(mongo_uri=mongo_server.uri, lake_root=str(tmp_path / "served"), spark_remote=remote)
    local_lake, served_lake = _landed(mongo_server, local), _landed(mongo_server, served)

    transform(local, local_lake, DATE)  # the steps on this process's JVM (the session fixture's)
    served_run = transform(
        served, served_lake, DATE, run_step=_step_in_a_process_without_java(str(tmp_path / "served"), remote)
    )

    assert served_run.gate.passed
    tables = [
        ("processing", layout.processing(layout.PNADC, DATE), ("source_file",)),
        ("processing", layout.quarantine(layout.PNADC, DATE), ("source_file",)),
        *[
            ("processing", layout.processing(t, DATE), ())
            for t in ("regioes", "ufs", "mesorregioes", "microrregioes")
        ],
        ("consumer", layout.consumer(layout.PUBLICO_ALVO), ()),
    ]
    for zone, unit, drop in tables:
        ours = _rows(served_lake, zone, unit, drop)
        assert ours == _rows(local_lake, zone, unit, drop), f"{zone}/{unit} differs"
        # As many files: the server's cores are asked, not guessed (flows/spark/io.py).
        assert len(served_lake.committed_files(zone, unit)) == len(local_lake.committed_files(zone, unit))
    assert len(_rows(served_lake, "processing", layout.quarantine(layout.PNADC, DATE))) == len(MALFORMED)
    assert served_lake.manifest("processing", layout.processing(layout.PNADC, DATE))["records"] == 2_000


SESSION_PROBE = """
import json, sys
from flows.settings import Settings
from flows.spark.session import is_remote_session, spark_session
from flows.spark.warmup import start_warm_up
settings = Settings(spark_remote=sys.argv[1], spark_shuffle_partitions=3)
session = spark_session(settings, "test")
print(json.dumps({
    "remote": is_remote_session(session),
    "zone": session.conf.get("spark.sql.session.timeZone"),
    "partitions": session.conf.get("spark.sql.shuffle.partitions"),
    "count": session.range(5).count(),
    "warm_up": start_warm_up(settings) is not None,
}))
"""


def test_a_session_on_the_server_is_a_connect_session_with_the_run_s_sql_settings(
    connect_server: tuple[str, Any],
) -> None:
    # In a process of its own: PySpark allows no Connect session beside the tests' own local one.
    remote, _ = connect_server
    done = subprocess.run(
        [sys.executable, "-c", SESSION_PROBE, remote],
        env={**os.environ, "JAVA_HOME": "/nonexistent-java"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    # Nothing to warm up in this process: the server's JVM is the warm one.
    assert found == {"remote": True, "zone": "UTC", "partitions": "3", "count": 5, "warm_up": False}


def test_no_server_at_the_address_is_a_clear_error_at_once_without_the_url_s_token() -> None:
    port = free_port()
    settings = Settings(spark_remote=f"sc://localhost:{port}/;token=s3cr3t-token")
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as failed:
        spark_session(settings, "test")
    assert time.monotonic() - started < 10  # PySpark's own client retries for minutes
    message = str(failed.value)
    assert f"localhost:{port}" in message and "vamosjuntos spark-server" in message
    assert "s3cr3t" not in message


def test_vamosjuntos_run_refuses_before_ingesting_when_the_server_is_not_there(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    env = {
        **os.environ,
        "VAMOSJUNTOS_SPARK_REMOTE": f"sc://127.0.0.1:{free_port()}",
        "VAMOSJUNTOS_LAKE_ROOT": str(lake),
    }
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--rows", "100"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "No Spark Connect server answers" in done.stderr
    assert not (lake / "raw").exists()


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"spark_remote": "localhost:15002/;token=s3cr3t"}, "must be a Spark Connect URL"),
        ({"spark_remote": "sc://127.0.0.1:15002/;token=s3cr3t"}, "spelled `localhost`"),
        ({"spark_remote": "sc://localhost/;token=s3cr3t", "spark_runner": "kubernetes"}, "is for local runs"),
        (
            {"spark_remote": "sc://localhost/;token=s3cr3t", "lake_root": "s3://bucket/lake"},
            "needs a local lake",
        ),
    ],
)
def test_a_spark_remote_the_run_cannot_use_is_refused_without_repeating_it(
    values: dict[str, str], says: str
) -> None:
    with pytest.raises(ValidationError, match=says) as refused:
        Settings(**values)
    assert "s3cr3t" not in str(refused.value)


def test_the_printed_line_pasted_in_a_shell_sets_what_a_run_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "sc://localhost:15099/;token=a-Token_with-dashes"
    line = export_line(url)
    script = f"{line} && env -0"
    shell = subprocess.run(["bash", "-c", script], env={"PATH": os.defpath}, capture_output=True, text=True)
    assert shell.returncode == 0, shell.stderr
    exported = dict(v.split("=", 1) for v in shell.stdout.split("\0") if v.startswith("VAMOSJUNTOS_"))
    assert exported.keys() == {REMOTE_VARIABLE}
    for name in [n for n in os.environ if n.startswith("VAMOSJUNTOS_")]:  # the settings see the line alone
        monkeypatch.delenv(name)
    for name, value in exported.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.spark_remote is not None and settings.spark_remote.get_secret_value() == url
    assert printed_url(f"Spark Connect server ready on 127.0.0.1:15099.\n  {line}\nCtrl-C stops it.") == url
    assert printed_url("Spark Connect server starting") is None


def test_the_server_gets_the_project_s_jvm_options_and_sql_settings() -> None:
    settings = Settings(spark_master="local[2]", spark_driver_memory="1g", spark_shuffle_partitions=3)
    command = server_command(settings, 15099)
    conf = dict(command[i + 1].split("=", 1) for i, a in enumerate(command) if a == "--conf")
    assert command[command.index("--master") + 1] == "local[2]"
    assert command[command.index("--driver-memory") + 1] == "1g"
    assert "-XX:-DontCompileHugeMethods" in conf["spark.driver.extraJavaOptions"]
    # a local JVM, with the local JVMs' options: the inlining limits among them (flows/spark/jvm.py)
    assert set(LOCAL_JVM_OPTIONS.split()) <= set(conf["spark.driver.extraJavaOptions"].split())
    assert conf["spark.sql.shuffle.partitions"] == "3" and conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.connect.grpc.binding.port"] == "15099"
    assert conf["spark.connect.grpc.binding.address"] == "127.0.0.1"  # loopback only
    with pytest.raises(ConfigurationError, match="local mode"):
        server_command(Settings(spark_master="k8s://https://example:443"))


def test_the_server_wants_its_token_shown_in_no_command_line_and_refuses_a_stale_one(
    connect_server: tuple[str, Any],
) -> None:
    remote, proc = connect_server
    token = remote.split("token=", 1)[1]
    for process in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
        with suppress(psutil.ZombieProcess):  # spark-submit's launcher, exited, never reaped by the JVM
            assert token not in " ".join(process.cmdline())
    wrong = SESSION_PROBE_COUNT_ONLY
    done = subprocess.run(
        [sys.executable, "-c", wrong, remote.replace(token, "not-the-token")],
        env={**os.environ, "JAVA_HOME": "/nonexistent-java"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # Refused at the check a run makes before ingesting, with what to do, and no token shown.
    assert done.returncode != 0 and "refused the token" in done.stderr
    assert token not in done.stderr


SESSION_PROBE_COUNT_ONLY = """
import sys
from flows.settings import Settings
from flows.spark.session import spark_session
print(spark_session(Settings(spark_remote=sys.argv[1]), "test").range(5).count())
"""
