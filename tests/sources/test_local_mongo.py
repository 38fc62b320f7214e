"""The embedded SecantusDB's stop (flows/sources/local_mongo.py): its own shutdown, woken early, keeps what it
stored. (Its start, its data folder's lock and orphans: tests/test_killed_run.py.)"""

from __future__ import annotations

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
def test_the_embedded_server_stops_after_the_stream_and_keeps_its_data(tmp_path: Path) -> None:
    """`stop_after_stream` ends the embedded server inside its context (the run's Spark steps get its
    memory), says how much it held, and leaving the context after it is no error; the next run's server
    finds the seeded collection and does not seed again."""
    folder = tmp_path / "mongo"
    with embedded_mongo(folder, "ibge", "pnadc20203", 500, 7) as server:
        said = stop_after_stream(server)
        assert server.proc is not None and server.proc.returncode == 0
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    held = re.fullmatch(
        r"The embedded MongoDB stopped after the stream: the ([\d,]+) MB it held are free "
        r"for the Spark steps\.",
        said,
    )
    assert held is not None and int(held[1].replace(",", "")) > 0, said
    with embedded_mongo(folder, "ibge", "pnadc20203", 99, 8) as again, MongoClient(again.uri) as client:
        assert client.ibge.pnadc20203.count_documents({}) == 500
    assert stop_after_stream(again) == (
        "The embedded MongoDB stopped after the stream: its memory is free for the Spark steps."
    )  # a server already stopped: nothing held, nothing to stop
