"""`python -m flows.sources.secantus_daemon`: SecantusDB's own daemon (`python -m secantus`, the same
arguments), with a start that no longer reads every document's key.

On start SecantusDB recovers its insertion counter, the largest RecordId of any document
(`Storage._scan_max_nat_seq`). SecantusDB 0.7.0b3 finds it by walking every key of every document table
backwards, on every start, in a time that grows with the collection: under cProfile, 6.2 s of the 6.4 s it
took to open a 368,210-document folder. The keys are (database, collection, RecordId) in order, so the
largest RecordId of a collection is its last key: `max_record_id` reads one key per collection and table,
and returns what the walk returns (tests/sources/test_secantus_daemon.py). Measured from the launch until
the port answers, on an idle machine (2026-12-03): 2.5-3.0 s against 0.40-0.51 s on the 368,210-document
folder (three each), 58.3 s against 0.56 s on a 2,000,000-document folder read from disk. (The walk also
brought the document tables into WiredTiger's cache: from a cold disk, the stream now reads what the start
used to, so the second figure is the start's, not a whole run's.) It replaces the walk for that version
only: any other SecantusDB runs as it is, and tests/sources/test_secantus_daemon.py fails on it.
"""

from __future__ import annotations

from typing import Any

import secantus
from secantus import storage

PATCHED_VERSION = "0.7.0b3"


def max_record_id(self: Any) -> int:
    """The largest RecordId in the document tables (0 if none): the last key of each collection."""
    largest = 0
    for shard in range(storage._DOC_SHARDS):
        cursor = self._cursor_optional(storage._doc_shard_name(shard))
        if cursor is None:
            continue  # a table never written
        cursor.reset()
        found = cursor.prev()  # the table's last key: the last collection's largest RecordId
        while found == 0:
            database, collection, record_id = cursor.get_keys()
            largest = max(largest, int(record_id))
            # Then the last key before this collection's first: the previous collection's largest.
            cursor.set_key(database, collection, storage._INT64_MIN)
            exact = cursor.search_near()  # a neighbour of that key: below it (< 0) or this collection's first
            found = 0 if exact < 0 else cursor.prev()
        cursor.reset()
    return largest


def patch() -> bool:
    """Replace the walk with `max_record_id`, on the version it was written for."""
    if secantus.__version__ != PATCHED_VERSION:
        return False
    storage.Storage._scan_max_nat_seq = max_record_id
    return True


if __name__ == "__main__":
    from secantus.cli import main

    patch()
    raise SystemExit(main())
