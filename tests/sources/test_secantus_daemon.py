"""SecantusDB's daemon with the faster start (flows/sources/secantus_daemon.py): the insertion counter it
recovers is the one SecantusDB's own walk recovers, and documents inserted after a restart are all kept,
in insertion order."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import secantus
from pymongo import MongoClient
from secantus import storage
from secantus.storage import Storage

from flows.sources.local_mongo import SecantusProcess
from flows.sources.secantus_daemon import PATCHED_VERSION, max_record_id

# More collections than SecantusDB has document tables (16): some share a table, where the walk and a read of
# each table's last key alone would disagree.
COLLECTIONS = [(database, f"c{k}") for database in ("a", "ibge", "zz") for k in range(8)]


def _both(folder: Path) -> tuple[int, int]:
    """SecantusDB's walk and ours, on the same closed folder."""
    store = Storage(str(folder), enable_oplog=False)
    try:
        return store._scan_max_nat_seq(), max_record_id(store)
    finally:
        store.close()


def _sorting_first_in_a_shared_table(existing: list[tuple[str, str]]) -> tuple[str, str]:
    """One of `existing` whose document table holds another of them, sorting after it."""
    tables: dict[int, list[tuple[str, str]]] = {}
    for name in existing:
        tables.setdefault(storage._doc_shard_hash(*name) % storage._DOC_SHARDS, []).append(name)
    return next(min(names) for names in tables.values() if len(names) > 1)


def test_the_installed_secantusdb_is_the_version_the_start_was_written_for() -> None:
    """Another version runs unpatched, as slowly as before: this says so when SecantusDB is upgraded."""
    assert secantus.__version__ == PATCHED_VERSION


@pytest.mark.integration
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_largest_record_id_is_the_one_secantusdb_s_walk_finds(tmp_path: Path, seed: int) -> None:
    """Several databases and collections, inserted in turn at random, the last documents of some deleted,
    one collection dropped: both give the same largest RecordId."""
    folder, rnd = tmp_path / "mongo", random.Random(seed)
    folder.mkdir()
    assert _both(folder) == (0, 0)  # nothing written yet
    with SecantusProcess(folder) as server, MongoClient(server.uri) as client:
        for i in range(rnd.randint(500, 1500)):
            database, collection = rnd.choice(COLLECTIONS)
            client[database][collection].insert_one({"_id": i})
        client.zz.c7.delete_many({"_id": {"$gt": rnd.randint(0, 1500)}})
        dropped = ("zz", f"c{rnd.randint(0, 6)}")
        client[dropped[0]].drop_collection(dropped[1])
        database, collection = _sorting_first_in_a_shared_table([c for c in COLLECTIONS if c != dropped])
        client[database][collection].insert_one({"_id": "the largest RecordId"})
    walk, ours = _both(folder)
    assert walk == ours > 0


@pytest.mark.integration
def test_documents_inserted_after_a_restart_are_all_kept_in_insertion_order(tmp_path: Path) -> None:
    """The counter recovered at start numbers the next documents after every earlier one: none replaces
    another, and a natural-order read returns them in the order they were inserted, over three starts.
    Standalone (no oplog) SecantusDB keeps no counter of its own between starts, so the one recovered from
    the documents is the one used: this fails with a read of each table's last key alone (checked). (A
    kill instead of a stop loses SecantusDB's last writes, so it cannot stand in for a crash here.)"""
    folder, inserted = tmp_path / "mongo", {f"c{k}": list[str]() for k in range(24)}
    for start in range(3):
        with SecantusProcess(folder) as server, MongoClient(server.uri) as client:
            # In each start the collections that sort last get the smallest RecordIds.
            for i, collection in enumerate(sorted(inserted, reverse=True) * 10):
                key = f"{start}-{i}"
                client.ibge[collection].insert_one({"_id": key})
                inserted[collection].append(key)
            for collection, keys in inserted.items():
                assert [d["_id"] for d in client.ibge[collection].find({}, {"_id": 1})] == keys
    assert _both(folder) == (720, 720)
