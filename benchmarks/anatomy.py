"""Where extraction time goes: the parts of `extract_pnadc` timed one by one, and a profile of it whole.

`run` times, on one collection, each thing extraction does per document, without a profiler's distortion:
the bare drain (server + wire, the raw limit), decoding to dicts, relaxed extended JSON the naive way
(`bson.json_util.dumps`) and the pipeline's way (`relaxed_lines`), encoding, gzip level 1, sha256 and the
reconciling counts; then the pipeline's own reader (`pages`: raw batches read ahead by a thread, decoded,
encoded and gzipped batch by batch, each page's sha256), nothing written.

`profile` runs `extract_pnadc` under cProfile and reports its top functions and where the time lands.
"""

from __future__ import annotations

import cProfile
import gzip
import hashlib
import io
import pstats
import time
from pathlib import Path
from typing import Any

from bson.json_util import RELAXED_JSON_OPTIONS, dumps
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

from benchmarks.marks import Marks
from flows.sources.mongo import collection_count, relaxed_lines
from flows.sources.mongo import pages as pipeline_pages


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
    with marks.stage("json_util.dumps (relaxed, the naive way)"):
        lines = [dumps(d, json_options=RELAXED_JSON_OPTIONS) for d in docs]
    with marks.stage("relaxed_lines (the pipeline's encoder)"):
        texts = [relaxed_lines(page) for page in _pages(docs, page_size)]
    identical = "".join(texts) == "".join(line + "\n" for line in lines)
    del lines
    with marks.stage("utf-8 encode"):
        bodies = [t.encode() for t in texts]
    with marks.stage("gzip level 1"):
        compressed = [gzip.compress(b, compresslevel=1, mtime=0) for b in bodies]
    with marks.stage("sha256"):
        for c in compressed:
            hashlib.sha256(c).hexdigest()
    with marks.stage("collection count (reconciliation)"):
        counted = collection_count(coll)  # extract_pnadc counts once, after its stream
    with marks.stage("count_documents of the range (only if the collection changed)"):
        coll.count_documents({"_id": {"$lte": docs[-1]["_id"]}}, hint=[("_id", 1)])
    raw_bytes = sum(len(b) for b in bodies)
    gz_bytes = sum(len(c) for c in compressed)
    del docs, texts, bodies, compressed
    # The pipeline's pages come gzipped, with their sha256 (part_body.py): all but the writes.
    with marks.stage("pages + gzip + sha256 (all but the writes)"):
        written = sum(page.records for page in pipeline_pages(coll, {}, None, page_size))
    client.close()
    return {
        "documents": n,
        "first_batch_s": first_batch,
        "counted": counted,
        "fast_path_identical": identical,
        "jsonl_bytes": raw_bytes,
        "gzip_bytes": gz_bytes,
        "pipeline_documents": written,
    }


# --- the profile of the real thing ----------------------------------------------------------
_PYMONGO_COLLECTION = "pymongo/synchronous/collection.py"
# Disjoint parts of extract_pnadc, by the function that does them (file suffix, function name).
PARTS = {
    "cursor: wait for the server + decode BSON (pages)": ("sources/mongo/cursor.py", "pages"),
    "relaxed extended JSON (relaxed_lines)": ("sources/mongo/encoding.py", "relaxed_lines"),
    "gzip (level 1), as each batch is encoded": ("sources/mongo/part_body.py", "write"),
    "collection count (reconciliation)": (_PYMONGO_COLLECTION, "estimated_document_count"),
    "count_documents (only if the collection changed)": (_PYMONGO_COLLECTION, "count_documents"),
    "lake.commit (manifest, drop old runs)": ("flows/lake/commits.py", "commit"),
}


def profile(spec: dict[str, Any], marks: Marks, settings: Any) -> dict[str, Any]:
    from flows.lake import Lake
    from flows.sources.mongo import extract_pnadc

    # In process: cProfile sees one process, and the encoding is what there is to see.
    settings = settings.model_copy(update={"mongo_encoder_workers": 0})
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
