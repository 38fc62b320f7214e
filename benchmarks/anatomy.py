"""Where extraction time goes: the parts of `extract_pnadc` timed one by one, and a profile of it whole.

`run` times, on one collection, each thing extraction does per document, without a profiler's distortion:
the bare drain (server + wire, the raw limit), decoding to dicts, relaxed extended JSON via
`bson.json_util.dumps`, joining and encoding, gzip level 1, sha256 and the reconciling count. It also times
two candidate fixes (not used by the pipeline): a flat-document fast path that produces byte-identical
lines, and the same fast path with a prefetching reader thread so the client works while the server
serves the next batch.

`profile` runs `extract_pnadc` under cProfile and reports its top functions and where the time lands.
"""

from __future__ import annotations

import cProfile
import gzip
import hashlib
import io
import json
import math
import pstats
import queue
import threading
import time
from pathlib import Path
from typing import Any

import bson
from bson import ObjectId
from bson.json_util import RELAXED_JSON_OPTIONS, dumps
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

from benchmarks.marks import Marks

_SPECIAL_FLOATS = {math.inf: "Infinity", -math.inf: "-Infinity"}
_PLAIN = (str, int, bool, type(None))


def fast_relaxed_line(doc: dict[str, Any]) -> str:
    """Relaxed extended JSON of a flat document, identical to `json_util.dumps`, through the C encoder.

    Anything but ObjectId, str, int, bool, None and float (NaN and infinities wrapped as json_util does)
    falls back to `json_util.dumps`, so the output is the same for every document.
    """
    out: dict[str, Any] = {}
    for key, value in doc.items():
        kind = type(value)
        if kind is float:
            if value != value:
                value = {"$numberDouble": "NaN"}
            elif value in _SPECIAL_FLOATS:
                value = {"$numberDouble": _SPECIAL_FLOATS[value]}
        elif kind is ObjectId:
            value = {"$oid": str(value)}
        elif kind not in _PLAIN:
            return dumps(doc, json_options=RELAXED_JSON_OPTIONS)
        out[key] = value
    return json.dumps(out)


def _collection(spec: dict[str, Any], **client_options: Any) -> tuple[MongoClient[Any], Any]:
    client: MongoClient[Any] = MongoClient(spec["uri"], **client_options)
    return client, client[spec["database"]][spec["collection"]]


def _cursor(collection: Any) -> Any:
    return collection.find({}).sort("_id", 1).hint([("_id", 1)]).batch_size(10_000)  # extract_pnadc's


def _pages(docs: list[Any], size: int) -> list[list[Any]]:
    return [docs[i : i + size] for i in range(0, len(docs), size)]


def run(spec: dict[str, Any], marks: Marks) -> dict[str, Any]:
    page_size = int(spec["batch_size"])
    with marks.stage("drain (RawBSONDocument)"):
        client, coll = _collection(spec, document_class=RawBSONDocument)
        t0 = time.perf_counter()
        cursor = _cursor(coll)
        next(cursor)
        first_batch = time.perf_counter() - t0
        n = 1 + sum(1 for _ in cursor)
        client.close()
    with marks.stage("unsorted drain (no keyset order)"):
        client, coll = _collection(spec, document_class=RawBSONDocument)
        sum(1 for _ in coll.find({}).batch_size(10_000))
        client.close()
    with marks.stage("drain + decode to dicts"):
        client, coll = _collection(spec)
        docs = list(_cursor(coll))
    with marks.stage("json_util.dumps (relaxed)"):
        lines = [dumps(d, json_options=RELAXED_JSON_OPTIONS) for d in docs]
    with marks.stage("join + utf-8 encode"):
        bodies = [("\n".join(p) + "\n").encode() for p in _pages(lines, page_size)]
    with marks.stage("gzip level 1"):
        compressed = [gzip.compress(b, compresslevel=1, mtime=0) for b in bodies]
    with marks.stage("sha256"):
        for c in compressed:
            hashlib.sha256(c).hexdigest()
    with marks.stage("count_documents (reconciliation)"):
        counted = coll.count_documents({"_id": {"$lte": docs[-1]["_id"]}})
    with marks.stage("candidate: fast-path encoder"):
        fast = [fast_relaxed_line(d) for d in docs]
    identical = fast == lines
    raw_bytes = sum(len(b) for b in bodies)
    gz_bytes = sum(len(c) for c in compressed)
    del docs, lines, bodies, compressed, fast
    client.close()
    with marks.stage("candidate: prefetch thread + fast path + gzip + sha256"):
        written = _prefetched_extract(spec, page_size)
    return {
        "documents": n,
        "first_batch_s": first_batch,
        "counted": counted,
        "fast_path_identical": identical,
        "jsonl_bytes": raw_bytes,
        "gzip_bytes": gz_bytes,
        "prototype_documents": written,
    }


def _prefetched_extract(spec: dict[str, Any], page_size: int) -> int:
    """A reader thread drains raw batches (the socket wait releases the GIL) while this thread encodes."""
    batches: queue.Queue[list[RawBSONDocument] | None] = queue.Queue(maxsize=4)
    client, coll = _collection(spec, document_class=RawBSONDocument)

    def reader() -> None:
        batch: list[RawBSONDocument] = []
        try:
            for doc in _cursor(coll):
                batch.append(doc)
                if len(batch) == 10_000:
                    batches.put(batch)
                    batch = []
            if batch:
                batches.put(batch)
        finally:
            batches.put(None)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    written = 0
    page: list[str] = []
    while (batch := batches.get()) is not None:
        for raw in batch:
            page.append(fast_relaxed_line(bson.decode(raw.raw)))
        if len(page) >= page_size:
            body = gzip.compress(("\n".join(page) + "\n").encode(), compresslevel=1, mtime=0)
            hashlib.sha256(body).hexdigest()
            written += len(page)
            page = []
    if page:
        body = gzip.compress(("\n".join(page) + "\n").encode(), compresslevel=1, mtime=0)
        hashlib.sha256(body).hexdigest()
        written += len(page)
    thread.join()
    client.close()
    return written


# --- the profile of the real thing ----------------------------------------------------------
# Disjoint parts of extract_pnadc, by the function that does them (file suffix, function name).
PARTS = {
    "cursor: wait for the server + decode BSON (_pages)": ("sources/mongo.py", "_pages"),
    "json_util.dumps (relaxed extended JSON)": ("bson/json_util.py", "dumps"),
    "gzip.compress (level 1)": ("gzip.py", "compress"),
    "count_documents (reconciliation)": ("pymongo/synchronous/collection.py", "count_documents"),
    "lake.commit (manifest, drop old runs)": ("flows/lake.py", "commit"),
}


def profile(spec: dict[str, Any], marks: Marks, settings: Any) -> dict[str, Any]:
    from flows.lake import Lake
    from flows.sources.mongo import extract_pnadc

    lake = Lake(settings)
    profiler = cProfile.Profile()
    with marks.stage("extract_pnadc under cProfile"):
        profiler.enable()
        manifest = extract_pnadc(settings, lake, spec["date"], full_refresh=True).manifest
        profiler.disable()
    out = Path(spec["profile_out"])
    profiler.dump_stats(str(out))
    stats = pstats.Stats(profiler)
    total = max(s[3] for s in stats.stats.values())  # the outermost cumulative time
    top = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:15]
    parts = {}
    for label, (suffix, name) in PARTS.items():
        parts[label] = sum(v[3] for (f, _, fn), v in stats.stats.items() if f.endswith(suffix) and fn == name)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
    return {
        "documents": manifest["records"],
        "total_s": total,
        "parts_s": parts,
        "top_tottime": [
            {
                "function": f"{Path(f).parent.name}/{Path(f).name}:{line}({fn})" if line else fn,
                "calls": v[1],
                "tottime_s": v[2],
                "cumtime_s": v[3],
            }
            for (f, line, fn), v in top
        ],
        "pstats_file": str(out),
    }
