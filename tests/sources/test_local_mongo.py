"""The embedded SecantusDB's stop (flows/sources/local_mongo.py): its own shutdown, woken early, keeps what it
stored. (Its start, its data folder's lock and orphans: tests/test_killed_run.py.)"""

from __future__ import annotations

import logging
import os
import re
import socket
from pathlib import Path

import pytest
from pymongo import MongoClient

from flows.sources.local_mongo import SecantusProcess, embedded_mongo, stop_after_stream


@pytest.mark.integration
def test_a_stopped_server_shut_itself_down_and_kept_its_writes(tmp_path: Path) -> None:
    """The stop connects to the port while the server shuts down (to wake its accept thread); the server
    still ends by its own SIGTERM handler (exit code 0, not a kill), its port is free, and every stop and
    start in turn finds what the runs before wrote."""
    folder = tmp_path / "mongo"
    for round_ in range(3):
        server = SecantusProcess(folder).start()
        with MongoClient(server.uri) as client:
            collection = client.ibge.pnadc20203
            assert collection.count_documents({}) == 100 * round_
            collection.insert_many([{"round": round_, "k": k} for k in range(100)])
        server.stop()
        assert server.proc is not None and server.proc.returncode == 0
        with pytest.raises(ConnectionRefusedError):  # nothing listens on its port any more
            socket.create_connection(("127.0.0.1", server.port), timeout=5).close()


@pytest.mark.integration
def test_the_embedded_server_stops_after_the_stream_and_keeps_its_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`stop_after_stream` ends the embedded server inside its context (the run's Spark steps get its
    memory), logs how much it held, and leaving the context after it is no error; the next run's server
    finds the seeded collection and does not seed again, and says so when it was asked for another number
    of documents (a run's `--rows`), not when asked for as many."""
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
    records = [r for r in caplog.records if r.name == "test-run"]
    assert [r.levelno for r in records] == [logging.INFO, logging.INFO, logging.WARNING, logging.INFO]
    seeded, first, kept, second = [r.getMessage() for r in records]
    assert seeded == f"Seeded the embedded MongoDB ({folder}) with 500 generated documents"
    assert kept == (
        f"The embedded MongoDB ({folder}) already holds 500 documents, so it was not seeded with 99: it "
        "seeds an empty collection only. For a run on 99 generated documents, use another lake folder "
        "(VAMOSJUNTOS_LAKE_ROOT)."
    )
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
