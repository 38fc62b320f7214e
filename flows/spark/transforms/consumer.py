"""Processing → consumer: the target public, enriched with its UF and region. Pure."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from flows.spark.schemas import PUBLICO_ALVO

TARGET_SEXO = "Mulher"
TARGET_AGE = (20, 40)  # inclusive at both ends


def latest_per_id(pnadc: DataFrame) -> DataFrame:
    """One row per `_id` across ingestion dates: the latest ingestion wins (incremental reruns)."""
    newest = Window.partitionBy("_id").orderBy(F.col("ingestion_date").desc())
    return pnadc.withColumn("_rank", F.row_number().over(newest)).where("_rank = 1").drop("_rank")


def target_public(pnadc: DataFrame) -> DataFrame:
    lo, hi = TARGET_AGE
    return pnadc.where((F.col("sexo") == TARGET_SEXO) & F.col("idade").between(lo, hi))


def enrich(people: DataFrame, ufs: DataFrame) -> DataFrame:
    """Add UF sigla/id and region from the IBGE dimension; the join key is the UF name as IBGE spells it."""
    dim = ufs.select(
        F.col("uf_nome").alias("uf"), "uf_id", "uf_sigla", "regiao_id", "regiao_sigla", "regiao_nome"
    )
    joined = people.join(F.broadcast(dim), on="uf", how="inner")
    return joined.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in PUBLICO_ALVO.fields])


def build_publico_alvo(pnadc: DataFrame, ufs: DataFrame, *, several_batches: bool = True) -> DataFrame:
    """The target public, enriched. With one batch `_id`s are already unique (the gate checks it), so the
    ranking across batches, a shuffle of every record, is skipped."""
    people = latest_per_id(pnadc) if several_batches else pnadc
    return enrich(target_public(people), ufs)
