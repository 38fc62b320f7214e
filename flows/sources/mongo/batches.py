"""A server batch as JSON lines: raw BSON decoded, other `_id` types dropped if asked, encoded.

Pure and picklable in and out, so the same function runs in the extraction's process or in an encoder
worker (encoder_pool.py), with the same bytes out either way.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bson import ObjectId, decode_all
from bson.codec_options import CodecOptions
from bson.json_util import RELAXED_JSON_OPTIONS, loads

from flows.sources.mongo.encoding import relaxed_lines


@dataclass(frozen=True)
class Encoded:
    """A batch's documents as relaxed extended JSON lines (UTF-8), and what a page needs to know of them."""

    lines: bytes
    records: int
    dropped: int  # documents of another `_id` type left out (`objectids_only`)
    first_id: Any
    last_id: Any
    # Every `_id` an ObjectId, each greater than the one before: no two documents of the batch share one
    # (what lets the PNAD step skip its duplicate check: docs/ingestion.md, "The raw zone contract").
    ascending: bool = False

    def split(self, records: int) -> tuple[Encoded, Encoded]:
        """The first `records` documents and the rest (0 < records < self.records), to cut a page."""
        end = -1
        for _ in range(records):
            end = self.lines.index(b"\n", end + 1)  # a line holds no raw newline: JSON escapes them
        head, tail = self.lines[: end + 1], self.lines[end + 1 :]
        head_last = _line_id(head[head.rfind(b"\n", 0, -1) + 1 :])
        tail_first = _line_id(tail[: tail.index(b"\n")])
        return (
            Encoded(head, records, self.dropped, self.first_id, head_last, self.ascending),
            Encoded(tail, self.records - records, 0, tail_first, self.last_id, self.ascending),
        )


def _line_id(line: bytes) -> Any:
    """The `_id` of one encoded document, read back from its line (the worker sends no decoded documents).

    Exact for an ObjectId, the only `_id` a checkpoint or a reopened cursor uses; another type comes back
    as relaxed JSON reads it (an Int64 as an int), which only a log line shows (the sweep of the other
    `_id`s neither checkpoints nor reopens)."""
    return loads(line, json_options=RELAXED_JSON_OPTIONS)["_id"]


def _objectid(doc: dict[str, Any]) -> bool:
    return type(doc.get("_id")) is ObjectId


def ascending_objectids(ids: Sequence[Any]) -> bool:
    """Whether every id is an ObjectId and each is greater than the one before (as MongoDB orders them:
    their 12 bytes)."""
    if any(type(i) is not ObjectId for i in ids):
        return False
    keys = [i.binary for i in ids]
    return all(map(operator.lt, keys, keys[1:]))


def encode_batch(raw: bytes, options: CodecOptions[Any], objectids_only: bool) -> Encoded:
    """One raw BSON batch as JSON lines.

    `objectids_only`: in `_id` order the ObjectIds are one contiguous run (BSON compares the type first),
    so only a batch at either end of that run holds another type and needs a look at each document.
    """
    docs = decode_all(raw, options)
    dropped = 0
    if objectids_only and docs and not (_objectid(docs[0]) and _objectid(docs[-1])):
        kept = [d for d in docs if _objectid(d)]
        dropped = len(docs) - len(kept)
        docs = kept
    if not docs:  # vacuously ascending; a page never takes an empty batch anyway (cursor.pages)
        return Encoded(b"", 0, dropped, None, None, ascending=True)
    ids = [d["_id"] for d in docs]
    return Encoded(
        relaxed_lines(docs).encode(), len(docs), dropped, ids[0], ids[-1], ascending_objectids(ids)
    )
