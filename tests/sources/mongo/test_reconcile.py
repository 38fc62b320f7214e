"""The reconciling count against a real SecantusDB: cheap when nothing changed, exact when anything did.

A full extraction of an unchanged collection is settled by the collection's count after the stream (no
second pass, no sweep); an insert or a delete during the run, behind the cursor or after it, sends it to
the exact count of the range, which fails the run when the batch is not the source.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from bson import ObjectId
from pymongo import MongoClient, monitoring

from flows.errors import ReconciliationError
from flows.generator import generate
from flows.lake import Lake
from flows.layout import raw_pnadc
from flows.settings import Settings
from flows.sources.local_mongo import SecantusProcess
from flows.sources.mongo import extract_pnadc
from flows.sources.mongo.reconcile import COLLECTION_COUNT, RANGE_COUNT
from tests.sources.mongo.support import Commands, OnGetMore, assert_exactly_the_source, mongo_settings
from tests.support.sources import DATE, OnMessage, hooked_logger, source_ids


def test_an_unchanged_collection_is_reconciled_without_a_second_pass(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(2_000)
    listener = Commands("find", "aggregate", "count")
    client: MongoClient[Any] = MongoClient(server.uri, event_listeners=[listener])
    settings = mongo_settings(fast, server, mongo_batch_size=500)
    lake = Lake(settings)
    manifest = extract_pnadc(settings, lake, DATE, client=client).manifest
    assert manifest["records"] == manifest["source_count"] == 2_000
    assert manifest["reconciled_by"] == COLLECTION_COUNT and manifest["not_objectid"] == 0
    # One find (the stream: no sweep) with no filter, as the bare drain reads, no count_documents (an
    # aggregate), one count of the collection with no filter (after the stream).
    [stream] = listener.named("find")
    assert stream.get("filter", {}) == {} and stream["sort"] == {"_id": 1} and stream["hint"] == {"_id": 1}
    assert listener.named("aggregate") == []
    assert [c.get("query", {}) for c in listener.named("count")] == [{}]
    assert_exactly_the_source(lake, server.uri)

    # An incremental run's range is not the whole collection: its exact count decides.
    MongoClient(server.uri)["ibge"]["pnadc20203"].insert_many(next(generate(2_100, 9, start=2_000)))
    listener.commands.clear()
    later = extract_pnadc(settings, lake, "2026-11-26", client=client).manifest
    assert (later["mode"], later["records"], later["source_count"]) == ("incremental", 100, 100)
    assert later["reconciled_by"] == RANGE_COUNT and len(listener.named("aggregate")) == 1


class HeldCount(monitoring.CommandListener):
    """Holds the `count` command, in the thread that sends it, until `released` (at most `wait_s`), and
    records the stream's commands in order: each getMore's answer, and whether the count was released."""

    def __init__(self, released: threading.Event, wait_s: float = 20.0) -> None:
        self.released, self.wait_s = released, wait_s
        self.events: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "count":
            main = threading.current_thread() is threading.main_thread()
            self.events.append("count asked by the extraction's thread" if main else "count asked")
            released = self.released.wait(self.wait_s)
            self.events.append("count held until released" if released else "timed out")

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.command_name == "getMore":
            self.events.append("last batch" if event.reply["cursor"]["id"] == 0 else "batch")

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def test_the_collection_count_is_asked_after_the_last_batch_and_overlaps_the_last_parts(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    # 1,250 documents in pages of 500: the last page (250) is cut only once the cursor is exhausted. The
    # count is held until that part is written: the extraction must write it meanwhile (a count that
    # blocked the last batches, as when the cursor's reader thread took it, would time out here).
    server = seeded(1_250)
    written = threading.Event()
    listener = HeldCount(written)
    client: MongoClient[Any] = MongoClient(server.uri, event_listeners=[listener])
    settings = mongo_settings(fast, server, mongo_batch_size=500)

    def last_part_written() -> None:
        listener.events.append("last part written")
        written.set()

    marker = OnMessage("pnadc part 00002:", last_part_written)
    extraction = extract_pnadc(
        settings, Lake(settings), DATE, client=client, logger=hooked_logger("co", marker)
    )
    assert marker.fired
    # Asked beside the stream (not by the extraction once its parts are written), after the last batch,
    # and answered only after the last part was written. Whether the count's thread or the extraction's
    # gets to send or write first is theirs to race.
    events = listener.events
    assert "count asked" in events and events.index("last batch") < events.index("count asked")
    assert events.index("last part written") < events.index("count held until released")
    assert extraction.manifest["reconciled_by"] == COLLECTION_COUNT
    assert extraction.manifest["source_count"] == extraction.manifest["records"] == 1_250


def test_a_count_whose_connection_drops_is_asked_again(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(1_250)
    # Twice: pymongo retries a read once by itself; the second drop reaches the extraction.
    MongoClient(server.uri).admin.command(
        "configureFailPoint",
        "failCommand",
        mode={"times": 2},
        data={"failCommands": ["count"], "closeConnection": True},
    )
    listener = Commands("count")
    client: MongoClient[Any] = MongoClient(server.uri, event_listeners=[listener])
    settings = mongo_settings(fast, server, mongo_batch_size=500)
    lake = Lake(settings)
    dropped = OnMessage("MongoDB connection dropped while counting the collection", lambda: None)
    manifest = extract_pnadc(
        settings, lake, DATE, client=client, logger=hooked_logger("cd", dropped)
    ).manifest
    assert dropped.fired and len(listener.named("count")) == 3
    assert manifest["reconciled_by"] == COLLECTION_COUNT and manifest["source_count"] == 1_250
    assert_exactly_the_source(lake, server.uri)


def test_a_document_the_cursor_could_not_see_fails_reconciliation(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(3_000)
    settings = mongo_settings(fast, server, mongo_batch_size=500)
    lake = Lake(settings)
    writer: MongoClient[Any] = MongoClient(server.uri)
    # Mid-run, another client inserts a document whose _id sorts before the cursor's position: a real
    # change of the source the stream cannot see, which only the count reveals.
    early = ObjectId("000000000000000000000001")
    hook = OnGetMore(2, lambda: writer["ibge"]["pnadc20203"].insert_one({"_id": early, "uf": "Pará"}))
    with pytest.raises(ReconciliationError) as err:
        extract_pnadc(settings, lake, DATE, client=MongoClient(server.uri, event_listeners=[hook]))
    assert hook.fired
    assert "holds 3001 documents" in str(err.value) and "but 3000 were written" in str(err.value)
    assert lake.manifest("raw", raw_pnadc(DATE)) is None and lake.partitions("raw", "pnadc") == []
    assert lake.runs("raw", raw_pnadc(DATE)) == []  # removed: resuming could never fix it

    result = extract_pnadc(settings, lake, DATE)  # the rerun starts over and catches the document
    assert result.resumed_from is None and result.manifest["records"] == 3_001
    assert_exactly_the_source(lake, server.uri)


def test_a_document_deleted_behind_the_cursor_fails_reconciliation(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(3_000)
    settings = mongo_settings(fast, server, mongo_batch_size=500)
    lake = Lake(settings)
    first = source_ids(server.uri)[0]  # in the first batch, deleted as the third is asked for
    writer: MongoClient[Any] = MongoClient(server.uri)
    hook = OnGetMore(2, lambda: writer["ibge"]["pnadc20203"].delete_one({"_id": first}))
    with pytest.raises(ReconciliationError) as err:
        extract_pnadc(settings, lake, DATE, client=MongoClient(server.uri, event_listeners=[hook]))
    assert hook.fired
    assert "holds 2999 documents" in str(err.value) and "but 3000 were written" in str(err.value)
    assert lake.manifest("raw", raw_pnadc(DATE)) is None and lake.runs("raw", raw_pnadc(DATE)) == []


def test_documents_added_past_the_stream_or_of_another_id_type_are_reconciled_exactly(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    """Changes that leave the batch right: the count after the stream differs, the exact count agrees."""
    server = seeded(2_000)
    settings = mongo_settings(fast, server, mongo_batch_size=500)
    lake = Lake(settings)
    coll = MongoClient(server.uri)["ibge"]["pnadc20203"]
    late, odd = ObjectId(), "inserted-mid-run"  # a new ObjectId sorts after every generated one

    def change() -> None:
        coll.insert_one({"_id": late, "uf": "Pará"})  # past the stream's end: the next increment's
        coll.insert_one({"_id": odd, "uf": "Pará"})  # another type: the sweep reads it

    # While the stream runs (SecantusDB's cursor no longer sees them), before the count that follows it.
    hook = OnGetMore(1, change)
    client: MongoClient[Any] = MongoClient(server.uri, event_listeners=[hook])
    manifest = extract_pnadc(settings, lake, DATE, client=client).manifest
    assert hook.fired
    assert manifest["reconciled_by"] == RANGE_COUNT
    assert (manifest["records"], manifest["source_count"], manifest["not_objectid"]) == (2_001, 2_001, 1)
    oids = [i for i in source_ids(server.uri) if isinstance(i, ObjectId)]
    assert oids[-1] == late and manifest["watermark_to"] == str(oids[-2])  # the late one is not in it


def test_deletes_behind_the_cursor_that_offset_the_dropped_id_types_fail_the_run(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    """Equal counts prove nothing once the stream dropped other `_id` types: two deletes of streamed
    documents offset the two numeric `_id`s left out, so the collection's count equals the records
    written; settled on that, the batch would hold two deleted documents and miss the two others."""
    server = seeded(2_000)
    settings = mongo_settings(fast, server, mongo_batch_size=500)
    lake = Lake(settings)
    coll = MongoClient(server.uri)["ibge"]["pnadc20203"]
    coll.insert_many([{"_id": 1, "uf": "Pará"}, {"_id": 2, "uf": "Pará"}])  # sort before every ObjectId
    first_two = [doc["_id"] for doc in coll.find({"_id": {"$type": "objectId"}}).sort("_id", 1).limit(2)]

    def delete_streamed() -> None:
        coll.delete_many({"_id": {"$in": first_two}})

    hook = OnGetMore(1, delete_streamed)
    with pytest.raises(ReconciliationError):
        extract_pnadc(settings, lake, DATE, client=MongoClient(server.uri, event_listeners=[hook]))
    assert hook.fired
    assert lake.manifest("raw", raw_pnadc(DATE)) is None  # nothing committed
