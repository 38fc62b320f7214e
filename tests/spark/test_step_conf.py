"""A frame persisted inside `uncompressed_cache` is cached without Spark's in-memory encodings, with the same
rows, even when the cache is first built after the scope; after it, and after `without_whole_stage_codegen`,
the session's setting is as it was, even when the step fails."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from pyspark import StorageLevel
from pyspark.sql import SparkSession

from flows.spark.step_conf import (
    CACHE_COMPRESSED,
    JSON_EXACT_TEXT,
    WHOLE_STAGE,
    json_values_as_from_json,
    uncompressed_cache,
    without_whole_stage_codegen,
)

# Sequential ids and a handful of distinct values, which Spark's delta and dictionary encodings store in a
# byte or two each.
QUERY = "SELECT id, id % 3 AS code, CAST(id % 2 AS STRING) AS flag FROM range(50000)"
EXPECTED = [(i, i % 3, str(i % 2)) for i in range(50000)]


def _cache(spark: SparkSession, name: str) -> None:
    """QUERY registered as a cache in memory under `name` (built when first read)."""
    spark.sql(QUERY).createOrReplaceTempView(name)
    spark.catalog.cacheTable(name, StorageLevel.MEMORY_ONLY)


def _read_cache(spark: SparkSession, name: str) -> tuple[int, list[tuple[int, int, str]]]:
    """The cache `name` built and read, then dropped: the bytes it took in Spark's block store (that cache's
    alone: the session is shared with other tests) and its rows."""
    try:
        rows = [tuple(r) for r in spark.table(name).collect()]
        # Spark's storage report follows the block manager's events: wait until every partition is in it.
        deadline = time.monotonic() + 30
        while True:
            infos = spark.sparkContext._jsc.sc().getRDDStorageInfo()
            cached = [info for info in infos if name in info.name()]
            if cached and cached[0].numCachedPartitions() == cached[0].numPartitions():
                break
            assert time.monotonic() < deadline, [(i.name(), i.numCachedPartitions()) for i in infos]
            time.sleep(0.1)
        assert len(cached) == 1, [info.name() for info in infos]
        return cached[0].memSize(), rows
    finally:
        spark.catalog.uncacheTable(name)
        spark.catalog.dropTempView(name)


def test_inside_a_cache_keeps_the_same_rows_without_the_encodings(spark: SparkSession) -> None:
    spark.conf.unset(CACHE_COMPRESSED)  # Spark's default, whatever another test left
    _cache(spark, "encoded_outside")
    encoded_bytes, encoded_rows = _read_cache(spark, "encoded_outside")
    with uncompressed_cache(spark):
        _cache(spark, "plain_inside")
        plain_bytes, plain_rows = _read_cache(spark, "plain_inside")
    _cache(spark, "encoded_again")
    again_bytes, _ = _read_cache(spark, "encoded_again")

    assert sorted(plain_rows) == sorted(encoded_rows) == EXPECTED
    assert plain_bytes > 1.5 * encoded_bytes
    assert again_bytes == encoded_bytes  # Spark's encodings again outside


def test_a_cache_registered_inside_is_built_without_the_encodings_later(spark: SparkSession) -> None:
    """Spark takes the setting when the cache is registered (`persist`), not when it is first read."""
    spark.conf.unset(CACHE_COMPRESSED)
    _cache(spark, "encoded")
    encoded_bytes, _ = _read_cache(spark, "encoded")
    with uncompressed_cache(spark):
        _cache(spark, "registered_inside")
    plain_bytes, rows = _read_cache(spark, "registered_inside")  # built here, after the scope
    assert sorted(rows) == EXPECTED
    assert plain_bytes > 1.5 * encoded_bytes


Scope = Callable[[SparkSession], AbstractContextManager[None]]
SCOPED: list[tuple[Scope, str]] = [
    (without_whole_stage_codegen, WHOLE_STAGE),
    (uncompressed_cache, CACHE_COMPRESSED),
    (json_values_as_from_json, JSON_EXACT_TEXT),
]


@pytest.mark.parametrize("before", [None, "false"])
@pytest.mark.parametrize(("scope", "key"), SCOPED, ids=[k for _, k in SCOPED])
def test_the_setting_is_restored_even_when_the_step_fails(
    spark: SparkSession, scope: Scope, key: str, before: str | None
) -> None:
    """Each setting is "true" by default and "false" inside: a session that had set "false" itself gets
    it back, and one that had not gets Spark's default."""
    if before is None:
        spark.conf.unset(key)
    else:
        spark.conf.set(key, before)
    with pytest.raises(RuntimeError), scope(spark):
        assert spark.conf.get(key) == "false"
        raise RuntimeError("the step failed")
    assert spark.conf.get(key) == (before or "true")
    spark.conf.unset(key)
