"""The stream's query sent ahead (flows/sources/mongo/ahead.py), against a real SecantusDB: taken when it is
the stream's own query, closed and replaced when it is not, never sent to an embedded server not seeded."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from flows.lake import Lake
from flows.layout import raw_pnadc
from flows.settings import Settings
from flows.sources.local_mongo import SecantusProcess
from flows.sources.local_mongo_seed import SEEDED_WITH
from flows.sources.mongo import CHECKPOINTS, ahead, extract_pnadc
from tests.sources.mongo.support import assert_exactly_the_source, mongo_settings, run_worker
from tests.support.sources import DATE


@pytest.fixture(autouse=True)
def _nothing_left_sent() -> Iterator[None]:
    yield
    ahead.discard()


def _sent_and_answered(settings: Settings, embedded_uri: str | None = None) -> ahead.Sent:
    """The stream's query for `DATE`, sent ahead as `vamosjuntos run` sends it, once its thread has its first
    answer (or gave up)."""
    ahead.send_ahead(settings, DATE, False, embedded_uri)
    sent = ahead._sent
    assert sent is not None
    sent.wait()
    return sent


def _sent_at(manifest: dict[str, Any]) -> float:
    """When the batch's query was sent ahead (the raw manifest's `query_sent_ahead`)."""
    times = manifest["query_sent_ahead"]
    sent, answered = (dt.datetime.fromisoformat(times[k]).timestamp() for k in ("sent_at", "answered_at"))
    assert sent <= answered
    return sent


def _open_cursors(uri: str) -> int:
    """The cursors the server holds open (each holds its whole answer on SecantusDB)."""
    with MongoClient(uri) as client:
        return int(client.admin.command("serverStatus")["metrics"]["cursor"]["open"]["total"])


def test_the_stream_takes_the_query_sent_ahead(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess], caplog: pytest.LogCaptureFixture
) -> None:
    server = seeded(120)
    settings = mongo_settings(fast, server, mongo_batch_size=50)
    sent = _sent_and_answered(settings)
    assert sent.error is None and sent.query is not None and sent.query.after is None  # a first, full run
    assert server.uri not in repr(sent.query)  # the address, which may hold a password, stays out of logs
    before = time.time()
    lake = Lake(settings)
    with caplog.at_level("INFO"):
        manifest = extract_pnadc(settings, lake, DATE).manifest
    assert _sent_at(manifest) < before  # the batch was read by the cursor opened ahead
    assert "The stream's query was sent" in caplog.text
    assert manifest["records"] == 120 and manifest["mode"] == "full"
    assert_exactly_the_source(lake, server.uri)
    assert ahead._sent is None  # taken once


def test_a_resumed_run_takes_the_query_sent_after_its_last_checkpoint(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(90)
    settings = mongo_settings(fast, server, mongo_batch_size=20)
    worker = run_worker(settings, kill_after_part=2)  # killed once two parts are checkpointed
    worker.wait(timeout=120)
    assert worker.returncode != 0
    sent = _sent_and_answered(settings)
    assert sent.query is not None and sent.query.after is not None  # the second part's last `_id`
    lake = Lake(settings)
    manifest = extract_pnadc(settings, lake, DATE).manifest
    assert manifest["resumed_after"] == sent.query.after and _sent_at(manifest) < time.time()
    assert manifest["records"] == 90
    assert_exactly_the_source(lake, server.uri)


def test_an_unreadable_checkpoint_is_warned_about_by_the_run_not_by_the_command_s_planning(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess], caplog: pytest.LogCaptureFixture
) -> None:
    server = seeded(90)
    settings = mongo_settings(fast, server, mongo_batch_size=20)
    assert run_worker(settings, kill_after_part=2).wait(timeout=120) != 0
    lake = Lake(settings)
    [run_id] = lake.runs("raw", raw_pnadc(DATE))
    run = Path(lake.path("raw", raw_pnadc(DATE), f"run={run_id}"))
    checkpoint = run / CHECKPOINTS / "00000.json"
    checkpoint.unlink()
    checkpoint.mkdir()  # cannot be read (a directory): that run cannot be resumed
    with caplog.at_level(logging.WARNING):
        sent = _sent_and_answered(settings)
        manifest = extract_pnadc(settings, lake, DATE).manifest
    assert [r.getMessage() for r in caplog.records if "unreadable checkpoints" in r.getMessage()] == [
        f"Run {run_id} of raw/{raw_pnadc(DATE)} has unreadable checkpoints ([Errno 21] Is a directory: "
        f"'{checkpoint}'): not resuming it"
    ]
    assert sent.query is not None and sent.query.after is None  # the command planned a fresh run too
    assert manifest["resumed_after"] is None and manifest["records"] == 90
    assert manifest["query_sent_ahead"] is not None


def test_a_query_that_is_not_the_stream_s_is_closed_and_the_stream_sends_its_own(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(60)
    settings = mongo_settings(fast, server, mongo_batch_size=25)
    lake = Lake(settings)
    first = extract_pnadc(settings, lake, "2026-11-24").manifest  # the watermark the next run starts after
    sent = _sent_and_answered(settings)  # planned as an increment after that watermark
    assert sent.query is not None and sent.query.after == first["watermark_to"]
    # The run decides otherwise (a full refresh here; elsewhere a lake changed since the command planned).
    manifest = extract_pnadc(settings, lake, DATE, full_refresh=True).manifest
    assert manifest["query_sent_ahead"] is None
    assert manifest["records"] == 60 and manifest["mode"] == "full"
    assert_exactly_the_source(lake, server.uri)
    assert sent._client is None  # closed, its cursor with it


def test_another_batch_size_is_another_query(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(30)
    sent = _sent_and_answered(mongo_settings(fast, server, mongo_batch_size=7))
    settings = mongo_settings(fast, server, mongo_batch_size=8)
    manifest = extract_pnadc(settings, Lake(settings), DATE).manifest
    assert manifest["query_sent_ahead"] is None and manifest["records"] == 30
    assert sent._client is None


def test_a_query_sent_too_long_before_the_stream_is_sent_again(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that waited for its date's lock: its cursor may have been dropped by the server meanwhile."""
    server = seeded(20)
    settings = mongo_settings(fast, server)
    sent = _sent_and_answered(settings)
    monkeypatch.setattr(ahead, "MAX_AGE_S", 0.0)
    manifest = extract_pnadc(settings, Lake(settings), DATE).manifest
    assert manifest["query_sent_ahead"] is None and manifest["records"] == 20
    assert sent._client is None


def test_an_embedded_server_is_queried_ahead_only_once_seeded(
    fast: Callable[..., Settings], mongo_server: SecantusProcess
) -> None:
    """Its run seeds an empty collection before the stream: a query sent before would see none of it."""
    settings = fast()  # no MongoDB named: the embedded server's address comes from its launch
    client: MongoClient[dict[str, object]] = MongoClient(mongo_server.uri)
    client["ibge"]["pnadc20203"].insert_one({"x": 1})  # documents, but not seeded by a run
    sent = _sent_and_answered(settings, mongo_server.uri)
    assert sent.error is None and sent.query is None and sent._cursor is None
    ahead.discard()

    client["ibge"][SEEDED_WITH].insert_one({"_id": "pnadc20203", "rows": 1, "seed": 7})
    sent = _sent_and_answered(settings, mongo_server.uri)
    assert sent.error is None and sent.query is not None and sent.query.uri == mongo_server.uri


def test_an_unreachable_server_leaves_the_stream_to_meet_it(fast: Callable[..., Settings]) -> None:
    settings = fast(mongo_uri="mongodb://127.0.0.1:9/?directConnection=true")
    sent = _sent_and_answered(settings)
    assert sent.error is not None and sent.query is None
    assert ahead.take(settings, None) is None and ahead._sent is None


def test_no_server_named_sends_nothing(fast: Callable[..., Settings]) -> None:
    ahead.send_ahead(fast(), DATE, False, None)
    assert ahead._sent is None


def test_closing_a_query_sent_ahead_kills_its_cursor_on_the_server(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    """SecantusDB holds a cursor's whole answer until it is killed: a client closed alone leaves it."""
    server = seeded(30)
    _sent_and_answered(mongo_settings(fast, server, mongo_batch_size=7))
    assert _open_cursors(server.uri) == 1  # 7 of 30 documents sent: the rest waits on the server
    ahead.discard()
    assert _open_cursors(server.uri) == 0


def test_a_query_closed_while_its_answer_is_built_is_killed_once_the_answer_comes(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    """A command that fails during Prefect's start: the cursor has no id to kill until the answer comes."""
    server = seeded(30_000)
    ahead.send_ahead(mongo_settings(fast, server, mongo_batch_size=7), DATE, False, None)
    sent = ahead._sent
    assert sent is not None
    while sent.sent_at is None and sent.error is None:
        time.sleep(0.001)
    ahead.discard()
    assert sent.answered_at is None  # closed while the server built its answer
    sent.wait()
    assert sent.answered_at is not None and sent._client is None
    assert _open_cursors(server.uri) == 0


def test_a_second_command_in_one_process_sends_its_own_query(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(30)
    first = _sent_and_answered(mongo_settings(fast, server, mongo_batch_size=7))
    settings = mongo_settings(fast, server, mongo_batch_size=8)
    second = _sent_and_answered(settings)  # the first was left: a command that failed early
    assert first._client is None
    assert second.query == ahead.Query.of(settings, None)


def test_a_query_no_stream_took_is_closed_when_the_command_ends(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(10)
    settings = mongo_settings(fast, server)
    sent = _sent_and_answered(settings)
    assert sent._client is not None
    ahead.discard()
    assert ahead._sent is None and sent._client is None
    manifest = extract_pnadc(settings, Lake(settings), DATE).manifest
    assert manifest["query_sent_ahead"] is None and manifest["records"] == 10
