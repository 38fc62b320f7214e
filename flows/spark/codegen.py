"""Spark settings a step sets for its own plans only, restored afterwards (the session may be shared)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession

WHOLE_STAGE = "spark.sql.codegen.wholeStage"


@contextmanager
def without_whole_stage_codegen(spark: SparkSession) -> Iterator[None]:
    """Plans run inside use per-expression code generation instead of whole-stage code generation.

    The PNAD typing is ~200 expressions over 14 fields. Fused into one stage, Spark generated a
    `processNext` of ~22 KB of bytecode, above the JVM's default 8,000-byte limit for JIT compilation
    (`DontCompileHugeMethods`), so the hottest loop of the step ran interpreted (Spark logs "Generated
    method too long to be JIT compiled"); per-expression projections, split into small methods the JIT
    compiles, took about a third less CPU per document. The JVM options (flows/spark/jvm.py) have since
    lifted that limit, and whole-stage codegen measured no faster with it (docs/spark-performance.md), so
    this stays: it also holds on a JVM started without those options. Only the plans run inside are
    affected; the previous value is restored even if the step fails.
    """
    before = spark.conf.get(WHOLE_STAGE, None)
    spark.conf.set(WHOLE_STAGE, "false")
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(WHOLE_STAGE)
        else:
            spark.conf.set(WHOLE_STAGE, before)
