"""raw PNAD lines → typed records + quarantine: the contract, one rule at a time."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from chispa.dataframe_comparer import DataFramesNotEqualError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from flows.generator import UF_WEIGHTS
from flows.spark.schemas import PNADC, QUARANTINE
from flows.spark.step_conf import one_file_per_task
from flows.spark.transforms.pnadc import (
    clean_pnadc,
    judge_pnadc,
    mark_duplicates,
    split_judged,
    type_pnadc,
    with_raw_lines,
)

UFS = list(UF_WEIGHTS)
MIN_PARTITIONS = "spark.sql.files.minPartitionNum"
OID = "600ce0695daa95c66162e3f7"
GOOD: dict[str, Any] = {
    "_id": {"$oid": OID},
    "ano": 2020,
    "trimestre": 3,
    "uf": "Pará",
    "sexo": "Homem",
    "idade": 48,
    "cor": "Parda",
    "trab": "Pessoas na força de trabalho",
    "ocup": "Pessoas ocupadas",
    "renda": 5500.0,
    "horastrab": 44.0,
    "anosesco": 12.0,
}


def lines(spark: SparkSession, *texts: str, file: str = "part-00000.jsonl.gz") -> DataFrame:
    rows = [(t, "2026-11-25", file, i) for i, t in enumerate(texts)]
    return spark.createDataFrame(
        rows, "value string, ingestion_date string, source_file string, line_no long"
    )


def doc(**changes: Any) -> str:
    d = {**GOOD, **changes}
    return json.dumps({k: v for k, v in d.items() if v is not ...}, ensure_ascii=False)


def expected_row(**changes: Any) -> dict[str, Any]:
    row = {
        "_id": OID, "ano": 2020, "trimestre": 3, "uf": "Pará", "sexo": "Homem", "idade": 48, "cor": "Parda",
        "graduacao": None, "trab": "Pessoas na força de trabalho", "ocup": "Pessoas ocupadas",
        "renda": 5500.0, "horastrab": 44.0, "anosesco": 12.0,
        "ingestion_date": "2026-11-25", "source_file": "part-00000.jsonl.gz",
    }  # fmt: skip
    row.update(changes)
    return row


def test_a_valid_document_is_typed_exactly(spark: SparkSession) -> None:
    valid, quarantine = clean_pnadc(lines(spark, doc()), UFS)
    expected = spark.createDataFrame([expected_row()], PNADC)
    assert_df_equality(valid, expected, ignore_nullable=True)
    assert quarantine.count() == 0


@pytest.mark.parametrize(
    "missing",
    [None, {"$numberDouble": "NaN"}, ...],
    ids=["null", "NaN", "absent"],
)
def test_null_nan_and_absent_all_become_null(spark: SparkSession, missing: Any) -> None:
    text = doc(renda=missing, graduacao=missing, ocup=missing)
    valid, quarantine = clean_pnadc(lines(spark, text), UFS)
    expected = spark.createDataFrame([expected_row(renda=None, graduacao=None, ocup=None)], PNADC)
    assert_df_equality(valid, expected, ignore_nullable=True)
    assert quarantine.count() == 0


def test_text_is_trimmed_and_lossless_numbers_are_accepted(spark: SparkSession) -> None:
    text = doc(
        sexo="  Homem ", idade={"$numberLong": "48"}, ano="2020", anosesco={"$numberInt": "12"}, cor=""
    )
    valid, _ = clean_pnadc(lines(spark, text), UFS)
    expected = spark.createDataFrame([expected_row(cor=None)], PNADC)
    assert_df_equality(valid, expected, ignore_nullable=True)


def test_decimal_notation_in_every_form_is_accepted_at_the_range_bounds(spark: SparkSession) -> None:
    texts = [
        doc(_id={"$oid": f"{i:024x}"}, renda=r, horastrab=h, idade=a)
        for i, (r, h, a) in enumerate(
            [("5.5e3", "+44", " 48 "), (0.0, 168.0, "4.8E1"), ("1e7", 0, "48.0"), ("-0", "44.", "048")]
        )
    ]
    valid, quarantine = clean_pnadc(lines(spark, *texts), UFS)
    assert quarantine.count() == 0
    rows = sorted((r.renda, r.horastrab, r.idade) for r in valid.collect())
    assert rows == [(0.0, 44.0, 48), (0.0, 168.0, 48), (5500.0, 44.0, 48), (10_000_000.0, 0.0, 48)]


def test_a_broken_transform_would_fail_the_equality(spark: SparkSession) -> None:
    """Guards the guard: the equality helper really compares values."""
    valid, _ = clean_pnadc(lines(spark, doc(renda=5501.0)), UFS)
    expected = spark.createDataFrame([expected_row()], PNADC)
    with pytest.raises(DataFramesNotEqualError):
        assert_df_equality(valid, expected, ignore_nullable=True)


REJECTS = [
    ('{"_id": {"$oid": "600ce0695daa95c66162e3f7"}, "idade": 4', "unparseable JSON"),
    ("[1, 2, 3]", "unparseable JSON"),
    ("", "unparseable JSON"),
    (doc(_id="not-an-object-id"), "_id missing or not an ObjectId"),
    (doc(_id=...), "_id missing or not an ObjectId"),
    (doc(idade=48.5), "idade: not a lossless integer"),
    (doc(idade="quarenta"), "idade: not a lossless integer"),
    # Beyond a long: a floor() over them would overflow and fail the whole step, not quarantine a line.
    (doc(idade=1e300), "idade: not a lossless integer"),
    (doc(idade=-1e20), "idade: not a lossless integer"),
    (doc(idade={"$numberDouble": "Infinity"}), "idade: not a lossless integer"),
    (doc(ano={"$numberDouble": "-Infinity"}), "ano: not a lossless integer"),
    (doc(idade=3e9), "idade: not a lossless integer"),
    (doc(renda="1.300,00"), "renda: not a lossless number"),
    (doc(renda=True), "renda: not a lossless number"),
    (doc(renda={"$numberDouble": "Infinity"}), "renda: not a lossless number"),
    # Java's number parsing (Spark's cast) reads these; the contract's numbers are decimal only.
    (doc(idade="30d"), "idade: not a lossless integer"),
    (doc(idade={"$numberInt": "30D"}), "idade: not a lossless integer"),
    (doc(renda="0x1p10"), "renda: not a lossless number"),
    (doc(renda={"$numberDouble": "0x1p10"}), "renda: not a lossless number"),
    (doc(renda="2500f"), "renda: not a lossless number"),
    (doc(anosesco="Infinity"), "anosesco: not a lossless number"),
    # Beyond what the contract holds plausibly: negative or absurd incomes never reach an average.
    (doc(renda=-0.01), "renda outside 0-10000000"),
    (doc(renda=1.7e308), "renda outside 0-10000000"),
    (doc(renda={"$numberDouble": "-1E3"}), "renda outside 0-10000000"),
    (doc(horastrab=169.0), "horastrab outside 0-168"),
    (doc(anosesco=-1), "anosesco outside 0-40"),
    (doc(uf={"nome": "Pará"}), "uf: not a lossless text"),
    (doc(idade=131), "idade outside 0-130"),
    (doc(idade=-1), "idade outside 0-130"),
    (doc(sexo="M"), "sexo not in domain: M"),
    (doc(cor="Verde"), "cor not in domain: Verde"),
    (doc(trab="Sim"), "trab not in domain: Sim"),
    (doc(graduacao="Talvez"), "graduacao not in domain: Talvez"),
    (doc(uf="PA"), "uf not an IBGE state: PA"),
    (doc(uf="Atlântida"), "uf not an IBGE state: Atlântida"),
    (doc(uf=None), "uf not an IBGE state: null"),
]


@pytest.mark.parametrize(("text", "reason"), REJECTS, ids=[r[1] + f" #{i}" for i, r in enumerate(REJECTS)])
def test_each_contract_breach_is_quarantined_with_its_reason(
    spark: SparkSession, text: str, reason: str
) -> None:
    valid, quarantine = clean_pnadc(lines(spark, text, doc(_id={"$oid": "600ce0695daa95c66162e3f8"})), UFS)
    rows = quarantine.collect()
    assert valid.count() == 1  # the good neighbour is untouched
    assert len(rows) == 1
    assert reason in rows[0].reason.split("; ")
    assert rows[0].raw_record == text
    assert (rows[0].source, rows[0].ingestion_date, rows[0].source_file) == (
        "pnadc",
        "2026-11-25",
        "part-00000.jsonl.gz",
    )


def test_duplicate_ids_keep_the_first_copy_in_file_order(spark: SparkSession) -> None:
    first, second = doc(renda=1.0), doc(renda=2.0)
    df = lines(spark, first, second).unionByName(lines(spark, doc(renda=3.0), file="part-00001.jsonl.gz"))
    valid, quarantine = clean_pnadc(df, UFS)
    assert [r.renda for r in valid.collect()] == [1.0]
    assert sorted(r.raw_record for r in quarantine.collect()) == sorted([second, doc(renda=3.0)])
    assert {r.reason for r in quarantine.collect()} == {"duplicate _id"}


def test_the_raw_line_stays_behind_and_comes_back_for_the_quarantine_only(spark: SparkSession) -> None:
    """The typed records (cached by the step) do not carry the raw line; the quarantine gets each record's
    own line back by (file, line number: both files have a line 0), broadcast or shuffled alike."""
    texts = [doc(), doc(idade=200), doc(_id={"$oid": "600ce0695daa95c66162e3f8"}, sexo="?")]
    df = lines(spark, *texts).unionByName(lines(spark, doc(renda=-1.0), doc(), file="part-00001.jsonl.gz"))
    assert "value" not in type_pnadc(df, UFS).columns
    _, rejected = split_judged(judge_pnadc(df, UFS))
    assert "raw_record" not in rejected.columns
    broadcast, shuffled = (with_raw_lines(rejected, df, broadcast=b) for b in (True, False))
    want = {(texts[1], "part-00000.jsonl.gz"), (texts[2], "part-00000.jsonl.gz")}
    want |= {
        (doc(renda=-1.0), "part-00001.jsonl.gz"),
        (doc(), "part-00001.jsonl.gz"),
    }  # the last: a duplicate
    for quarantine in (broadcast, shuffled):
        assert [(f.name, f.dataType) for f in quarantine.schema] == [(f.name, f.dataType) for f in QUARANTINE]
        assert sorted((r.raw_record, r.source_file) for r in quarantine.collect()) == sorted(want)


def test_no_quarantine_reads_no_raw_line(spark: SparkSession, tmp_path: Path) -> None:
    """What the step relies on when nothing is quarantined: the lines `limit(0)` are never read."""
    (tmp_path / "part-00000.jsonl").write_text(doc() + "\n")
    df = spark.read.text(str(tmp_path)).select(
        "value",
        F.lit("2026-11-25").alias("ingestion_date"),
        F.lit("part-00000.jsonl").alias("source_file"),
        F.monotonically_increasing_id().alias("line_no"),
    )
    _, rejected = split_judged(judge_pnadc(df, UFS))
    scans = _plan(rejected).count("FileScan")  # the typing's own read
    assert _plan(with_raw_lines(rejected, df)).count("FileScan") == scans + 1  # and the lines'
    empty = with_raw_lines(rejected, df.limit(0))
    assert "FileScan" not in _plan(empty) and empty.count() == 0  # an empty result, planned as one


def test_a_quarantined_line_is_found_again_whatever_the_parallelism(
    spark: SparkSession, tmp_path: Path
) -> None:
    """The step reads the raw lines twice (typing, then the quarantine's lines), and on Kubernetes the
    session's parallelism may change in between (executors joining). Two gzip parts that Spark packs into
    one task at a parallelism of 1 but not at 8 (`minPartitionNum` stands in for the executors): inside
    `one_file_per_task` each record gets its own line back; outside it the second file's lines are
    numbered otherwise and not found (the count check then stops the step)."""
    first = [doc(_id={"$oid": f"{i:024x}"}) for i in range(20)]
    second = [doc(_id={"$oid": "f" * 24}, idade=200), doc(_id={"$oid": "e" * 24}, sexo="?")]
    for name, texts in (("part-00000.jsonl.gz", first), ("part-00001.jsonl.gz", second)):
        (tmp_path / name).write_bytes(gzip.compress("\n".join(texts).encode() + b"\n"))

    def quarantined_lines() -> list[str]:
        spark.conf.set(MIN_PARTITIONS, "1")
        df = spark.read.text(str(tmp_path)).select(
            "value",
            F.lit("2026-11-25").alias("ingestion_date"),
            F.element_at(F.split(F.input_file_name(), "/"), -1).alias("source_file"),
            F.monotonically_increasing_id().alias("line_no"),
        )
        typed = type_pnadc(df, UFS).cache()
        try:
            _, rejected = split_judged(mark_duplicates(typed))
            assert rejected.count() == 2  # numbered at a parallelism of 1, and kept in the cache
            spark.conf.set(MIN_PARTITIONS, "8")
            return sorted(r.raw_record for r in with_raw_lines(rejected, df).collect())
        finally:
            typed.unpersist()
            spark.conf.unset(MIN_PARTITIONS)

    with one_file_per_task(spark):
        assert quarantined_lines() == sorted(second)
    assert quarantined_lines() == []  # packed otherwise: numbered otherwise


def test_a_line_under_another_lines_number_is_never_taken_for_it(spark: SparkSession) -> None:
    bad = [doc(idade=200), doc(_id={"$oid": "f" * 24}, sexo="?")]
    _, rejected = split_judged(judge_pnadc(lines(spark, doc(), *bad), UFS))
    swapped = lines(spark, doc(), *reversed(bad))  # the same numbers, each on the other's line
    assert rejected.count() == 2 and with_raw_lines(rejected, swapped).count() == 0
    assert sorted(
        r.raw_record for r in with_raw_lines(rejected, lines(spark, doc(), *bad)).collect()
    ) == sorted(bad)


def _plan(frame: DataFrame) -> str:
    return frame._jdf.queryExecution().executedPlan().toString()


def test_every_line_comes_out_exactly_once(spark: SparkSession) -> None:
    texts = [doc(_id={"$oid": f"{i:024x}"}) for i in range(50)] + [t for t, _ in REJECTS]
    valid, quarantine = clean_pnadc(lines(spark, *texts), UFS)
    assert valid.count() + quarantine.count() == len(texts)
    assert valid.count() == 50


# Strings where a cheap test could disagree with the regex it stands in for: case, length, line breaks
# (Java's `$` also matches before a final one), look-alike digits, near-miss prefixes.
TRICKY = [
    None, "", " ", "48", " 48 ", "[a]", "{x}", "[x", "x]", "{x}\n", "{x}\r\n", "[x]\u2028", "{x} ", " {x}",
    '{"$numberDouble":"NaN"}', '{"$numberDouble":"NaN"}\n', '{"$numberDouble":"NaN"}\r',
    '{"$numberDouble":"NaN"} ',
    '{"$numberDouble":"nan"}', '{"$numberInt":"48"}', '{"$numberLong":"7"}\n', '{"$numberDecimal":"1.5"}',
    '{"$numberFloat":"1"}', '{"$numberInt":""}', '{"$numberInt":48}', '{"$number',
    f'{{"$oid":"{OID}"}}', f'{{"$oid":"{OID.upper()}"}}', f'{{"$oid":"{OID}"}}\n', f'{{"$oid":"{OID}"}} ',
    f'{{"$oid":"{OID[:-1]}"}}', f'{{"$oid":"{OID}a"}}', f'{{"$oid":"{OID[:-1]}g"}}',
    f'{{"$oid":"{OID[:-1]}６"}}',
    f'{{"$oid":"{OID[:-1]}é"}}', f'{{"$oid":"{OID}","x":1}}', f'{{"$oid": "{OID}"}}', '{"$oid":""}', OID,
]  # fmt: skip


def test_cheap_tests_give_what_the_regular_expressions_give(spark: SparkSession) -> None:
    """The prefix tests and the ObjectId fast path stand in for regexes: on every tricky string they agree."""
    from pyspark.sql import functions as F

    from flows.spark.transforms import pnadc

    raw = F.col("raw")
    pairs = {
        "number_text": (
            F.expr(pnadc._number_text("raw")),
            F.when(raw.isNull() | raw.rlike(pnadc._NAN), F.lit(None))
            .when(raw.rlike(pnadc._WRAPPED_NUMBER), F.regexp_extract(raw, pnadc._WRAPPED_NUMBER, 1))
            .otherwise(F.trim(raw)),
        ),
        "text_nan": (F.expr(pnadc._is_nan("raw")), raw.rlike(pnadc._NAN)),
        "object_as_text": (F.expr(pnadc._object_as_text("raw")), raw.rlike(r"^[\[{]") & raw.rlike(r"[\]}]$")),
        "object_id": (
            F.expr(pnadc._object_id("raw")),
            F.nullif(F.regexp_extract(raw, pnadc._OID, 1), F.lit("")),
        ),
    }
    df = spark.createDataFrame([(t,) for t in TRICKY], "raw string")
    got = df.select("raw", *[F.struct(a.alias("a"), b.alias("b")).alias(n) for n, (a, b) in pairs.items()])
    for row in got.collect():
        for name in pairs:
            assert row[name].a == row[name].b, (name, row.raw)
    # canonical, upper case, and with a final line break (which `$` accepts)
    assert df.select(F.expr(pnadc._object_id("raw")).alias("id")).where("id is not null").count() == 3


def test_duplicate_check_never_shuffles_the_records(spark: SparkSession) -> None:
    """Only `_id`s are shuffled (the aggregate); the repeated ids are broadcast back to the records."""
    from flows.spark.transforms.pnadc import judge_pnadc

    plan = judge_pnadc(lines(spark, doc(), doc()), UFS)._jdf.queryExecution().executedPlan().toString()
    assert "BroadcastHashJoin" in plan
    assert "SortMergeJoin" not in plan and "ShuffledHashJoin" not in plan
    assert plan.count("Exchange hashpartitioning") == 1  # the aggregate's, on `_id`
