"""The PNAD step's plans run without whole-stage code generation, the IBGE step's without any generated
code; both give the same rows, and leave the session's settings as they found them (the PNAD scope's
restore on failure is tested in tests/spark/test_step_conf.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from flows.lake import Lake
from flows.settings import Settings
from flows.spark.jobs import ibge_to_processing
from flows.spark.step_conf import FACTORY_MODE, WHOLE_STAGE, interpreted, without_whole_stage_codegen
from flows.spark.transforms.pnadc import clean_pnadc, type_pnadc
from tests.spark.test_pnadc_transform import REJECTS, UFS, doc, lines
from tests.spark.test_steps import DATE, land_ibge_snapshot


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


def _compiled(spark: SparkSession) -> int:
    """How many classes Spark's code generator has compiled in this JVM (Janino)."""
    return int(spark._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME().getCount())


def test_interpreted_plans_compile_nothing_and_give_the_same_rows(spark: SparkSession) -> None:
    # A query no earlier test compiled (the generated code is cached by its text).
    query = "SELECT id * 7907 + 19 AS x, concat('v', id) AS v FROM range(200) WHERE (id * 7907 + 19) % 5 = 1"
    before = _compiled(spark)
    with interpreted(spark):
        inside = spark.sql(query).collect()
        assert spark.conf.get(FACTORY_MODE) == "NO_CODEGEN"
    assert _compiled(spark) == before
    outside = spark.sql(query).collect()
    assert _compiled(spark) > before  # the same query outside is compiled
    assert inside == outside and len(inside) == 40


def test_the_ibge_step_computes_its_tables_interpreted(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its one Spark job (every table collected) runs with no generated code: the setting seen when it
    runs is the test. (The compile count is checked too, but a JVM that compiled these plans before would
    compile nothing new either way: Spark caches generated code by its text.)"""
    settings = Settings(lake_root=str(tmp_path / "lake"), spark_remote=None)
    land_ibge_snapshot(Lake(settings))
    modes: list[str] = []
    collect = ibge_to_processing.collect_tables

    def watched(frames):  # type: ignore[no-untyped-def]
        modes.append(spark.conf.get(FACTORY_MODE))
        return collect(frames)

    monkeypatch.setattr(ibge_to_processing, "collect_tables", watched)
    before = _compiled(spark)

    result = ibge_to_processing.run(settings, DATE, spark)

    assert modes == ["NO_CODEGEN"]
    assert _compiled(spark) == before
    assert {e: r["records"] for e, r in result.items()} == {
        "regioes": 5,
        "mesorregioes": 137,
        "microrregioes": 558,
    }
    assert result["mesorregioes"]["ufs"] == 27
    assert spark.conf.get(FACTORY_MODE) == "FALLBACK"  # restored


@pytest.mark.parametrize("before", [None, "CODEGEN_ONLY"])
def test_interpreted_restores_the_setting_even_when_the_step_fails(
    spark: SparkSession, before: str | None
) -> None:
    if before is None:
        spark.conf.unset(FACTORY_MODE)
    else:
        spark.conf.set(FACTORY_MODE, before)
    with pytest.raises(RuntimeError), interpreted(spark):
        assert (spark.conf.get(FACTORY_MODE), spark.conf.get(WHOLE_STAGE)) == ("NO_CODEGEN", "false")
        raise RuntimeError("the step failed")
    assert spark.conf.get(FACTORY_MODE) == (before or "FALLBACK")  # the value it had, or Spark's default
    assert spark.conf.get(WHOLE_STAGE) == "true"
    spark.conf.unset(FACTORY_MODE)
