"""The extraction's encoder processes: the bytes of an encoding in process, in order, and clear failures."""

from __future__ import annotations

import datetime as dt
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import bson
import psutil
import pytest
from bson import Decimal128, Int64, ObjectId
from bson.codec_options import DEFAULT_CODEC_OPTIONS, CodecOptions
from pymongo.errors import AutoReconnect

from flows.errors import WorkerFailed
from flows.generator import generate
from flows.sources.mongo import encoder_pool
from flows.sources.mongo.batches import encode_batch
from flows.sources.mongo.encoder_pool import EncoderPool, default_workers, usable_cpu_time, usable_cpus

OPTIONS: CodecOptions = DEFAULT_CODEC_OPTIONS  # type: ignore[type-arg]


def _batches() -> list[bytes]:
    """Raw batches of generated documents, uneven sizes, and other `_id` types at either end of the run."""
    docs = [doc for chunk in generate(2_000, 7) for doc in chunk]
    docs[3]["renda"] = math.nan
    docs[4]["uf"] = 'a "}, {" and a ": NaN'
    docs[5]["x"] = {"nested": [1, Decimal128("1.5"), dt.datetime(2020, 1, 1)]}
    odd = [{"_id": 7, "ano": 2020}, {"_id": "text", "ano": 2020}, {"_id": Int64(2**40)}]
    docs = odd[:2] + docs + odd[2:]
    sizes = [1, 50, 333, 700, 2, 500, 417]
    batches, start = [], 0
    for size in sizes:
        batches.append(b"".join(bson.encode(d) for d in docs[start : start + size]))
        start += size
    assert start == len(docs)
    return batches


@pytest.mark.parametrize("objectids_only", [True, False])
def test_the_workers_hand_back_the_batches_encoded_as_in_process_in_order(objectids_only: bool) -> None:
    batches = _batches()
    with EncoderPool(2, OPTIONS) as pool:
        got = list(pool.map(iter(batches), objectids_only))
        again = list(pool.map(batches[:3], objectids_only))  # a pool serves one stream after another
    want = [encode_batch(raw, OPTIONS, objectids_only) for raw in batches]
    assert got == want and again == want[:3]
    assert (sum(e.dropped for e in got) == 3) is objectids_only
    if objectids_only:  # the first batch held only an int `_id`: nothing left, one dropped
        assert (got[0].records, got[0].dropped, got[0].first_id) == (0, 1, None)
        assert type(got[1].first_id) is ObjectId
    else:
        assert got[0].first_id == 7 and got[-1].last_id == Int64(2**40)


def test_a_cut_batch_keeps_its_ids_and_lines() -> None:
    encoded = encode_batch(_batches()[3], OPTIONS, True)
    head, tail = encoded.split(123)
    assert (head.records, tail.records) == (123, encoded.records - 123)
    assert head.lines + tail.lines == encoded.lines and head.lines.count(b"\n") == 123
    docs = bson.decode_all(_batches()[3])
    assert (head.first_id, head.last_id, tail.first_id, tail.last_id) == (
        docs[0]["_id"], docs[122]["_id"], docs[123]["_id"], docs[-1]["_id"]
    )  # fmt: skip


def test_a_read_error_comes_after_the_batches_read_before_it() -> None:
    batches = _batches()

    def broken() -> Iterator[bytes]:
        yield from batches[:4]
        raise AutoReconnect("connection closed")

    got = []
    with EncoderPool(2, OPTIONS) as pool:
        with pytest.raises(AutoReconnect):
            for encoded in pool.map(broken(), True):
                got.append(encoded)
        assert got == [encode_batch(raw, OPTIONS, True) for raw in batches[:4]]
        # The stream reopened after the error is encoded from a clean start.
        assert list(pool.map(batches[4:], True)) == [encode_batch(raw, OPTIONS, True) for raw in batches[4:]]


def test_leaving_a_stream_early_drops_what_was_in_flight() -> None:
    batches = _batches()
    with EncoderPool(2, OPTIONS) as pool:
        stream = pool.map(batches, True)
        first = next(stream)
        stream.close()  # e.g. a page abandoned: the batches sent ahead must not leak into the next stream
        assert first == encode_batch(batches[0], OPTIONS, True)
        assert list(pool.map(batches[2:], True)) == [encode_batch(raw, OPTIONS, True) for raw in batches[2:]]


def test_a_batch_the_worker_cannot_decode_fails_with_the_worker_s_error() -> None:
    with EncoderPool(1, OPTIONS) as pool:
        failed = r"^encoding a MongoDB batch failed in encoder worker \d+: "
        with pytest.raises(WorkerFailed, match=failed) as err:
            list(pool.map([b"\x07\x00\x00\x00\x01"], True))
        # One line for the operator's summary; the worker's whole traceback as the exception's note.
        assert "\n" not in str(err.value) and "InvalidBSON" in str(err.value)
        assert "Traceback" in "".join(err.value.__notes__)
        with pytest.raises(WorkerFailed):  # a pool that failed once is not trusted again
            list(pool.map(_batches()[:1], True))


def test_a_killed_worker_is_a_clear_error_not_a_hang() -> None:
    with EncoderPool(2, OPTIONS) as pool:
        victim = pool._workers[1].proc
        victim.kill()
        victim.wait()
        killed = r"worker \(pid \d+\).*killed by signal 9 \(out of memory\?\).*Rerun"
        with pytest.raises(WorkerFailed, match=killed):
            list(pool.map(_batches(), True))


def test_workers_ignore_ctrl_c_and_leave_when_the_extraction_dies(tmp_path: Path) -> None:
    # The workers have their own process group, and ignore SIGINT sent to them anyway: the extraction decides.
    script = textwrap.dedent(
        """
        import sys, time
        from bson.codec_options import DEFAULT_CODEC_OPTIONS
        from flows.sources.mongo.encoder_pool import EncoderPool
        pool = EncoderPool(2, DEFAULT_CODEC_OPTIONS)
        list(pool.map([b"\\x05\\x00\\x00\\x00\\x00"] * 4, True))  # both answered: their handlers are set
        print(*(w.proc.pid for w in pool._workers), flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
        for pid in pids:
            os.kill(pid, signal.SIGINT)
        time.sleep(0.3)
        assert all(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids)
        parent.kill()  # no clean-up runs: the workers see their stdin close
        parent.wait()
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in pids)
    finally:
        parent.kill()


def test_closing_with_answers_in_flight_ends_the_workers_at_once() -> None:
    # A part write that fails leaves batches in flight: answers of several MB that no pipe can hold, the
    # workers blocked writing them. Closing must end them (EPIPE), not wait for them and then kill them.
    big = [encode_batch_input(5_000, seed) for seed in range(4)]
    pool = EncoderPool(2, OPTIONS)
    stream = pool.map(big, True)
    next(stream)
    procs = [w.proc for w in pool._workers]
    pool.close()
    assert [p.returncode for p in procs] == [0, 0]


def test_an_interrupt_while_an_answer_is_half_read_leaves_a_pool_that_is_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = EncoderPool(2, OPTIONS)
    procs = [w.proc for w in pool._workers]
    real = encoder_pool._Worker.result

    def interrupted(self: object) -> object:
        monkeypatch.setattr(encoder_pool._Worker, "result", real)
        raise KeyboardInterrupt  # Ctrl-C between two chunks of an answer

    monkeypatch.setattr(encoder_pool._Worker, "result", interrupted)
    with pytest.raises(KeyboardInterrupt):
        list(pool.map(_batches(), True))
    with pytest.raises(WorkerFailed, match="interrupted"):  # its pipes may be mid-message
        list(pool.map(_batches()[:1], True))
    pool.close()
    assert all(p.returncode is not None for p in procs)


def encode_batch_input(documents: int, seed: int) -> bytes:
    return b"".join(bson.encode(d) for chunk in generate(documents, seed) for d in chunk)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize(
    ("v2", "v1", "time", "cpus"),
    [
        ("100000 100000\n", None, 1.0, 1),
        ("150000 100000\n", None, 1.5, 1),
        ("200000 100000\n", None, 2.0, 2),
        ("50000 100000\n", None, 0.5, 1),  # half a CPU: one CPU's worth rounded up, no workers
        ("max 100000\n", None, None, None),
        (None, ("100000", "100000"), 1.0, 1),  # cgroup v1, as older Kubernetes nodes have it
        (None, ("150000", "100000"), 1.5, 1),
        (None, ("-1", "100000"), None, None),
        (None, None, None, None),
    ],
)
def test_a_cpu_quota_bounds_the_workers(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    v2: str | None,
    v1: tuple[str, str] | None,
    time: float | None,
    cpus: int | None,
) -> None:
    affinity = len(os.sched_getaffinity(0))
    for name, text in (("cpu.max", v2), ("quota", v1 and v1[0]), ("period", v1 and v1[1])):
        if text is not None:
            (tmp_path / name).write_text(text + "\n")
    monkeypatch.setattr(encoder_pool, "CPU_MAX", tmp_path / "cpu.max")
    monkeypatch.setattr(encoder_pool, "CFS_QUOTA", tmp_path / "quota")
    monkeypatch.setattr(encoder_pool, "CFS_PERIOD", tmp_path / "period")
    # The quota's time is kept, fraction and all (the benchmark's CPU budget); whole CPUs decide the workers.
    assert usable_cpu_time() == (min(time, affinity) if time is not None else affinity)
    want = min(cpus, affinity) if cpus is not None else affinity
    assert usable_cpus() == want
    assert default_workers() == (2 if want >= 2 else 0)


def test_without_an_affinity_call_every_cpu_counts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delattr(os, "sched_getaffinity")  # macOS
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(encoder_pool, "CPU_MAX", tmp_path / "absent")
    monkeypatch.setattr(encoder_pool, "CFS_QUOTA", tmp_path / "absent")
    assert usable_cpus() == 8 and default_workers() == 2
