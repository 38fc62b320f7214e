"""The typed tables' columns as plain data: the one declaration of the processing and consumer schemas.

Spark builds its StructTypes from these (flows/spark/schemas.py) and the catalog declares the Glue tables
from them (flows/catalog.py) in processes that have no PySpark: the flow-run image carries none, it only
starts the Spark steps as Kubernetes Jobs.
"""

from __future__ import annotations

from dataclasses import dataclass

from flows import layout

# Column types by their Glue/Athena (Hive) names; flows/spark/schemas.py maps each to its Spark type.
TYPES = frozenset({"string", "int", "double"})


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    nullable: bool = True

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"column {self.name}: unknown type {self.type!r} (known: {sorted(TYPES)})")


Schema = tuple[Field, ...]

# --- processing ------------------------------------------------------------------------------
BATCH_COLUMNS: Schema = (Field("ingestion_date", "string", False), Field("source_file", "string"))

PNADC: Schema = (
    Field("_id", "string", False),
    Field("ano", "int"),
    Field("trimestre", "int"),
    Field("uf", "string"),
    Field("sexo", "string"),
    Field("idade", "int"),
    Field("cor", "string"),
    Field("graduacao", "string"),
    Field("trab", "string"),
    Field("ocup", "string"),
    Field("renda", "double"),
    Field("horastrab", "double"),
    Field("anosesco", "double"),
    *BATCH_COLUMNS,
)

QUARANTINE: Schema = (
    Field("source", "string", False),
    Field("record_id", "string"),
    Field("reason", "string", False),
    Field("raw_record", "string"),
    *BATCH_COLUMNS,
)

_REGIAO_COLS: Schema = (
    Field("regiao_id", "int", False),
    Field("regiao_sigla", "string", False),
    Field("regiao_nome", "string", False),
)
_UF_COLS: Schema = (
    Field("uf_id", "int", False),
    Field("uf_sigla", "string", False),
    Field("uf_nome", "string", False),
)
_MESO_COLS: Schema = (
    Field("mesorregiao_id", "int", False),
    Field("mesorregiao_nome", "string", False),
)
REGIOES: Schema = _REGIAO_COLS
UFS: Schema = _UF_COLS + _REGIAO_COLS
MESORREGIOES: Schema = _MESO_COLS + _UF_COLS + _REGIAO_COLS
MICRORREGIOES: Schema = (
    Field("microrregiao_id", "int", False),
    Field("microrregiao_nome", "string", False),
    *_MESO_COLS,
    *_UF_COLS,
    *_REGIAO_COLS,
)
DIMENSIONS: dict[str, Schema] = {
    layout.REGIOES: REGIOES,
    layout.UFS: UFS,
    layout.MESORREGIOES: MESORREGIOES,
    layout.MICRORREGIOES: MICRORREGIOES,
}

# --- consumer --------------------------------------------------------------------------------
PUBLICO_ALVO: Schema = (
    *(f for f in PNADC if f.name != "source_file"),
    Field("uf_id", "int", False),
    Field("uf_sigla", "string", False),
    Field("regiao_id", "int", False),
    Field("regiao_sigla", "string", False),
    Field("regiao_nome", "string", False),
)
PUBLICO_ALVO_PARTITIONS = ("regiao_sigla", "uf_sigla")

# Every consumer table's columns, the partition columns included (their files hold them as folders).
CONSUMER_SCHEMAS: dict[str, Schema] = {layout.PUBLICO_ALVO: PUBLICO_ALVO, **DIMENSIONS}
