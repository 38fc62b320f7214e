"""The cursor: what extract_pnadc asks the server for, the read-ahead thread's contract, pages, reconnects."""

from __future__ import annotations

import datetime as dt
import gzip
import logging
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import bson
import pytest
from bson import ObjectId
from bson.json_util import loads
from pymongo import MongoClient
from pymongo.errors import AutoReconnect

from flows.lake import Lake
from flows.settings import Settings
from flows.sources.local_mongo import SecantusProcess
from flows.sources.mongo import NOT_OBJECTID, extract_pnadc, pages
from flows.sources.mongo.cursor import Seen
from flows.sources.mongo.encoder_pool import EncoderPool
from tests.sources.mongo.support import Commands, assert_exactly_the_source, drop_next_getmore, mongo_settings
from tests.support.sources import DATE, raw_docs, source_ids


def test_the_cursor_is_sorted_and_hinted_to_the_id_index_in_server_sized_batches(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    # Unhinted, SecantusDB sorts the whole collection in memory before its first batch (OOM at 2M).
    server = seeded(1_200)
    MongoClient(server.uri)["ibge"]["pnadc20203"].insert_one({"_id": "not-an-objectid"})  # so a sweep runs
    listener = Commands("find", "getMore")
    client: MongoClient[Any] = MongoClient(server.uri, event_listeners=[listener])
    settings = fast(mongo_uri=server.uri, mongo_batch_size=500)
    result = extract_pnadc(settings, Lake(settings), DATE, client=client)
    assert result.manifest["records"] == 1_201
    finds = listener.named("find")
    # The ObjectId stream, then the (indexed) sweep for _ids that are not ObjectIds.
    [find] = [c for c in finds if c.get("filter") != NOT_OBJECTID]
    [sweep] = [c for c in finds if c.get("filter") == NOT_OBJECTID]
    # Named positively, every type but ObjectId (and array): MongoDB builds no index bounds for a `$not`.
    wanted = sweep["filter"]["_id"]["$type"]
    assert list(sweep["filter"]) == ["_id"] and list(sweep["filter"]["_id"]) == ["$type"]
    assert "objectId" not in wanted and "array" not in wanted and {"string", "date", "int"} <= set(wanted)
    assert dict(sweep["hint"]) == {"_id": 1}
    assert dict(find["sort"]) == {"_id": 1} and dict(find["hint"]) == {"_id": 1}
    assert find["batchSize"] == 500
    assert len(listener.named("getMore")) >= 2


def test_pages_cut_server_batches_where_a_page_ends(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pages of 500 from server batches of 300: the 2nd, 4th… batches are split across two pages.
    monkeypatch.setattr("flows.sources.mongo.cursor.SERVER_BATCH", 300)
    server = seeded(1_234)
    settings = fast(mongo_uri=server.uri, mongo_batch_size=500)
    lake = Lake(settings)
    manifest = extract_pnadc(settings, lake, DATE).manifest
    assert [f["records"] for f in manifest["files"]] == [500, 500, 234]
    assert [d["_id"] for d in raw_docs(lake)] == source_ids(server.uri)


@pytest.mark.parametrize("workers", [0, 2], ids=["in process", "encoder workers"])
def test_objectids_only_reads_unfiltered_and_drops_the_other_types_at_both_ends(
    seeded: Callable[[int], SecantusProcess], monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    # Server batches of 40 so that whole batches, and batches straddling a type boundary, hold other types:
    # numbers and strings sort before ObjectIds, booleans and dates after them.
    monkeypatch.setattr("flows.sources.mongo.cursor.SERVER_BATCH", 40)
    server = seeded(300)
    odd = [
        *range(50),
        *(f"s{i:02d}" for i in range(30)),
        True,
        *(dt.datetime(2020, 1, d) for d in range(1, 31)),
    ]
    MongoClient(server.uri)["ibge"]["pnadc20203"].insert_many([{"_id": i} for i in odd])
    listener = Commands("find")
    client: MongoClient[Any] = MongoClient(server.uri, event_listeners=[listener])
    collection = client["ibge"]["pnadc20203"]
    seen = Seen()
    with EncoderPool(workers, collection.codec_options) if workers else nullcontext() as encoder:
        got = list(pages(collection, {}, None, 100, objectids_only=True, seen=seen, encoder=encoder))
    assert seen.dropped == len(odd)
    [find] = listener.named("find")
    assert find.get("filter", {}) == {}  # the server evaluates no filter: the client drops the other types
    oids = [i for i in source_ids(server.uri) if isinstance(i, ObjectId)]
    assert [p.records for p in got] == [100, 100, 100]
    assert [(p.first_id, p.last_id) for p in got] == [(oids[i], oids[i + 99]) for i in (0, 100, 200)]
    ids = [loads(line)["_id"] for p in got for line in gzip.decompress(p.body).decode().splitlines()]
    assert ids == oids
    assert all(p.ascending for p in got)  # the other types dropped, what is left is ascending ObjectIds


class _FaultyServer:
    """A real collection whose cursor hands out its batches altered (`alter`): a faulty server (a real one
    never sends an `_id` twice), to see that pages say so rather than vouch for distinct `_id`s."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self.codec_options = collection.codec_options

    def find_raw_batches(self, query: dict[str, Any], **kwargs: Any) -> _Replayed:
        return self.alter(list(self.collection.find_raw_batches(query, **kwargs)))

    def alter(self, batches: list[bytes]) -> _Replayed:
        raise NotImplementedError


class _Replayed:
    """Batches already read, as a cursor hands them out; then `then` raised, if given (a dropped
    connection)."""

    def __init__(self, batches: list[bytes], then: Exception | None = None) -> None:
        self._batches = iter(batches)
        self._then = then

    def __iter__(self) -> _Replayed:
        return self

    def __next__(self) -> bytes:
        batch = next(self._batches, None)
        if batch is None:
            if self._then is not None:
                raise self._then
            raise StopIteration
        return batch

    def close(self) -> None:
        pass


class _RepeatsItsLastBatch(_FaultyServer):
    """Sends its last batch twice: each of that batch's `_id`s ascends, so only the check against the page
    before can tell (with batches of 100 and pages of 300, the repeat is a page of its own)."""

    def alter(self, batches: list[bytes]) -> _Replayed:
        return _Replayed([*batches, batches[-1]])


class _RepeatsADocument(_FaultyServer):
    """Sends the first document of its second batch twice in that batch: only the batch's own check can
    tell."""

    def alter(self, batches: list[bytes]) -> _Replayed:
        docs = bson.decode_all(batches[1])
        batches[1] = b"".join(bson.encode(d) for d in [docs[0], *docs])
        return _Replayed(batches)


@pytest.mark.parametrize("workers", [0, 2], ids=["in process", "encoder workers"])
@pytest.mark.parametrize(
    ("faulty", "documents", "records", "ascending"),
    [
        (_RepeatsItsLastBatch, 900, [300, 300, 300, 100], [True, True, True, False]),
        # the second page begins with what the repeat pushed out of the first
        (_RepeatsADocument, 600, [300, 300, 1], [False, True, True]),
    ],
    ids=["a-batch-repeating-the-page-before", "a-batch-repeating-an-id-within-itself"],
)
def test_a_page_repeating_an_id_does_not_claim_ascending_ids(
    seeded: Callable[[int], SecantusProcess],
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
    faulty: type[_FaultyServer],
    documents: int,
    records: list[int],
    ascending: list[bool],
) -> None:
    monkeypatch.setattr("flows.sources.mongo.cursor.SERVER_BATCH", 100)
    server = seeded(documents)
    collection = MongoClient(server.uri)["ibge"]["pnadc20203"]
    with EncoderPool(workers, collection.codec_options) if workers else nullcontext() as encoder:
        got = list(pages(faulty(collection), {}, None, 300, encoder=encoder))
    assert [p.records for p in got] == records
    assert [p.ascending for p in got] == ascending


class _ReopensFromTheStart(_FaultyServer):
    """Its first cursor drops after `drop_after` batches; its reopened cursor ignores its bound and starts
    again from the first `_id`."""

    def __init__(self, collection: Any, drop_after: int) -> None:
        super().__init__(collection)
        self.drop_after = drop_after
        self.opened = 0

    def find_raw_batches(self, query: dict[str, Any], **kwargs: Any) -> _Replayed:
        return super().find_raw_batches({}, **kwargs)  # the bound ignored

    def alter(self, batches: list[bytes]) -> _Replayed:
        self.opened += 1
        if self.opened > 1:
            return _Replayed(batches)
        return _Replayed(batches[: self.drop_after], then=AutoReconnect("dropped"))


def test_a_reopened_cursor_that_goes_back_does_not_claim_ascending_ids(
    seeded: Callable[[int], SecantusProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flows.sources.mongo.cursor.SERVER_BATCH", 100)
    server = seeded(900)
    faulty = _ReopensFromTheStart(MongoClient(server.uri)["ibge"]["pnadc20203"], drop_after=4)
    got = list(pages(faulty, {}, None, 300, reconnects=1, backoff_s=0))
    assert faulty.opened == 2
    # 300 handed out, 100 more read and dropped with the connection; then from the first `_id` again.
    assert [p.records for p in got] == [300, 300, 300, 300]
    assert [p.ascending for p in got] == [True, False, True, True]


@pytest.mark.parametrize("workers", [0, 2], ids=["in process", "encoder workers"])
def test_a_connection_closed_on_getmore_is_survived_within_the_run(
    fast: Callable[..., Settings],
    seeded: Callable[[int], SecantusProcess],
    caplog: pytest.LogCaptureFixture,
    workers: int,
) -> None:
    server = seeded(3_000)
    drop_next_getmore(server)
    settings = mongo_settings(fast, server, mongo_batch_size=400, mongo_encoder_workers=workers)
    lake = Lake(settings)
    with caplog.at_level(logging.WARNING):
        result = extract_pnadc(settings, lake, DATE, logger=logging.getLogger("tests.sources.failpoint"))
    assert "MongoDB connection dropped" in caplog.text and "reopening the cursor" in caplog.text
    assert result.manifest["records"] == result.manifest["source_count"] == 3_000
    assert result.manifest["ids_ascending"] is True  # the reopened cursor went on after the last page
    assert_exactly_the_source(lake, server.uri)
