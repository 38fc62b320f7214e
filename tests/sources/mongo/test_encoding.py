"""The fast raw encoder writes exactly what `bson.json_util.dumps` (relaxed) writes, for every document."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from typing import Any

import pytest
from bson import (
    Binary,
    Code,
    DBRef,
    Decimal128,
    Int64,
    MaxKey,
    MinKey,
    ObjectId,
    Regex,
    Timestamp,
)
from bson.json_util import RELAXED_JSON_OPTIONS, dumps
from bson.son import SON

from flows.generator import generate
from flows.sources.mongo import encoding, relaxed_line, relaxed_lines


def _reference(page: list[Any]) -> str:
    return "".join(dumps(doc, json_options=RELAXED_JSON_OPTIONS) + "\n" for doc in page)


def _assert_identical(page: list[Any]) -> None:
    want = _reference(page)
    assert relaxed_lines(page) == want
    assert "".join(relaxed_line(doc) + "\n" for doc in page) == want
    for doc in page:  # one by one too, for a readable failure
        assert relaxed_line(doc) == dumps(doc, json_options=RELAXED_JSON_OPTIONS), doc


FLOATS = [
    0.0, -0.0, 1.0, -1.5, 0.1, 1 / 3, 1e16, 1e15, 1.5e-7, 1e-5, 1e300, -1e300, 1e308, 1.7976931348623157e308,
    5e-324, 2.2250738585072014e-308, 123456789012345678.0, 1e22, 2.0**53, 2.0**63, 2.0**64, -(2.0**63),
    math.pi, 1300.0, math.nan, -math.nan, math.inf, -math.inf, float("nan"),
]  # fmt: skip
INTS = [0, 1, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**53 + 1, 2**63 - 1, -(2**63), 2**64, -(2**70)]
STRINGS = [
    "", " ", "Paraná", "Não", "São João", "ação", "😀", "a😀b", "\x00", "\x1f", "\x7f", "\t\n\r\b\f",
    '"', "\\", '\\"', "/", "\u2028\u2029", "\ud800", "中文", "NaN", "Infinity", ": NaN, ", "}, {", '"}, {"',
    "{", "}", '{"$oid": "x"}', "a" * 10_000,
]  # fmt: skip
KEYS = ["_id", "", "a b", 'q"uote', "back\\slash", "ção", "😀", "\x00", "}, {", "$oid", "a.b", "NaN"]
SIMPLE_VALUES: list[Any] = [*FLOATS, *INTS, *STRINGS, True, False, None, ObjectId(), ObjectId("0" * 24)]


def test_generated_documents_are_byte_identical() -> None:
    docs = [doc for chunk in generate(20_000) for doc in chunk]
    assert any(math.isnan(v) for d in docs for v in d.values() if type(v) is float)  # the NaN path runs
    assert all(encoding._is_simple(d) for d in docs)  # ... and the fast path takes them all
    for start in range(0, len(docs), 1000):
        _assert_identical(docs[start : start + 1000])


def test_every_simple_edge_value_is_byte_identical() -> None:
    docs = [{"_id": ObjectId(), "v": value} for value in SIMPLE_VALUES]
    docs += [{key: value} for key in KEYS for value in (1, "x", math.nan, None, ObjectId())]
    docs.append({f"k{i}": value for i, value in enumerate(SIMPLE_VALUES)})  # all in one document
    docs.append({})
    assert all(encoding._is_simple(d) for d in docs)
    _assert_identical(docs)
    for value in SIMPLE_VALUES:
        _assert_identical([{"v": value}])


def test_exotic_documents_fall_back_and_stay_identical() -> None:
    exotic = [
        dt.datetime(2020, 9, 30, 12, 0, 0, 123000),
        dt.datetime(2020, 9, 30, tzinfo=dt.UTC),
        Decimal128("1234.5600"),
        Decimal128("NaN"),
        Binary(b"\x00\x01"),
        Binary(uuid.uuid4().bytes, 4),
        b"bytes",
        Int64(5),
        Int64(2**40),
        Timestamp(1600000000, 1),
        Regex("^a", "i"),
        re.compile("^b", re.IGNORECASE),
        Code("x = 1"),
        Code("x = y", {"y": 1}),
        DBRef("coll", ObjectId()),
        MinKey(),
        MaxKey(),
        {},
        {"a": 1, "b": math.nan},
        {"nested": {"x": [1, 2.5, None, ObjectId()]}},
        [],
        [1, "a", math.inf, {"y": Int64(3)}],
        [{"a": 1}, {"b": 2}],  # "}, {" outside a string, inside a document
        (1, 2),
        SON([("z", 1), ("a", 2)]),
    ]
    docs = [{"_id": ObjectId(), "ano": 2020, "renda": math.nan, "x": value} for value in exotic]
    docs.append(SON([("_id", ObjectId()), ("ano", 2020)]))  # not a plain dict
    assert not any(encoding._is_simple(d) for d in docs)
    _assert_identical(docs)
    simple = [{"_id": ObjectId(), "n": 1}, {"_id": ObjectId(), "s": "}, {"}]
    _assert_identical(simple + docs + simple)  # a page mixing both


def test_a_string_holding_the_boundary_takes_the_per_document_path() -> None:
    page = [{"_id": ObjectId(), "s": s, "f": math.nan} for s in ("}, {", '"}, {"', "x}, {y}, {")]
    _assert_identical(page)
    _assert_identical([{"a": 1}, {"b": "}, {"}, {"c": 3}])


LOOKALIKES = [
    ": NaN",
    ": Infinity",
    ": -Infinity",
    ': NaN, "',
    'a": NaN',
    '\\": NaN',
    "NaN",
    "-Infinity",
    "\\",
]


def test_a_string_that_looks_like_a_bare_nonfinite_token_stays_a_string() -> None:
    """NaN and ±Infinity are wrapped in the page's text: a string spelling one must not be touched."""
    generated = [doc for chunk in generate(50) for doc in chunk]
    for s in LOOKALIKES:
        for value in (math.nan, math.inf, -math.inf, 1.5):
            _assert_identical([{"s": s, "f": value}])  # a value that starts or holds the token
            _assert_identical([{s: value}, {"f": value, s: s}])  # a key that does
            _assert_identical([*generated, {"_id": ObjectId(), "s": s, "f": value}])  # one odd document


def test_the_check_catches_a_broken_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = [doc for chunk in generate(200) for doc in chunk]
    assert relaxed_lines(docs) == _reference(docs)
    broken = json.JSONEncoder(default=encoding._objectid, check_circular=False, ensure_ascii=False)
    monkeypatch.setattr(encoding, "_ENCODER", broken)
    assert relaxed_lines(docs) != _reference(docs)  # "Ceará" instead of "Cear\u00e1"
    assert relaxed_line({"uf": "Ceará"}) != dumps({"uf": "Ceará"}, json_options=RELAXED_JSON_OPTIONS)


def test_generated_pages_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-call path, not the per-document fallback, encodes PNAD pages (NaN among them)."""
    docs = [doc for chunk in generate(5_000) for doc in chunk]
    assert any(isinstance(v, float) and math.isnan(v) for d in docs for v in d.values())
    want = relaxed_lines(docs)

    def per_document(doc: Any) -> str:
        raise AssertionError("a PNAD page fell back to the per-document path")

    monkeypatch.setattr(encoding, "relaxed_line", per_document)
    assert relaxed_lines(docs) == want == _reference(docs)
