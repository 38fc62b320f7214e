"""Spark settings a step sets for its own plans only, restored afterwards (the session may be shared)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession

WHOLE_STAGE = "spark.sql.codegen.wholeStage"
# Whether expressions and projections are compiled (Janino, then the JIT) or interpreted. Spark's default
# compiles and falls back to its interpreted implementations when a compilation fails; NO_CODEGEN takes them
# at once. An internal setting, checked by tests/spark/test_codegen.py.
FACTORY_MODE = "spark.sql.codegen.factoryMode"
OPEN_COST = "spark.sql.files.openCostInBytes"
CACHE_COMPRESSED = "spark.sql.inMemoryColumnarStorage.compressed"
JSON_EXACT_TEXT = "spark.sql.json.enableExactStringParsing"
# Far above any split size: a file's "cost" alone fills a task, so no two files share one.
ONE_FILE_COST = str(1 << 40)


@contextmanager
def _scoped(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """`key` set to `value` for the plans run inside; the previous value back even if the step fails."""
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)

    def restore() -> None:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)

    try:
        yield
    except BaseException:
        # The step's own exception wins: a JVM ended by the same signal (Terminated) or crash fails the
        # restore too, and that error must not replace the one that says why the step ended.
        with contextlib.suppress(Exception):
            restore()
        raise
    restore()


@contextmanager
def one_file_per_task(spark: SparkSession) -> Iterator[None]:
    """Files read inside are never packed together into one task, whatever the session's parallelism.

    `monotonically_increasing_id` numbers a row by its task and its place in that task. Spark packs small
    files into tasks by a size it derives from the session's parallelism, worked out again for each query:
    on Kubernetes executors join during a step (dynamic allocation), so a second read of the same files
    could pack them otherwise and number the same line differently. One file per task (a gzip file is
    never split) makes the number depend on the files alone. That holds with Spark's defaults for
    `spark.sql.files.maxPartitionNum` (unset: set below the number of files, Spark packs them again, still
    the same way each time) and `maxPartitionBytes` (below a file's "cost" here).
    """
    with _scoped(spark, OPEN_COST, ONE_FILE_COST):
        yield


@contextmanager
def json_values_as_from_json(spark: SparkSession) -> Iterator[None]:
    """Spark's JSON reader, inside, gives a value read as text that is not a JSON string (an object, a
    number) as `from_json` gives it: written again by Jackson, compact (`{"$oid":"…"}`), instead of as the
    line spells it (`{"$oid": "…"}`: Spark 4's exact parsing, which only the reader's byte parser does).

    The PNAD step judges its records parsed by the reader, then types the rejected ones' lines again with
    `from_json` to quarantine them with their raw lines (transforms/pnadc_rejected.py): both must see the
    same text to judge alike (tests/spark/test_io.py checks they parse a batch alike).
    """
    with _scoped(spark, JSON_EXACT_TEXT, "false"):
        yield


@contextmanager
def uncompressed_cache(spark: SparkSession) -> Iterator[None]:
    """Frames persisted inside are cached with their columns as they are, without Spark's in-memory
    encodings (dictionaries, deltas, run lengths). Spark takes the setting when `persist` registers the
    cache (it plans the cache in a copy of the session's settings) and builds the cache with it later.

    The encodings cost CPU to build and pay back when memory is short. The PNAD step caches its typed
    records (a few numbers and short texts a record, well within the JVM's memory) when it checks a raw
    batch for duplicates, and reads them for the check, the rejections' count, the valid write and (when
    some are rejected) the quarantine's. Measured on the step's cache when it cached every batch: built
    for less CPU without them (docs/spark-performance.md, "Kept: the typed records cached
    uncompressed"); the duplicate check's cache is the same frame. Tested in tests/spark/test_step_conf.py."""
    with _scoped(spark, CACHE_COMPRESSED, "false"):
        yield


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
    with _scoped(spark, WHOLE_STAGE, "false"):
        yield


@contextmanager
def interpreted(spark: SparkSession) -> Iterator[None]:
    """Plans run inside take Spark's interpreted operators and expressions instead of generated code (the
    IBGE step's plans then compile nothing: tests/spark/test_codegen.py).

    For the IBGE dimensions (a few hundred rows, then seven small writes, now one job collecting them)
    compiling is a large part of the work on a cold JVM: Janino compiles classes for the projections,
    filters and writers, and the JIT warms up on the compiler. Side by side on fresh JVMs (a step's pod on
    Kubernetes starts one), eleven pairs in turn: the step 1.75 s faster (median; faster in ten pairs), and
    no slower on a warm JVM. A local run's
    three steps took as long either way: its one JVM then compiles its first classes in the PNAD step
    (docs/spark-performance.md). Not for the PNAD step itself: interpreted, its 368,210 documents took
    longer (docs/spark-performance.md, "tried and not kept").
    """
    with _scoped(spark, WHOLE_STAGE, "false"), _scoped(spark, FACTORY_MODE, "NO_CODEGEN"):
        yield
