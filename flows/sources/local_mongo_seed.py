"""What the embedded MongoDB (flows/sources/embedded_mongo.py) is seeded with: generated PNAD-like documents,
and a record of their seed beside them."""

from __future__ import annotations

import logging
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from flows.errors import SourceUnavailable
from flows.generator import generate

log = logging.getLogger(__name__)


# A collection beside the documents that says what generated them, so a run asking for other documents
# is told (the row count alone would not tell a different `--seed`).
SEEDED_WITH = "vamosjuntos_seeded_with"


def seed(uri: str, database: str, collection: str, rows: int, seed_value: int) -> int:
    """Fill an empty collection with `rows` generated documents, and record the seed beside them (in
    SEEDED_WITH); an already seeded one is left alone."""
    client: MongoClient[Any] = MongoClient(uri, serverSelectionTimeoutMS=10_000)
    try:
        coll = client[database][collection]
        # The record first: SecantusDB reads every document to count them, or to find any one of them
        # (3-7 s each at 368,210 documents), and finds the record by its `_id` at once.
        if client[database][SEEDED_WITH].find_one({"_id": collection}) or coll.estimated_document_count():
            log.info("%s.%s already holds documents: not seeding", database, collection)
            return 0
        inserted = 0
        for chunk in generate(rows, seed_value):
            coll.insert_many(chunk, ordered=False)
            inserted += len(chunk)
        client[database][SEEDED_WITH].replace_one(
            {"_id": collection}, {"_id": collection, "rows": inserted, "seed": seed_value}, upsert=True
        )
        return inserted
    except PyMongoError as exc:
        raise SourceUnavailable(f"Seeding the embedded MongoDB at {uri} failed: {exc}") from exc
    finally:
        client.close()


def held_documents(uri: str, database: str, collection: str) -> tuple[str, int, int | None]:
    """What the collection holds: what seeded it, as recorded ("seeded", rows, seed), or, in a folder seeded
    before the record was kept, its count ("counted", documents, None)."""
    with MongoClient(uri, serverSelectionTimeoutMS=10_000) as client:
        seeded = client[database][SEEDED_WITH].find_one({"_id": collection})
        if seeded is not None:
            return "seeded", int(seeded["rows"]), int(seeded["seed"])
        return "counted", client[database][collection].estimated_document_count(), None
