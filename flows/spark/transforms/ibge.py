"""Nested IBGE API records → flat dimensions. Pure: DataFrames in, DataFrames out.

A record missing an id or a name (or repeating an id) cannot be a dimension row: it goes to quarantine,
so raw count = dimension count + quarantine count holds for IBGE as for PNAD.

Written as SQL text, one `selectExpr` per projection, as the PNAD typing is: built column by column
through PySpark's Column API, every function and alias is a round trip to the JVM (~2,000 per entity),
about a second of the step on a fresh JVM (docs/spark-performance.md).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

from flows import layout
from flows.spark.schemas import DIMENSIONS, QUARANTINE

_REGIAO = {"regiao_id": "id", "regiao_sigla": "sigla", "regiao_nome": "nome"}
_UF = {"uf_id": "id", "uf_sigla": "sigla", "uf_nome": "nome"}


def _flat_columns(entity: str) -> dict[str, str]:
    """Flat column name → its path in the nested record (SQL text)."""
    if entity == layout.REGIOES:
        return dict(_REGIAO)
    meso_path = "" if entity == layout.MESORREGIOES else "mesorregiao."
    cols: dict[str, str] = {}
    if entity == layout.MICRORREGIOES:
        cols |= {"microrregiao_id": "id", "microrregiao_nome": "nome"}
    cols |= {"mesorregiao_id": f"{meso_path}id", "mesorregiao_nome": f"{meso_path}nome"}
    cols |= {k: f"{meso_path}UF.{v}" for k, v in _UF.items()}
    cols |= {k: f"{meso_path}UF.regiao.{v}" for k, v in _REGIAO.items()}
    return cols


def flatten(entity: str, nested: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(flat dimension rows, quarantine) for one entity's nested records.

    `nested` carries the entity's raw schema plus `ingestion_date`, `source_file` and `raw_record`.
    """
    columns = _flat_columns(entity)
    key = next(iter(columns))
    flat = nested.selectExpr(
        *[f"{path} AS {name}" for name, path in columns.items()],
        "ingestion_date",
        "source_file",
        "raw_record",
    )
    missing = [
        f"CASE WHEN {n} IS NULL OR trim(CAST({n} AS STRING)) = '' THEN '{n} missing' END" for n in columns
    ]
    # The first record of an id (in the file's order) is the dimension row; later ones are quarantined.
    first = f"row_number() OVER (PARTITION BY {key} ORDER BY monotonically_increasing_id())"
    duplicate = f"CASE WHEN {key} IS NOT NULL AND {first} > 1 THEN 'duplicate {key}' END"
    judged = flat.selectExpr("*", f"array_compact(array({', '.join([*missing, duplicate])})) AS reasons")

    schema = DIMENSIONS[entity]
    valid = judged.where("size(reasons) = 0").selectExpr(
        *[
            f"trim({f.name}) AS {f.name}" if f.dataType.typeName() == "string" else f.name
            for f in schema.fields
        ]
    )
    quarantine = judged.where("size(reasons) > 0").selectExpr(
        f"'ibge_{entity}' AS source",
        f"CAST({key} AS STRING) AS record_id",
        "array_join(reasons, '; ') AS reason",
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
    return df.selectExpr(
        *[f"CAST({f.name} AS {f.dataType.simpleString()}) AS {f.name}" for f in schema.fields]
    )
