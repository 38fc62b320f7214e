"""Resuming from checkpoints: a server or a process killed at any moment, damaged parts or checkpoints."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from flows.errors import SourceUnavailable
from flows.lake import Lake
from flows.layout import raw_pnadc
from flows.settings import Settings
from flows.sources.local_mongo import SecantusProcess
from flows.sources.mongo import CHECKPOINTS, extract_pnadc
from tests.sources.mongo.support import OnGetMore, assert_exactly_the_source, mongo_settings, run_worker
from tests.support.sources import DATE, source_ids


def test_server_killed_mid_stream_then_restarted_resumes_without_loss_or_duplicates(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(5_000)
    settings = mongo_settings(fast, server, mongo_batch_size=500, mongo_reconnects=1)
    lake = Lake(settings)
    # Killed as the cursor asks for its fifth batch of 500 (the reader drains the cursor at the server's
    # pace, whatever the parts written so far).
    hook = OnGetMore(4, lambda: server.stop(kill=True))
    broke = r"broke after (\d+) documents in (\d+) checkpointed parts.*resume"
    with pytest.raises(SourceUnavailable, match=broke) as failure:
        extract_pnadc(settings, lake, DATE, client=MongoClient(server.uri, event_listeners=[hook]))
    # The batches read before the kill are still written, as checkpointed parts.
    done, parts = map(int, re.search(broke, str(failure.value)).groups())  # type: ignore[union-attr]
    assert done == 2_000 and parts * 500 == done
    assert lake.manifest("raw", raw_pnadc(DATE)) is None  # nothing visible
    [crashed_run] = lake.runs("raw", raw_pnadc(DATE))

    server.start()  # same port, same data
    result = extract_pnadc(settings, lake, DATE)
    ids = source_ids(server.uri)
    assert result.resumed_from == str(ids[done - 1])
    assert result.manifest["run_id"] == crashed_run  # the same run folder, completed
    assert result.manifest["resumed_after"] == str(ids[done - 1])
    assert result.manifest["records"] == 5_000 and len(result.manifest["files"]) == 10
    assert result.manifest["ids_ascending"] is True  # the parts before the kill vouched for theirs
    assert_exactly_the_source(lake, server.uri)


def test_a_process_killed_after_its_last_part_and_before_its_manifest_is_invisible_then_committed(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(2_500)
    settings = mongo_settings(fast, server, mongo_batch_size=500)
    lake = Lake(settings)
    worker = run_worker(settings, kill_after_part=4)  # part 4 is the last of 5
    assert worker.wait(timeout=60) == -9, worker.stderr.read() if worker.stderr else ""

    unit = raw_pnadc(DATE)
    [run_id] = lake.runs("raw", unit)
    run = Path(lake.path("raw", unit, f"run={run_id}"))
    assert sorted(p.name for p in run.glob("part-*")) == [f"part-{i:05d}.jsonl.gz" for i in range(5)]
    assert lake.manifest("raw", unit) is None and lake.partitions("raw", "pnadc") == []  # invisible

    result = extract_pnadc(settings, lake, DATE)
    assert result.resumed_from == str(source_ids(server.uri)[-1])  # nothing left to read: just commit
    assert result.manifest["run_id"] == run_id and result.manifest["records"] == 2_500
    assert_exactly_the_source(lake, server.uri)


def test_a_process_killed_at_any_moment_resumes_exactly_once(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(30_000)
    settings = mongo_settings(fast, server, mongo_batch_size=500)
    lake = Lake(settings)
    worker = run_worker(settings)
    unit_path = Path(lake.path("raw", raw_pnadc(DATE)))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and worker.poll() is None:
        if len(list(unit_path.glob(f"run=*/{CHECKPOINTS}/*.json"))) >= 8:
            worker.kill()  # SIGKILL wherever it is: mid-page, mid-write, mid-checkpoint
            break
        time.sleep(0.005)
    assert worker.wait(timeout=30) == -9, "the worker finished before it could be killed"
    assert lake.manifest("raw", raw_pnadc(DATE)) is None

    result = extract_pnadc(settings, lake, DATE)
    assert result.resumed_from is not None
    assert result.manifest["records"] == result.manifest["source_count"] == 30_000
    assert_exactly_the_source(lake, server.uri)
    run = Path(lake.committed_run_path("raw", raw_pnadc(DATE)))
    assert len(list(run.glob("part-*"))) == len(result.manifest["files"]) == 60  # no stray part left


def _killed_after_two_parts(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> tuple[SecantusProcess, Settings, Lake, str, Path]:
    """An extraction of 2,500 documents in parts of 500, killed after its second part: the server, the
    settings, the lake, the run's id and its folder (two checkpointed parts)."""
    server = seeded(2_500)
    settings = mongo_settings(fast, server, mongo_batch_size=500)
    lake = Lake(settings)
    assert run_worker(settings, kill_after_part=2).wait(timeout=60) == -9
    [run_id] = lake.runs("raw", raw_pnadc(DATE))
    return server, settings, lake, run_id, Path(lake.path("raw", raw_pnadc(DATE), f"run={run_id}"))


@pytest.mark.parametrize(
    ("damage", "trusted_parts"),
    [
        ({"part-00002.jsonl.gz": b"garbage"}, 2),  # a part its checkpoint vouched for, changed since
        ({f"{CHECKPOINTS}/00001.json": b'{"file": "part-0'}, 1),  # a torn checkpoint
        ({f"{CHECKPOINTS}/00000.json": b"{}"}, 0),  # a checkpoint that names no part: start over
        ({f"{CHECKPOINTS}/00001.json": b"[]"}, 1),  # JSON, but not a checkpoint's object
    ],
    ids=["damaged-part", "torn-checkpoint", "empty-checkpoint", "not-an-object"],
)
def test_damaged_parts_or_checkpoints_are_not_trusted_on_resume(
    fast: Callable[..., Settings],
    seeded: Callable[[int], SecantusProcess],
    damage: dict[str, bytes],
    trusted_parts: int,
) -> None:
    server, settings, lake, run_id, run = _killed_after_two_parts(fast, seeded)
    for name, body in damage.items():
        (run / name).write_bytes(body)

    result = extract_pnadc(settings, lake, DATE)
    ids = source_ids(server.uri)
    expected = str(ids[trusted_parts * 500 - 1]) if trusted_parts else None
    assert result.resumed_from == expected
    assert result.manifest["run_id"] == run_id if trusted_parts else result.manifest["run_id"] != run_id
    assert result.manifest["records"] == 2_500
    assert_exactly_the_source(lake, server.uri)


def _unvouched(checkpoints: list[dict[str, Any]]) -> None:
    del checkpoints[0]["ascending"]  # as written before checkpoints recorded it


def _not_ascending(checkpoints: list[dict[str, Any]]) -> None:
    checkpoints[0]["ascending"] = False


@pytest.mark.parametrize(
    "change",
    [_unvouched, _not_ascending],
    ids=["checkpoint-written-before-the-claim", "checkpoint-not-ascending"],
)
def test_a_resumed_run_claims_ascending_ids_only_if_its_checkpoints_prove_them(
    fast: Callable[..., Settings],
    seeded: Callable[[int], SecantusProcess],
    change: Callable[[list[dict[str, Any]]], None],
) -> None:
    server, settings, lake, run_id, run = _killed_after_two_parts(fast, seeded)
    files = [run / CHECKPOINTS / f"0000{i}.json" for i in (0, 1)]
    checkpoints = [json.loads(f.read_text()) for f in files]
    assert [cp["ascending"] for cp in checkpoints] == [True, True]
    change(checkpoints)
    for f, cp in zip(files, checkpoints, strict=True):
        f.write_text(json.dumps(cp))

    result = extract_pnadc(settings, lake, DATE)
    assert result.manifest["run_id"] == run_id and result.resumed_from is not None  # resumed, not restarted
    assert result.manifest["ids_ascending"] is False
    assert_exactly_the_source(lake, server.uri)


def test_a_part_that_begins_before_the_one_before_ends_is_not_trusted_on_resume(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    # Parts of two interrupted attempts, the source changed between them, would overlap: each part ascends,
    # the second begins before the first ends. The resumed run trusts the first and rewrites the rest.
    server, settings, lake, run_id, run = _killed_after_two_parts(fast, seeded)
    second = run / CHECKPOINTS / "00001.json"
    checkpoint = json.loads(second.read_text())
    checkpoint["first_id"] = json.loads((run / CHECKPOINTS / "00000.json").read_text())["last_id"]
    second.write_text(json.dumps(checkpoint))

    result = extract_pnadc(settings, lake, DATE)
    assert result.manifest["run_id"] == run_id and result.resumed_from == str(source_ids(server.uri)[499])
    assert result.manifest["ids_ascending"] is True  # what it kept and what it wrote again both ascend
    assert_exactly_the_source(lake, server.uri)
