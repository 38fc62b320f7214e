"""PNAD Contínua from MongoDB into the raw zone: streamed, keyset-paged, resumable, reconciled.

Each page of `batch_size` documents (keyset on `_id`, never skip/limit) becomes one gzipped part file of
relaxed extended JSON (ObjectId, NaN and every type survive the trip), followed by a checkpoint. A run
that dies resumes after its last checkpoint, in the same run folder; the batch becomes visible only when
its manifest is written, after the count of the extracted `_id` range in the source matched the records
written.

Documents whose `_id` is not an ObjectId cannot be placed by a watermark: a full extraction (the
collection's first run, `--full-refresh`) reads all of them, after the ObjectId stream, as the batch's
last parts; an incremental run leaves them out. They are counted like the rest, and the Spark step
quarantines them ("_id missing or not an ObjectId"), so raw = processing + quarantine still holds.

The modules, in the order a run meets them: `connection` (the client), `ranges` (what a run reads),
`checkpoints` (parts, checkpoints, resuming), `cursor` (the paged cursor), `prefetch` (its batches read
by a thread), `ahead` (its query sent while Prefect starts), `encoding`
(relaxed extended JSON), `reconcile` (the source's count, without a second pass), `extract` (the steps
of one extraction).


Names are imported on first use (PEP 562), so an encoder worker (`encoder_pool`), which needs `batches`
alone, starts without the lake and the settings.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flows.sources.mongo.checkpoints import CHECKPOINTS
    from flows.sources.mongo.connection import connect
    from flows.sources.mongo.cursor import Page, pages
    from flows.sources.mongo.encoding import relaxed_line, relaxed_lines
    from flows.sources.mongo.extract import Extraction, extract_pnadc
    from flows.sources.mongo.prefetch import read_ahead
    from flows.sources.mongo.ranges import NOT_OBJECTID
    from flows.sources.mongo.reconcile import collection_count

_WHERE = {
    "CHECKPOINTS": "checkpoints",
    "connect": "connection",
    "Page": "cursor",
    "pages": "cursor",
    "read_ahead": "prefetch",
    "relaxed_line": "encoding",
    "relaxed_lines": "encoding",
    "Extraction": "extract",
    "extract_pnadc": "extract",
    "NOT_OBJECTID": "ranges",
    "collection_count": "reconcile",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


__all__ = [
    "CHECKPOINTS",
    "NOT_OBJECTID",
    "Extraction",
    "Page",
    "collection_count",
    "connect",
    "extract_pnadc",
    "pages",
    "read_ahead",
    "relaxed_line",
    "relaxed_lines",
]
