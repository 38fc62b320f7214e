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
`checkpoints` (parts, checkpoints, resuming), `cursor` (the read-ahead, paged cursor), `encoding`
(relaxed extended JSON), `reconcile` (the source's count, without a second pass), `extract` (the steps
of one extraction).
"""

from flows.sources.mongo.checkpoints import CHECKPOINTS
from flows.sources.mongo.connection import connect
from flows.sources.mongo.cursor import Page, pages, read_ahead
from flows.sources.mongo.encoding import relaxed_line, relaxed_lines
from flows.sources.mongo.extract import Extraction, extract_pnadc
from flows.sources.mongo.ranges import NOT_OBJECTID
from flows.sources.mongo.reconcile import collection_count

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
