"""Explicit Spark schemas of every table (Spark never infers one)."""

from __future__ import annotations

from pyspark.sql.types import (
    DataType,
    DoubleType,
    IntegerType,
    StringType,
    StructField,
    StructType,
)

from flows import layout
from flows import table_schemas as tables

# --- raw -------------------------------------------------------------------------------------
PNADC_FIELDS = (
    "_id", "ano", "trimestre", "uf", "sexo", "idade", "cor",
    "graduacao", "trab", "ocup", "renda", "horastrab", "anosesco",
)  # fmt: skip
INT_FIELDS = ("ano", "trimestre", "idade")
DOUBLE_FIELDS = ("renda", "horastrab", "anosesco")
TEXT_FIELDS = ("uf", "sexo", "cor", "graduacao", "trab", "ocup")
CORRUPT = "_corrupt_record"

# Every raw field is read as its JSON text: the typing below decides, losslessly or not at all.
PNADC_RAW = StructType(
    [StructField(f, StringType()) for f in PNADC_FIELDS] + [StructField(CORRUPT, StringType())]
)

_REGIAO = StructType(
    [StructField("id", IntegerType()), StructField("sigla", StringType()), StructField("nome", StringType())]
)
_UF = StructType(
    [
        StructField("id", IntegerType()),
        StructField("sigla", StringType()),
        StructField("nome", StringType()),
        StructField("regiao", _REGIAO),
    ]
)
_MESO = StructType(
    [StructField("id", IntegerType()), StructField("nome", StringType()), StructField("UF", _UF)]
)
_MICRO = StructType(
    [StructField("id", IntegerType()), StructField("nome", StringType()), StructField("mesorregiao", _MESO)]
)
IBGE_RAW: dict[str, StructType] = {
    layout.REGIOES: _REGIAO,
    layout.MESORREGIOES: _MESO,
    layout.MICRORREGIOES: _MICRO,
}

# --- processing and consumer: declared once, Spark-free, in flows/table_schemas.py ----------------
_SPARK_TYPES: dict[str, type[DataType]] = {"string": StringType, "int": IntegerType, "double": DoubleType}


def struct(schema: tables.Schema) -> StructType:
    """The Spark schema of a table declared in flows/table_schemas.py."""
    return StructType([StructField(f.name, _SPARK_TYPES[f.type](), f.nullable) for f in schema])


PNADC = struct(tables.PNADC)
QUARANTINE = struct(tables.QUARANTINE)
REGIOES = struct(tables.REGIOES)
UFS = struct(tables.UFS)
MESORREGIOES = struct(tables.MESORREGIOES)
MICRORREGIOES = struct(tables.MICRORREGIOES)
DIMENSIONS: dict[str, StructType] = {name: struct(schema) for name, schema in tables.DIMENSIONS.items()}
PUBLICO_ALVO = struct(tables.PUBLICO_ALVO)
PUBLICO_ALVO_PARTITIONS = tables.PUBLICO_ALVO_PARTITIONS
