"""Batches: whether a batch's `_id`s ascend, the proof the PNAD step trusts to skip its duplicate check."""

from __future__ import annotations

from typing import Any

import bson
import pytest
from bson import ObjectId
from bson.codec_options import CodecOptions

from flows.sources.mongo.batches import ascending_objectids, encode_batch
from flows.sources.mongo.cursor import _follows

OPTIONS: CodecOptions[Any] = CodecOptions()
IDS = [ObjectId(f"{i:024x}") for i in (1, 2, 3, 0x100, 0xFF00)]


def _raw(ids: list[Any]) -> bytes:
    return b"".join(bson.encode({"_id": i, "uf": "Pará"}) for i in ids)


def test_a_batch_of_ascending_objectids_says_so_and_so_do_its_parts() -> None:
    batch = encode_batch(_raw(IDS), OPTIONS, objectids_only=True)
    assert batch.ascending and (batch.first_id, batch.last_id) == (IDS[0], IDS[-1])
    head, tail = batch.split(2)
    assert head.ascending and tail.ascending and (head.last_id, tail.first_id) == (IDS[1], IDS[2])


@pytest.mark.parametrize(
    "ids",
    [
        [IDS[0], IDS[2], IDS[1]],  # out of order
        [IDS[0], IDS[1], IDS[1], IDS[2]],  # a repeated `_id`
        [IDS[0], "0" * 24, IDS[1]],  # another type, which a page could hold when not dropped
        [{"$oid": str(IDS[0])}, IDS[1]],  # a document that prints as an ObjectId does
    ],
    ids=["out-of-order", "repeated", "a-string", "an-oid-lookalike"],
)
def test_a_batch_that_is_not_ascending_objectids_makes_no_claim(ids: list[Any]) -> None:
    assert not encode_batch(_raw(ids), OPTIONS, objectids_only=False).ascending
    assert not ascending_objectids(ids)


def test_the_other_types_dropped_leave_an_ascending_batch() -> None:
    batch = encode_batch(_raw([7, *IDS[:3], True]), OPTIONS, objectids_only=True)
    assert batch.dropped == 2 and batch.records == 3 and batch.ascending


def test_a_run_follows_the_one_before_only_above_its_last_id() -> None:
    assert _follows(None, IDS[0])  # nothing before: the cursor's first batch
    assert _follows(IDS[1], IDS[2])
    assert not _follows(IDS[2], IDS[2]) and not _follows(IDS[3], IDS[2])
    assert not _follows(IDS[1], None)  # an empty take never reaches here; were it to, no claim
