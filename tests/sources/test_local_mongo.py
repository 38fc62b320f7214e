"""SecantusDB's stop (flows/sources/local_mongo.py): its own shutdown, woken early, keeps what it stored; a
start interrupted stops it. (Its start, its data folder's lock and orphans: tests/test_killed_run.py.)"""

from __future__ import annotations

import socket
import time
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


@pytest.mark.integration
def test_a_start_interrupted_while_the_server_starts_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Ctrl-C or a signal while the server starts (the warm-up of `vamosjuntos spark-server` stopped over its
    time, under load): `with SecantusProcess(...)` never reaches its exit, so the start stops the server,
    which would otherwise write into a folder its caller is removing (seen: the warm-up's folder left)."""
    server = SecantusProcess(tmp_path / "mongo")
    listened = SecantusProcess._listens

    def interrupted_once_it_listens(self: SecantusProcess) -> bool:
        if listened(self):
            raise KeyboardInterrupt  # as the signal's handler raises it between two polls
        return False

    monkeypatch.setattr(SecantusProcess, "_listens", interrupted_once_it_listens)
    request.addfinalizer(server.stop)  # a start that failed to stop it leaves no server behind the test
    with pytest.raises(KeyboardInterrupt), server:
        pytest.fail("the start returned")
    assert server.proc is not None and server.proc.poll() is not None  # stopped, not left running
    assert not server.running
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # its port frees a moment after it exits
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=0.2).close()
        except OSError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("something still listens on its port")
