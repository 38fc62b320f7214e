"""A frame cached inside `uncompressed_cache` keeps its columns without Spark's in-memory encodings; after it,
and after `without_whole_stage_codegen`, the session's setting is as it was, even when the step fails."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from flows.spark.step_conf import (
    CACHE_COMPRESSED,
    WHOLE_STAGE,
    uncompressed_cache,
    without_whole_stage_codegen,
)


def _cached_bytes(df: DataFrame) -> int:
    """What `df`, persisted in memory and counted, takes in Spark's block store."""
    df.persist(StorageLevel.MEMORY_ONLY)
    try:
        df.count()
        return sum(info.memSize() for info in df.sparkSession.sparkContext._jsc.sc().getRDDStorageInfo())
    finally:
        df.unpersist(blocking=True)


def test_inside_a_cache_keeps_the_same_rows_without_the_encodings(spark: SparkSession) -> None:
    # Long runs of one value, which Spark's run-length and dictionary encodings store in a few bytes.
    query = "SELECT id, id % 3 AS code, CAST(id % 2 AS STRING) AS flag FROM range(200000)"
    compressed_bytes = _cached_bytes(spark.sql(query))
    with uncompressed_cache(spark):
        plain_bytes = _cached_bytes(spark.sql(query))
        plain = spark.sql(query).persist(StorageLevel.MEMORY_ONLY)
        try:
            assert sorted(plain.collect()) == sorted(spark.sql(query).collect())
        finally:
            plain.unpersist(blocking=True)
    assert plain_bytes > 1.5 * compressed_bytes
    assert _cached_bytes(spark.sql(query)) == compressed_bytes  # Spark's encodings again outside


Scope = Callable[[SparkSession], AbstractContextManager[None]]
SCOPED: list[tuple[Scope, str]] = [
    (without_whole_stage_codegen, WHOLE_STAGE),
    (uncompressed_cache, CACHE_COMPRESSED),
]


@pytest.mark.parametrize("before", [None, "true"])
@pytest.mark.parametrize(("scope", "key"), SCOPED, ids=[k for _, k in SCOPED])
def test_the_setting_is_restored_even_when_the_step_fails(
    spark: SparkSession, scope: Scope, key: str, before: str | None
) -> None:
    if before is None:
        spark.conf.unset(key)
    else:
        spark.conf.set(key, before)
    with pytest.raises(RuntimeError), scope(spark):
        assert spark.conf.get(key) == "false"
        raise RuntimeError("the step failed")
    assert spark.conf.get(key) == "true"  # Spark's default, or the value it had
    spark.conf.unset(key)
