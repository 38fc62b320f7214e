"""The run's embedded MongoDB (flows/sources/embedded_mongo.py): launched ahead and taken by the run, seeded
once, stopped after the stream, and never left running."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
from pymongo import MongoClient

from flows.sources.embedded_mongo import embedded_mongo, launch_ahead, stop_after_stream
from flows.sources.local_mongo_folder import lock_holder
from tests.support.processes import secantus_children

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_a_server_launched_ahead_is_the_one_the_run_takes(tmp_path: Path) -> None:
    """`launch_ahead` starts the server without waiting for it (once per folder, however often it is asked);
    `embedded_mongo` on that folder waits for that same process instead of starting another, seeds it, and
    stops it on leaving."""
    folder = tmp_path / "mongo"
    launch_ahead(folder)
    launch_ahead(folder)
    [launched] = secantus_children()
    with embedded_mongo(folder, "ibge", "pnadc20203", 50, 7) as server, MongoClient(server.uri) as client:
        assert server.proc is not None and server.proc.pid == launched.pid
        assert [p.pid for p in secantus_children()] == [launched.pid]
        assert client.ibge.pnadc20203.count_documents({}) == 50
    assert not launched.is_running()
    with embedded_mongo(folder, "ibge", "pnadc20203", 50, 7) as again:  # nothing launched ahead: its own
        assert again.proc is not None and again.proc.pid != launched.pid


@pytest.mark.integration
def test_a_server_launched_ahead_that_no_run_takes_ends_with_the_process(tmp_path: Path) -> None:
    """A command that fails before its flow run starts never takes the server it launched ahead: the server
    ends when the command's process does, and the data folder is free for the next run."""
    folder = tmp_path / "mongo"
    script = f"""
        from pathlib import Path
        import psutil
        from flows.sources.embedded_mongo import _launched, launch_ahead
        launch_ahead(Path({str(folder)!r}))
        [server] = _launched.values()
        server.wait_listening()  # its data folder locked: the stop below is what frees it
        print(*[p.pid for p in psutil.Process().children()], flush=True)
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAMOSJUNTOS_")}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    [pid] = [int(p) for p in done.stdout.split()]
    with pytest.raises(psutil.NoSuchProcess):
        psutil.Process(pid).cmdline()
    assert lock_holder(folder) is None


@pytest.mark.integration
def test_the_embedded_server_stops_after_the_stream_and_keeps_its_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`stop_after_stream` ends the embedded server inside its context (the run's Spark steps get its
    memory), logs how much it held, and leaving the context after it is no error; the next run's server
    finds the seeded collection and does not seed again, and says so when it was asked for other documents
    (a run's `--rows` or `--seed`), not when asked for the same ones."""
    folder, logger = tmp_path / "mongo", logging.getLogger("test-run")
    with caplog.at_level(logging.INFO, logger="test-run"):
        with embedded_mongo(folder, "ibge", "pnadc20203", 500, 7, logger) as server:
            stop_after_stream(server, logger)
            assert server.proc is not None and server.proc.returncode == 0
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
        with (
            embedded_mongo(folder, "ibge", "pnadc20203", 99, 8, logger) as again,
            MongoClient(again.uri) as client,
        ):
            assert client.ibge.pnadc20203.count_documents({}) == 500
        stop_after_stream(again, logger)  # stopped already, on leaving its context
        with embedded_mongo(folder, "ibge", "pnadc20203", 500, 7, logger):
            pass
        with embedded_mongo(folder, "ibge", "pnadc20203", 500, 9, logger):  # as many, of another seed
            pass
        with embedded_mongo(folder, "ibge", "pnadc20203", 500, 9, logger) as old, MongoClient(old.uri) as db:
            db.ibge.drop_collection("vamosjuntos_seeded_with")  # as a folder seeded before the record
        with embedded_mongo(folder, "ibge", "pnadc20203", 500, 9, logger):  # its count: as many, no seed
            pass
        with embedded_mongo(folder, "ibge", "pnadc20203", 499, 7, logger):
            pass
    records = [r for r in caplog.records if r.name == "test-run"]
    info, warning = logging.INFO, logging.WARNING
    assert [r.levelno for r in records] == [info, info, warning, info, warning, warning, warning]
    seeded, first, kept, second, other_seed, other_again, counted = [r.getMessage() for r in records]
    assert other_again == other_seed
    assert counted.startswith(f"The embedded MongoDB ({folder}) already holds 500 documents, so it was not ")
    assert "not seeded with 499 of seed 7:" in counted
    assert seeded == f"Seeded the embedded MongoDB ({folder}) with 500 generated documents"
    assert kept == (
        f"The embedded MongoDB ({folder}) was seeded with 500 documents of seed 7, so it was not seeded with "
        "99 of seed 8: it seeds an empty collection only. For a run on those, use another lake folder "
        "(VAMOSJUNTOS_LAKE_ROOT)."
    )
    assert other_seed.startswith(f"The embedded MongoDB ({folder}) was seeded with 500 documents of seed 7, ")
    assert "not seeded with 500 of seed 9:" in other_seed
    held = re.fullmatch(
        r"The embedded MongoDB stopped after the stream: the ([\d,]+) MB it held are free "
        r"for the Spark steps\.",
        first,
    )
    assert held is not None and int(held[1].replace(",", "")) > 0, first
    assert second == "The embedded MongoDB had already stopped before the Spark steps."


@pytest.mark.integration
def test_a_stop_that_fails_after_the_stream_is_a_warning_and_the_context_still_stops_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopping early only frees memory: when the stop fails (here SIGTERM is refused, as a process of
    another user's would refuse it) the run goes on with a warning, and the context's own stop ends it."""
    with (
        caplog.at_level(logging.INFO, logger="test-run"),
        embedded_mongo(tmp_path / "mongo", "ibge", "pnadc20203", 10, 7) as server,
    ):

        def refused(pgid: int, sig: int) -> None:
            raise PermissionError(1, "Operation not permitted")

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(os, "killpg", refused)
            stop_after_stream(server, logging.getLogger("test-run"))
        assert server.proc is not None and server.proc.poll() is None  # still serving
    assert server.proc.returncode == 0
    [warning] = [r for r in caplog.records if r.name == "test-run"]
    assert warning.levelno == logging.WARNING
    assert warning.getMessage().startswith("The embedded MongoDB did not stop after the stream (")
