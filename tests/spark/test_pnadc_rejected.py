"""The rejected PNAD records found again after one pass: what the judging pass observes, which lines the
quarantine pass types, and the quarantine it builds from them."""

from __future__ import annotations

import dataclasses
import gzip
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from flows.errors import LakeError
from flows.spark.schemas import QUARANTINE
from flows.spark.step_conf import one_file_per_task
from flows.spark.transforms.pnadc import split_judged, type_pnadc, with_raw_lines
from flows.spark.transforms.pnadc_rejected import (
    BLOCK_BITS,
    MAX_BLOCKS,
    Judgement,
    block_bits,
    fingerprint,
    judgement,
    observe_judgement,
    observed_quarantine,
    quarantine_with_lines,
)
from tests.spark.test_pnadc_transform import MIN_PARTITIONS, REJECTS, UFS, _plan, doc, lines

BAD = [text for text, _ in REJECTS]


def _raw_files(tmp_path: Path, files: dict[str, list[str]]) -> str:
    for name, texts in files.items():
        (tmp_path / name).write_bytes(gzip.compress("\n".join(texts).encode() + b"\n"))
    return str(tmp_path)


def _read(spark: SparkSession, folder: str) -> DataFrame:
    """As spark/io.py reads raw lines: numbered by task, one task per file (inside `one_file_per_task`)."""
    return spark.read.text(folder).select(
        "value",
        F.lit("2026-11-25").alias("ingestion_date"),
        F.element_at(F.split(F.input_file_name(), "/"), -1).alias("source_file"),
        F.monotonically_increasing_id().alias("line_no"),
    )


def _good(n: int, start: int = 0) -> list[str]:
    return [doc(_id={"$oid": f"{i:024x}"}) for i in range(start, start + n)]


def test_the_pass_observes_the_records_judged_those_rejected_and_the_blocks_holding_them(
    spark: SparkSession, tmp_path: Path
) -> None:
    files = {
        "part-00000.jsonl.gz": [*_good(40)[:5], BAD[0], *_good(40)[5:], BAD[1]],
        "part-00001.jsonl.gz": [BAD[2], *_good(30, 100), BAD[3]],
    }
    with one_file_per_task(spark):
        df = _read(spark, _raw_files(tmp_path, files))
        observed, observation = observe_judgement(type_pnadc(df, UFS))
        valid = split_judged(observed)[0]
        valid.write.parquet(str(tmp_path / "valid"))
        seen = judgement(observation)
        rejected_numbers = [r.line_no for r in type_pnadc(df, UFS).where("size(reasons) > 0").collect()]

    assert seen is not None
    assert (seen.judged, seen.rejected) == (sum(len(t) for t in files.values()), 4)
    assert spark.read.parquet(str(tmp_path / "valid")).count() == seen.judged - seen.rejected
    assert seen.blocks == tuple(sorted({n >> BLOCK_BITS for n in rejected_numbers}))
    assert len(seen.blocks) == 4  # lines 5 and 41 of the first file, 0 and 31 of the second


def test_the_quarantine_has_the_passs_fingerprint_only_if_it_holds_the_lines_the_pass_rejected(
    spark: SparkSession, tmp_path: Path
) -> None:
    """The count of the records found again cannot tell a line numbered otherwise the second time, found
    in place of another; their fingerprint can."""
    texts = _good(60)
    texts[20], texts[21], texts[50] = BAD[0], BAD[1], BAD[2]
    with one_file_per_task(spark):
        df = _read(spark, _raw_files(tmp_path, {"part-00000.jsonl.gz": texts}))
        observed, observation = observe_judgement(type_pnadc(df, UFS))
        observed.write.format("noop").mode("overwrite").save()
        seen = judgement(observation)
        assert seen is not None and seen.rejected == 3 and seen.fingerprint is not None

        def found_again(lines: DataFrame) -> tuple[int, int | None]:
            quarantine, watched = observed_quarantine(
                type_pnadc(seen.lines_to_type(lines), UFS, keep_line=True)
            )
            rows = quarantine.collect()
            return len(rows), fingerprint(watched)

        # Lines 20 and 21 swap numbers: the same blocks, the same records rejected, each in the other's place.
        swapped = df.withColumn("line_no", F.col("line_no").bitwiseXOR(F.lit(1)))
        assert found_again(df) == (3, seen.fingerprint)
        count, other = found_again(swapped)
    assert count == 3 and other != seen.fingerprint


def test_a_quarantine_whose_fingerprint_spark_did_not_report_fails() -> None:
    class Reported:  # what an observation's `get` returns
        def __init__(self, metrics: dict[str, Any]) -> None:
            self.get = metrics

    with pytest.raises(LakeError, match="Spark reported no fingerprint"):
        fingerprint(Reported({}))
    assert fingerprint(Reported({"fingerprint": None})) is None  # no record: Spark's xor of nothing
    assert fingerprint(Reported({"fingerprint": -7})) == -7


def test_the_quarantine_pass_types_only_the_blocks_holding_a_rejected_record(
    spark: SparkSession, tmp_path: Path
) -> None:
    texts = _good(100)
    texts[37] = BAD[0]  # block 2 (lines 32-47)
    texts[90] = BAD[1]  # block 5 (lines 80-95)
    with one_file_per_task(spark):
        df = _read(spark, _raw_files(tmp_path, {"part-00000.jsonl.gz": texts}))
        seen = Judgement(judged=100, rejected=2, blocks=(2, 5))
        picked = [(r.line_no, r.value) for r in seen.lines_to_type(df).orderBy("line_no").collect()]
        quarantine = quarantine_with_lines(type_pnadc(seen.lines_to_type(df), UFS, keep_line=True))
        rows = quarantine.collect()

    assert picked == [(n, texts[n]) for n in (*range(32, 48), *range(80, 96))]
    assert sorted(r.raw_record for r in rows) == sorted([BAD[0], BAD[1]])
    wider = Judgement(judged=100, rejected=2, blocks=(1,), bits=5)  # blocks of 32 lines
    assert [r.line_no for r in wider.lines_to_type(df).orderBy("line_no").collect()] == list(range(32, 64))
    # The blocks reach Spark as Arrow, not as Python rows: those would start Spark's Python workers.
    assert "ExistingRDD" not in _plan(seen.lines_to_type(df)) and "LocalTableScan" in _plan(
        seen.lines_to_type(df)
    )
    nothing = Judgement(judged=100, rejected=0, blocks=()).lines_to_type(df)
    assert nothing.count() == 0 and "FileScan" not in _plan(nothing)  # no rejection: no line read again
    # At or past half the lines in such blocks, every line is typed: no filter, no set to broadcast.
    assert Judgement(judged=96, rejected=3, blocks=(0, 1, 2)).lines_to_type(df) is df  # 48 of 96 lines
    assert seen.lines_to_type(df) is not df
    assert Judgement(judged=100, rejected=60, blocks=tuple(range(4))).lines_to_type(df) is df


def test_the_blocks_find_their_lines_again_whatever_the_parallelism(
    spark: SparkSession, tmp_path: Path
) -> None:
    """On Kubernetes executors may join between the two reads (`minPartitionNum` stands in for them): two
    gzip parts Spark packs into one task at a parallelism of 1 but not at 8. Inside `one_file_per_task`
    the blocks noted in the first read hold the rejected lines in the second; outside it the second file's
    lines are numbered otherwise and not found (the quarantine's count check then stops the step)."""
    second = [BAD[5], *_good(40, 500), BAD[6]]
    folder = _raw_files(tmp_path, {"part-00000.jsonl.gz": _good(100), "part-00001.jsonl.gz": second})

    def quarantined_lines() -> list[str]:
        spark.conf.set(MIN_PARTITIONS, "1")
        try:
            observed, observation = observe_judgement(type_pnadc(_read(spark, folder), UFS))
            observed.write.format("noop").mode("overwrite").save()
            seen = judgement(observation)
            assert seen is not None and seen.rejected == 2 and len(seen.blocks) == 2
            spark.conf.set(MIN_PARTITIONS, "8")
            picked = type_pnadc(seen.lines_to_type(_read(spark, folder)), UFS, keep_line=True)
            return sorted(r.raw_record for r in quarantine_with_lines(picked).collect())
        finally:
            spark.conf.unset(MIN_PARTITIONS)

    with one_file_per_task(spark):
        assert quarantined_lines() == sorted([BAD[5], BAD[6]])
    assert quarantined_lines() == []  # packed otherwise: numbered otherwise


def test_blocks_grow_with_the_batch_so_that_their_set_stays_bounded() -> None:
    assert block_bits(None) == block_bits(0) == block_bits(2_000_000) == block_bits(MAX_BLOCKS << 4) == 4
    assert BLOCK_BITS == 4
    for size in ((MAX_BLOCKS << 4) + 1, 20_000_000, 10**9):
        bits = block_bits(size)
        # Every line's block (within a file) numbered under MAX_BLOCKS, by blocks no larger than that needs.
        assert (size - 1) >> bits < MAX_BLOCKS <= (size - 1) >> (bits - 1)


def test_the_quarantine_from_lines_typed_with_them_is_the_one_found_by_joining(spark: SparkSession) -> None:
    """Both ways to the quarantine give the same rows, and the quarantine's schema: the records typed with
    their lines (the one pass), or typed without and joined with their lines again (the cached way)."""
    df = lines(spark, *_good(3), *BAD, *_good(2, 50))
    typed_with_lines = type_pnadc(df, UFS, keep_line=True)
    assert "value" in typed_with_lines.columns and "value" not in type_pnadc(df, UFS).columns
    direct = quarantine_with_lines(typed_with_lines)
    joined = with_raw_lines(split_judged(type_pnadc(df, UFS))[1], df)
    for quarantine in (direct, joined):
        assert [(f.name, f.dataType) for f in quarantine.schema] == [(f.name, f.dataType) for f in QUARANTINE]
    rows = Counter(direct.collect())
    assert rows == Counter(joined.collect()) and rows.total() == len(BAD)


def test_a_pass_spark_reported_nothing_for_is_no_judgement() -> None:
    class Reported:  # what an observation's `get` returns
        def __init__(self, metrics: dict[str, Any]) -> None:
            self.get = metrics

    assert judgement(Reported({})) is None
    assert judgement(Reported({"judged": 10, "rejected": None, "blocks": []})) is None
    assert judgement(Reported({"judged": 10, "rejected": 1, "blocks": [7, 3]})) == Judgement(10, 1, (3, 7))


def test_a_report_spark_never_sends_is_waited_for_a_while_not_for_ever(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Observed but never run: a classic session's `Observation.get` would wait for ever for a report Spark
    never completes; the judgement gives up after its wait, with no counts. Run, the same observation is
    reported."""
    df = _read(spark, _raw_files(tmp_path, {"part-00000.jsonl.gz": [*_good(3), BAD[0]]}))
    observed, observation = observe_judgement(type_pnadc(df, UFS))
    assert judgement(observation, wait_s=0.2) is None
    split_judged(observed)[0].write.parquet(str(tmp_path / "valid"))
    seen = judgement(observation)
    assert seen is not None and seen.fingerprint is not None
    assert dataclasses.replace(seen, fingerprint=None) == Judgement(4, 1, (0,))
