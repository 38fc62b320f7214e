"""The PNAD step's plans run without whole-stage code generation, give the same rows, and leave the
session's setting as they found it."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from flows.spark.step_conf import WHOLE_STAGE, without_whole_stage_codegen
from flows.spark.transforms.pnadc import clean_pnadc, type_pnadc
from tests.spark.test_pnadc_transform import REJECTS, UFS, doc, lines


def _plan(df) -> str:  # type: ignore[no-untyped-def]
    return df._jdf.queryExecution().executedPlan().toString()


def test_inside_the_typing_is_not_fused_into_one_generated_stage(spark: SparkSession) -> None:
    df = lines(spark, doc())
    assert "*(" in _plan(type_pnadc(df, UFS))  # Spark's marker of a whole-stage generated operator
    with without_whole_stage_codegen(spark):
        assert "*(" not in _plan(type_pnadc(df, UFS))
    assert "*(" in _plan(type_pnadc(df, UFS))


def test_the_same_rows_come_out_with_and_without_it(spark: SparkSession) -> None:
    texts = [doc(_id={"$oid": f"{i:024x}"}, renda=float(i)) for i in range(20)]
    texts += [t for t, _ in REJECTS] + [doc(), doc()]
    df = lines(spark, *texts)
    fused = [frame.collect() for frame in clean_pnadc(df, UFS)]
    with without_whole_stage_codegen(spark):
        apart = [frame.collect() for frame in clean_pnadc(df, UFS)]
    for a, b in zip(fused, apart, strict=True):
        assert sorted(a, key=repr) == sorted(b, key=repr)
    assert len(apart[1]) > len(REJECTS)  # every reject, and the later copies of a repeated _id


@pytest.mark.parametrize("before", [None, "true"])
def test_the_setting_is_restored_even_when_the_step_fails(spark: SparkSession, before: str | None) -> None:
    if before is None:
        spark.conf.unset(WHOLE_STAGE)
    else:
        spark.conf.set(WHOLE_STAGE, before)
    with pytest.raises(RuntimeError), without_whole_stage_codegen(spark):
        assert spark.conf.get(WHOLE_STAGE) == "false"
        raise RuntimeError("the step failed")
    assert spark.conf.get(WHOLE_STAGE) == "true"  # Spark's default, or the value it had
    spark.conf.unset(WHOLE_STAGE)
