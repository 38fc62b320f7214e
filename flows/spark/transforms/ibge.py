"""Nested IBGE API records → flat dimensions. Pure: DataFrames in, DataFrames out.

A record missing an id or a name (or repeating an id) cannot be a dimension row: it goes to quarantine,
so raw count = dimension count + quarantine count holds for IBGE as for PNAD.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from flows import layout
from flows.spark.schemas import DIMENSIONS, QUARANTINE

_REGIAO = {"regiao_id": "id", "regiao_sigla": "sigla", "regiao_nome": "nome"}
_UF = {"uf_id": "id", "uf_sigla": "sigla", "uf_nome": "nome"}


def _flat_columns(entity: str) -> dict[str, Column]:
    """Flat column name → path in the nested record."""
    if entity == layout.REGIOES:
        return {k: F.col(v) for k, v in _REGIAO.items()}
    meso_path = "" if entity == layout.MESORREGIOES else "mesorregiao."
    cols: dict[str, Column] = {}
    if entity == layout.MICRORREGIOES:
        cols |= {"microrregiao_id": F.col("id"), "microrregiao_nome": F.col("nome")}
    cols |= {"mesorregiao_id": F.col(f"{meso_path}id"), "mesorregiao_nome": F.col(f"{meso_path}nome")}
    cols |= {k: F.col(f"{meso_path}UF.{v}") for k, v in _UF.items()}
    cols |= {k: F.col(f"{meso_path}UF.regiao.{v}") for k, v in _REGIAO.items()}
    return cols


def flatten(entity: str, nested: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(flat dimension rows, quarantine) for one entity's nested records.

    `nested` carries the entity's raw schema plus `ingestion_date`, `source_file` and `raw_record`.
    """
    columns = _flat_columns(entity)
    key = next(iter(columns))
    flat = nested.select(
        *[c.alias(n) for n, c in columns.items()], "ingestion_date", "source_file", "raw_record"
    )
    missing = [
        F.when(F.col(n).isNull() | (F.trim(F.col(n).cast("string")) == ""), F.lit(f"{n} missing"))
        for n in columns
    ]
    first = Window.partitionBy(key).orderBy(F.monotonically_increasing_id())
    duplicate = F.when(F.col(key).isNotNull() & (F.row_number().over(first) > 1), F.lit(f"duplicate {key}"))
    judged = flat.withColumn("reasons", F.array_compact(F.array(*missing, duplicate)))

    schema = DIMENSIONS[entity]
    valid = judged.where(F.size("reasons") == 0).select(
        *[
            F.trim(F.col(f.name)).alias(f.name) if f.dataType.typeName() == "string" else F.col(f.name)
            for f in schema.fields
        ]
    )
    quarantine = judged.where(F.size("reasons") > 0).select(
        F.lit(f"ibge_{entity}").alias("source"),
        F.col(key).cast("string").alias("record_id"),
        F.array_join("reasons", "; ").alias("reason"),
        "raw_record",
        "ingestion_date",
        "source_file",
    )
    return _enforce(valid, schema), quarantine.select(*[f.name for f in QUARANTINE.fields])


def ufs_from_mesorregioes(mesorregioes: DataFrame) -> DataFrame:
    """The 27 UFs with their region: one row per UF seen in the mesoregions."""
    cols = [f.name for f in DIMENSIONS[layout.UFS].fields]
    return _enforce(mesorregioes.select(*cols).dropDuplicates(["uf_id"]), DIMENSIONS[layout.UFS])


def _enforce(df: DataFrame, schema: StructType) -> DataFrame:
    """Select exactly the declared columns, in order and type, so written files carry the contract."""
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])
