"""SecantusDB's stop (flows/sources/local_mongo.py): its own shutdown, woken early, keeps what it stored. (Its
start, its data folder's lock and orphans: tests/test_killed_run.py.)"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pymongo import MongoClient

from flows.sources.local_mongo import SecantusProcess


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
