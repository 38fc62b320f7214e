"""Explicit schemas of every table (Spark never infers one)."""

from __future__ import annotations

from pyspark.sql.types import (
    DoubleType,
    IntegerType,
    StringType,
    StructField,
    StructType,
)

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
IBGE_RAW: dict[str, StructType] = {"regioes": _REGIAO, "mesorregioes": _MESO, "microrregioes": _MICRO}

# --- processing ------------------------------------------------------------------------------
BATCH_COLUMNS = [StructField("ingestion_date", StringType(), False), StructField("source_file", StringType())]

PNADC = StructType(
    [
        StructField("_id", StringType(), False),
        StructField("ano", IntegerType()),
        StructField("trimestre", IntegerType()),
        StructField("uf", StringType()),
        StructField("sexo", StringType()),
        StructField("idade", IntegerType()),
        StructField("cor", StringType()),
        StructField("graduacao", StringType()),
        StructField("trab", StringType()),
        StructField("ocup", StringType()),
        StructField("renda", DoubleType()),
        StructField("horastrab", DoubleType()),
        StructField("anosesco", DoubleType()),
        *BATCH_COLUMNS,
    ]
)

QUARANTINE = StructType(
    [
        StructField("source", StringType(), False),
        StructField("record_id", StringType()),
        StructField("reason", StringType(), False),
        StructField("raw_record", StringType()),
        *BATCH_COLUMNS,
    ]
)

_REGIAO_COLS = [
    StructField("regiao_id", IntegerType(), False),
    StructField("regiao_sigla", StringType(), False),
    StructField("regiao_nome", StringType(), False),
]
_UF_COLS = [
    StructField("uf_id", IntegerType(), False),
    StructField("uf_sigla", StringType(), False),
    StructField("uf_nome", StringType(), False),
]
_MESO_COLS = [
    StructField("mesorregiao_id", IntegerType(), False),
    StructField("mesorregiao_nome", StringType(), False),
]
REGIOES = StructType(_REGIAO_COLS)
UFS = StructType(_UF_COLS + _REGIAO_COLS)
MESORREGIOES = StructType(_MESO_COLS + _UF_COLS + _REGIAO_COLS)
MICRORREGIOES = StructType(
    [
        StructField("microrregiao_id", IntegerType(), False),
        StructField("microrregiao_nome", StringType(), False),
        *_MESO_COLS,
        *_UF_COLS,
        *_REGIAO_COLS,
    ]
)
DIMENSIONS: dict[str, StructType] = {
    "regioes": REGIOES,
    "ufs": UFS,
    "mesorregioes": MESORREGIOES,
    "microrregioes": MICRORREGIOES,
}

# --- consumer --------------------------------------------------------------------------------
PUBLICO_ALVO = StructType(
    [f for f in PNADC.fields if f.name != "source_file"]
    + [
        StructField("uf_id", IntegerType(), False),
        StructField("uf_sigla", StringType(), False),
        StructField("regiao_id", IntegerType(), False),
        StructField("regiao_sigla", StringType(), False),
        StructField("regiao_nome", StringType(), False),
    ]
)
PUBLICO_ALVO_PARTITIONS = ("regiao_sigla", "uf_sigla")
