"""Part files gzipped batch by batch hold exactly the bytes of the whole page's text gzipped at once."""

from __future__ import annotations

import gzip
import hashlib
import random
from collections.abc import Callable
from typing import Any

import bson
import bson.errors
import pytest
from bson import ObjectId
from bson.json_util import RELAXED_JSON_OPTIONS, dumps
from pymongo import MongoClient

from flows.generator import generate
from flows.lake import Lake
from flows.settings import Settings
from flows.sources.local_mongo import SecantusProcess
from flows.sources.mongo import extract_pnadc, relaxed_lines
from flows.sources.mongo.part_body import PartBody
from tests.sources.mongo.support import mongo_settings
from tests.sources.mongo.test_encoding import FLOATS, INTS, STRINGS
from tests.support.sources import DATE, source_ids


def _whole(text: str) -> bytes:
    return gzip.compress(text.encode(), compresslevel=1, mtime=0)  # what a part held before


def _same_gzip(got: bytes, want: bytes) -> bool:
    """Byte for byte but for the header's OS byte: zlib writes the platform's, `gzip.compress` 255 since
    Python 3.13 (3 on Linux before); no reader looks at it."""
    return got[:9] + got[10:] == want[:9] + want[10:]


def _hostile() -> list[dict[str, Any]]:
    """Generated documents with every edge value of the encoder's tests among them."""
    docs = [doc for chunk in generate(3_000, 11) for doc in chunk]
    values = [*FLOATS, *INTS, *STRINGS, True, None]
    for i, value in enumerate(values):
        docs[i * 7]["renda"] = value
    return docs


def _storable(doc: dict[str, Any]) -> bool:
    try:
        bson.encode(doc)
    except (OverflowError, bson.errors.InvalidStringData, UnicodeEncodeError):
        return False
    return True


def test_blocks_of_any_size_give_the_bytes_of_the_whole_text() -> None:
    docs = _hostile()
    rng = random.Random(5)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(docs)), rng.randint(0, 12)))
        blocks = [relaxed_lines(docs[a:b]) for a, b in zip([0, *cuts], [*cuts, len(docs)], strict=True)]
        body = PartBody()
        for block in blocks:
            body.write(block.encode())
        got, sha = body.finish()
        assert _same_gzip(got, _whole("".join(blocks))) and sha == hashlib.sha256(got).hexdigest()


@pytest.mark.parametrize("workers", [0, 2], ids=["in process", "encoder workers"])
def test_an_extracted_part_is_the_page_gzipped_at_once(
    fast: Callable[..., Settings],
    seeded: Callable[[int], SecantusProcess],
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
) -> None:
    # Server batches of 70 in pages of 500: pages span batches and batches straddle pages.
    monkeypatch.setattr("flows.sources.mongo.cursor.SERVER_BATCH", 70)
    server = seeded(1_200)
    coll = MongoClient(server.uri)["ibge"]["pnadc20203"]
    hostile = [d for d in _hostile()[:300] if _storable(d)]  # no 2**64 nor lone surrogate in BSON
    for doc in hostile:
        doc["_id"] = ObjectId()  # after the seeded ones, in the stream
    coll.insert_many(hostile)
    settings = mongo_settings(fast, server, mongo_batch_size=500, mongo_encoder_workers=workers)
    lake = Lake(settings)
    manifest = extract_pnadc(settings, lake, DATE).manifest
    source = list(coll.find({}).sort("_id", 1))
    assert [d["_id"] for d in source] == source_ids(server.uri) and manifest["records"] == len(source)
    fs = lake.fs("raw")
    for index, (entry, path) in enumerate(
        zip(manifest["files"], lake.committed_files("raw", f"pnadc/ingestion_date={DATE}"), strict=True)
    ):
        page = source[index * 500 : (index + 1) * 500]
        want = _whole("".join(dumps(d, json_options=RELAXED_JSON_OPTIONS) + "\n" for d in page))
        with fs.open(path, "rb") as fh:
            got = fh.read()
        assert _same_gzip(got, want) and entry["sha256"] == hashlib.sha256(got).hexdigest()
