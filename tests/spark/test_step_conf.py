"""A frame persisted inside `uncompressed_cache` is cached without Spark's in-memory encodings, with the same
rows; after it, and after `without_whole_stage_codegen`, the session's setting is as it was, even when the
step fails."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from pyspark import StorageLevel
from pyspark.sql import SparkSession

from flows.spark.step_conf import (
    CACHE_COMPRESSED,
    WHOLE_STAGE,
    uncompressed_cache,
    without_whole_stage_codegen,
)

# Sequential ids and a handful of distinct values, which Spark's delta and dictionary encodings store in a
# byte or two each.
QUERY = "SELECT id, id % 3 AS code, CAST(id % 2 AS STRING) AS flag FROM range(50000)"
EXPECTED = [(i, i % 3, str(i % 2)) for i in range(50000)]


def _cached(spark: SparkSession, name: str) -> tuple[int, list[tuple[int, int, str]]]:
    """QUERY cached in memory under `name`: the bytes its cache takes in Spark's block store (that cache's
    alone: the session is shared with other tests), and its rows as read from the cache."""
    spark.sql(QUERY).createOrReplaceTempView(name)
    spark.catalog.cacheTable(name, StorageLevel.MEMORY_ONLY)
    try:
        rows = [tuple(r) for r in spark.table(name).collect()]
        infos = spark.sparkContext._jsc.sc().getRDDStorageInfo()
        cached = [info.memSize() for info in infos if name in info.name()]
        assert len(cached) == 1, [info.name() for info in infos]
        return cached[0], rows
    finally:
        spark.catalog.uncacheTable(name)
        spark.catalog.dropTempView(name)


def test_inside_a_cache_keeps_the_same_rows_without_the_encodings(spark: SparkSession) -> None:
    encoded_bytes, encoded_rows = _cached(spark, "encoded_outside")
    with uncompressed_cache(spark):
        plain_bytes, plain_rows = _cached(spark, "plain_inside")
    again_bytes, _ = _cached(spark, "encoded_again")

    assert sorted(plain_rows) == sorted(encoded_rows) == EXPECTED
    assert plain_bytes > 1.5 * encoded_bytes
    assert again_bytes == encoded_bytes  # Spark's encodings again outside


Scope = Callable[[SparkSession], AbstractContextManager[None]]
SCOPED: list[tuple[Scope, str]] = [
    (without_whole_stage_codegen, WHOLE_STAGE),
    (uncompressed_cache, CACHE_COMPRESSED),
]


@pytest.mark.parametrize("before", [None, "false"])
@pytest.mark.parametrize(("scope", "key"), SCOPED, ids=[k for _, k in SCOPED])
def test_the_setting_is_restored_even_when_the_step_fails(
    spark: SparkSession, scope: Scope, key: str, before: str | None
) -> None:
    """Both settings are "true" by default and "false" inside: a session that had set "false" itself gets
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
