"""Batches read ahead by a thread (flows/sources/mongo/prefetch.py): in order, all of them, never waiting
for the caller, the backlog bounded on disk, errors in order, nothing left open when the caller stops."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

import pytest

from flows.sources.mongo import read_ahead


def _counted(n: int, log: list[int], fail_at: int | None = None) -> Iterator[bytes]:
    for i in range(n):
        if i == fail_at:
            raise ConnectionError(f"dropped at {i}")
        log.append(i)
        yield str(i).encode()


def test_batches_come_out_in_order_and_all_of_them() -> None:
    log: list[int] = []
    assert list(read_ahead(_counted(50, log), depth=3)) == [str(i).encode() for i in range(50)]


@pytest.fixture
def spill_files(monkeypatch: pytest.MonkeyPatch) -> list[IO[bytes]]:
    """The spill files read_ahead creates: counting the process's open fds would also count the other
    threads' (Prefect's log worker, httpx pools), which open and close files at any time."""
    created: list[IO[bytes]] = []

    def recorded(*args: Any, **kwargs: Any) -> IO[bytes]:
        file = tempfile.TemporaryFile(*args, **kwargs)  # noqa: SIM115 (closed by the code under test)
        created.append(file)
        return file

    # Only the module under test sees the recording: other threads' temporary files stay out of it.
    monkeypatch.setattr("flows.sources.mongo.prefetch.tempfile", SimpleNamespace(TemporaryFile=recorded))
    return created


def _eventually(condition: Callable[[], bool], within_s: float = 60.0) -> None:
    """Wait for the reader thread to get somewhere: polled, so a loaded machine only makes it slower."""
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "the reader thread did not get there in time"
        time.sleep(0.01)


def test_the_reader_never_waits_for_the_caller_and_holds_at_most_depth_batches_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spill_files: list[IO[bytes]]
) -> None:
    # The server is read as fast as it sends (so the count after the stream starts early); what the
    # caller has not taken yet waits on disk, beyond `depth` batches in memory, in files without a name.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr("flows.sources.mongo.prefetch._SEGMENT_BYTES", 50)  # several spill files
    log: list[int] = []
    reader = read_ahead(_counted(100, log), depth=2)
    assert next(reader) == b"0"
    _eventually(lambda: len(log) == 100)  # the thread reads the whole source without the caller
    assert len(spill_files) > 1 and not spill_files[-1].closed  # all read: the backlog is in open files
    assert os.listdir(tmp_path) == []  # ... that have no name: a killed process leaves nothing behind
    assert list(reader) == [str(i).encode() for i in range(1, 100)]  # in order, each batch once
    assert all(f.closed for f in spill_files)


def test_the_backlog_on_disk_is_bounded_then_the_reader_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("flows.sources.mongo.prefetch.SPILL_MAX_BYTES", 20)  # ten 2-byte batches
    log: list[int] = []
    reader = read_ahead((f"{i:02d}".encode() for i in range(60) if not log.append(i)), depth=2)
    assert next(reader) == b"00"
    # handed out 1, in memory 2, on disk 10 (one of them waiting for room): never the whole source.
    _eventually(lambda: len(log) >= 13)
    time.sleep(0.3)  # room for a reader that does not wait to read on
    # 14 when the caller's next() took batch 0 from memory before the reader had queued batch 2: then
    # batch 2 also stays in memory, and one more batch fits on disk. Never more than that.
    assert 13 <= len(log) <= 14
    assert list(reader) == [f"{i:02d}".encode() for i in range(1, 60)]


def test_an_error_in_the_reader_comes_after_the_batches_read_before_it() -> None:
    log: list[int] = []
    got: list[bytes] = []
    with pytest.raises(ConnectionError, match="dropped at 7"):
        for batch in read_ahead(_counted(20, log, fail_at=7), depth=2):
            got.append(batch)
    assert got == [str(i).encode() for i in range(7)]


def test_closing_early_stops_the_reader_thread_and_closes_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spill_files: list[IO[bytes]]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    # Small segments: several full ones are still queued when the caller leaves, and must be closed too.
    monkeypatch.setattr("flows.sources.mongo.prefetch._SEGMENT_BYTES", 50)
    log: list[int] = []
    before_threads = {t.ident for t in threading.enumerate()}
    reader = read_ahead(_slow(10_000, log), depth=2)
    next(reader)
    _eventually(lambda: len(spill_files) > 2)  # some segments spilled
    reader.close()

    def stopped() -> bool:
        new = [t for t in threading.enumerate() if t.ident not in before_threads]
        return not [t for t in new if t.name == "mongo-read-ahead"]

    _eventually(stopped)
    assert len(log) < 10_000
    assert all(f.closed for f in spill_files)
    assert os.listdir(tmp_path) == []


def _slow(n: int, log: list[int]) -> Iterator[bytes]:
    for i in range(n):
        time.sleep(0.001)
        log.append(i)
        yield str(i).encode()
