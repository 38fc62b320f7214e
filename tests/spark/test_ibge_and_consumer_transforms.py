"""IBGE dimensions flattened; the consumer narrowed to the target public and enriched."""

from __future__ import annotations

import json

from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType

from flows.spark.schemas import IBGE_RAW, PNADC, UFS
from flows.spark.transforms.consumer import build_publico_alvo, latest_per_id
from flows.spark.transforms.ibge import flatten, ufs_from_mesorregioes
from tests.support.ibge_server import FIXTURES


def nested(spark: SparkSession, entity: str, records: list[dict] | None = None) -> DataFrame:
    body = json.dumps(records) if records is not None else (FIXTURES / f"{entity}.json").read_text()
    return (
        spark.createDataFrame([(body,)], "value string")
        .select(F.explode(F.from_json("value", ArrayType(IBGE_RAW[entity]))).alias("r"))
        .select("r.*", F.to_json("r").alias("raw_record"))
        .withColumn("ingestion_date", F.lit("2026-11-25"))
        .withColumn("source_file", F.lit(f"{entity}.json"))
    )


def test_mesorregioes_flatten_to_one_row_each_with_uf_and_region(spark: SparkSession) -> None:
    valid, quarantine = flatten("mesorregioes", nested(spark, "mesorregioes"))
    assert valid.count() == 137 and quarantine.count() == 0
    mg = valid.where("uf_sigla = 'MG'")
    assert mg.count() == 12
    row = valid.where("mesorregiao_id = 1101").collect()[0].asDict()
    assert row == {
        "mesorregiao_id": 1101, "mesorregiao_nome": "Madeira-Guaporé", "uf_id": 11, "uf_sigla": "RO",
        "uf_nome": "Rondônia", "regiao_id": 1, "regiao_sigla": "N", "regiao_nome": "Norte",
    }  # fmt: skip


def test_microrregioes_and_regioes_flatten(spark: SparkSession) -> None:
    micro, q1 = flatten("microrregioes", nested(spark, "microrregioes"))
    regioes, q2 = flatten("regioes", nested(spark, "regioes"))
    assert (micro.count(), regioes.count(), q1.count(), q2.count()) == (558, 5, 0, 0)
    assert set(micro.columns) >= {"microrregiao_id", "mesorregiao_id", "uf_sigla", "regiao_nome"}


def test_ufs_are_the_27_states_with_their_region(spark: SparkSession) -> None:
    meso, _ = flatten("mesorregioes", nested(spark, "mesorregioes"))
    ufs = ufs_from_mesorregioes(meso)
    assert ufs.count() == 27
    assert ufs.where("uf_nome = 'Distrito Federal'").select("regiao_nome").collect()[0][0] == "Centro-Oeste"


def test_ibge_records_without_ids_or_names_or_repeated_go_to_quarantine(spark: SparkSession) -> None:
    records = [
        {"id": 1, "sigla": "N", "nome": "Norte"},
        {"id": 2, "sigla": "NE", "nome": None},
        {"id": 1, "sigla": "N", "nome": "Norte de novo"},
        {"sigla": "SE", "nome": "Sudeste"},
    ]
    valid, quarantine = flatten("regioes", nested(spark, "regioes", records))
    assert [r.regiao_nome for r in valid.collect()] == ["Norte"]
    reasons = sorted(r.reason for r in quarantine.collect())
    assert reasons == ["duplicate regiao_id", "regiao_id missing", "regiao_nome missing"]


def _person(
    spark: SparkSession, _id: str, sexo: str, idade: int, uf: str = "Paraná", date: str = "2026-11-25"
):
    return spark.createDataFrame(
        [(_id, 2020, 3, uf, sexo, idade, "Parda", None, None, None, 1000.0, None, 9.0, date, "f")], PNADC
    )


def test_consumer_keeps_women_20_to_40_inclusive_and_adds_region(spark: SparkSession) -> None:
    people = [
        _person(spark, "a", "Mulher", 19),
        _person(spark, "b", "Mulher", 20),
        _person(spark, "c", "Mulher", 40),
        _person(spark, "d", "Mulher", 41),
        _person(spark, "e", "Homem", 30),
        _person(spark, "f", "Mulher", 30, uf="Distrito Federal"),
    ]
    pnadc = people[0]
    for p in people[1:]:
        pnadc = pnadc.unionByName(p)
    ufs = spark.createDataFrame(
        [(41, "PR", "Paraná", 4, "S", "Sul"), (53, "DF", "Distrito Federal", 5, "CO", "Centro-Oeste")], UFS
    )
    out = build_publico_alvo(pnadc, ufs).select("_id", "uf_sigla", "regiao_nome").orderBy("_id")
    expected = spark.createDataFrame(
        [("b", "PR", "Sul"), ("c", "PR", "Sul"), ("f", "DF", "Centro-Oeste")],
        "_id string, uf_sigla string, regiao_nome string",
    )
    assert_df_equality(out, expected, ignore_nullable=True)


def test_latest_ingestion_wins_per_id(spark: SparkSession) -> None:
    old = _person(spark, "a", "Mulher", 25, date="2026-11-24")
    new = _person(spark, "a", "Mulher", 26, date="2026-11-25")
    out = latest_per_id(old.unionByName(new))
    assert [(r.idade, r.ingestion_date) for r in out.collect()] == [(26, "2026-11-25")]
