"""The Glue Data Catalog tables the pipeline owns: the consumer zone, declared from its schemas, no crawler.

Each consumer table is an external Parquet table whose LOCATION is the lake run its manifest commits
(`<consumer>/<table>/run=<id>/`). A rebuild commits a new run folder, so every publish repoints the tables:
one Glue `UpdateTable` per table carries the new location, the partition projection and the run id
together, so Athena sees the old run or the new one, never a mix. A publish that finds a table already
declared exactly as wanted changes nothing (no new Glue table version).

`publico_alvo` is partitioned by `regiao_sigla`/`uf_sigla` with partition projection (enum values read from
the committed run's partition folders) instead of registered partitions: registering 27 partitions per
run would be dozens of calls that readers could observe half-done, and stale partitions would need
deleting. See docs/cloud-query.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flows import layout
from flows.errors import ConfigurationError, LakeError
from flows.lake import Lake
from flows.settings import Settings
from flows.table_schemas import DIMENSIONS, PUBLICO_ALVO, PUBLICO_ALVO_PARTITIONS, Schema

# The consumer zone as the catalog exposes it: table -> (schema, partition columns, description).
# The schemas are plain data (flows/table_schemas.py): publishing runs in the flow-run pod, without PySpark;
# their type names are already Glue/Athena's.
CONSUMER: dict[str, tuple[Schema, tuple[str, ...], str]] = {
    layout.PUBLICO_ALVO: (
        PUBLICO_ALVO,
        PUBLICO_ALVO_PARTITIONS,
        "Target public (women aged 20 to 40) from PNAD Contínua 2020 Q3, with UF and region from IBGE.",
    ),
    layout.REGIOES: (DIMENSIONS[layout.REGIOES], (), "IBGE regions (regiões)."),
    layout.UFS: (DIMENSIONS[layout.UFS], (), "IBGE states (UFs) with their region."),
    layout.MESORREGIOES: (
        DIMENSIONS[layout.MESORREGIOES],
        (),
        "IBGE mesoregions with their UF and region.",
    ),
    layout.MICRORREGIOES: (
        DIMENSIONS[layout.MICRORREGIOES],
        (),
        "IBGE microregions with their mesoregion, UF and region.",
    ),
}

COMMENTS = {
    "_id": "MongoDB ObjectId of the PNAD document",
    "uf": "state name as IBGE spells it, e.g. Paraná",
    "sexo": "Homem | Mulher",
    "idade": "age in years",
    "cor": "colour or race as declared",
    "graduacao": "has a degree: Sim | Não | null",
    "trab": "labour force status",
    "ocup": "occupation status",
    "renda": "monthly income in R$ (null when missing)",
    "horastrab": "weekly working hours",
    "anosesco": "years of schooling",
    "ingestion_date": "ingestion date of the batch the record came from",
}

PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
OWNER_KEY = "vamosjuntos.managed_by"
NO_PARTITION = "__no_rows__"  # the enum value of a table committed with no rows (TableSpec.parameters)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    comment: str = ""

    def glue(self) -> dict[str, str]:
        out = {"Name": self.name, "Type": self.type}
        if self.comment:
            out["Comment"] = self.comment
        return out


@dataclass(frozen=True)
class TableSpec:
    """One consumer table as the catalog declares it."""

    name: str
    description: str
    columns: tuple[Column, ...]
    partition_keys: tuple[Column, ...]
    location: str  # the committed run folder, with a trailing slash
    run_id: str
    records: int
    projection: dict[str, tuple[str, ...]] = field(default_factory=dict)  # partition column -> values

    def parameters(self) -> dict[str, str]:
        params = {
            "EXTERNAL": "TRUE",
            "classification": "parquet",
            OWNER_KEY: "vamosjuntos publish",
            "vamosjuntos.run_id": self.run_id,
            "vamosjuntos.records": str(self.records),
        }
        if self.partition_keys:
            params["projection.enabled"] = "true"
            for key in self.partition_keys:
                # A table committed with no rows has no partition folders, and an enum needs values: one
                # that names no folder, so Athena finds no files (and never reads Glue's own partitions).
                values = self.projection.get(key.name) or (NO_PARTITION,)
                params[f"projection.{key.name}.type"] = "enum"
                params[f"projection.{key.name}.values"] = ",".join(values)
            params["storage.location.template"] = (
                self.location + "/".join(f"{k.name}=${{{k.name}}}" for k in self.partition_keys) + "/"
            )
        return params

    def table_input(self) -> dict[str, Any]:
        """The Glue `TableInput`: the whole declaration, used by CreateTable and UpdateTable alike."""
        return {
            "Name": self.name,
            "Description": self.description,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": self.parameters(),
            "PartitionKeys": [c.glue() for c in self.partition_keys],
            "StorageDescriptor": {
                "Columns": [c.glue() for c in self.columns],
                "Location": self.location,
                "InputFormat": PARQUET_INPUT,
                "OutputFormat": PARQUET_OUTPUT,
                "SerdeInfo": {
                    "SerializationLibrary": PARQUET_SERDE,
                    "Parameters": {"serialization.format": "1"},
                },
            },
        }

    def ddl(self, database: str) -> str:
        """The same declaration as Athena DDL, for people (the pipeline itself calls the Glue API)."""

        def col(c: Column) -> str:
            comment = " COMMENT '" + c.comment.replace("'", "''") + "'" if c.comment else ""
            return f"`{c.name}` {c.type}{comment}"

        lines = [f"CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{self.name}` ("]
        lines.append(",\n".join(f"  {col(c)}" for c in self.columns))
        lines.append(")")
        lines.append("COMMENT '" + self.description.replace("'", "''") + "'")
        if self.partition_keys:
            lines.append("PARTITIONED BY (" + ", ".join(col(c) for c in self.partition_keys) + ")")
        lines.append("STORED AS PARQUET")
        lines.append(f"LOCATION '{self.location}'")
        props = {k: v for k, v in self.parameters().items() if k != "EXTERNAL"}
        lines.append("TBLPROPERTIES (\n" + ",\n".join(f"  '{k}' = '{v}'" for k, v in props.items()) + "\n)")
        return "\n".join(lines) + ";"


_PARTITION_DIR = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.+)$")


def partition_values(manifest: dict[str, Any], keys: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The values of each partition column among the committed files' folders, sorted (none without
    files: a table committed with no rows)."""
    found: dict[str, set[str]] = {k: set() for k in keys}
    if not manifest["files"]:
        return {k: () for k in keys}
    for entry in manifest["files"]:
        for segment in entry["name"].split("/")[:-1]:
            match = _PARTITION_DIR.match(segment)
            if match and match.group(1) in found:
                found[match.group(1)].add(match.group(2))
    empty = [k for k, v in found.items() if not v]
    if empty:
        raise LakeError(
            f"{manifest['unit']} (run {manifest['run_id']}) has no `{empty[0]}=` partition folders: "
            "it cannot be declared with partition projection. Rebuild it (processing_to_consumer step)."
        )
    return {k: tuple(sorted(v)) for k, v in found.items()}


def table_spec(lake: Lake, table: str) -> TableSpec:
    schema, partitions, description = CONSUMER[table]
    manifest = lake.manifest("consumer", table)
    if manifest is None:
        raise LakeError(f"consumer/{table} is not committed: run the transform flow before publishing.")
    location = lake.committed_run_path("consumer", table)
    assert location is not None
    columns = tuple(
        Column(f.name, f.type, COMMENTS.get(f.name, "")) for f in schema if f.name not in partitions
    )
    by_name = {f.name: f for f in schema}
    keys = tuple(Column(p, by_name[p].type) for p in partitions)
    return TableSpec(
        name=table,
        description=description,
        columns=columns,
        partition_keys=keys,
        location=location.rstrip("/") + "/",
        run_id=manifest["run_id"],
        records=int(manifest["records"] or 0),
        projection=partition_values(manifest, partitions) if partitions else {},
    )


def table_specs(lake: Lake) -> list[TableSpec]:
    return [table_spec(lake, t) for t in CONSUMER]


def glue_client(settings: Settings) -> Any:
    import boto3

    return boto3.client("glue", region_name=settings.aws_region, endpoint_url=settings.glue_endpoint_url)


def _owned(table: dict[str, Any]) -> dict[str, Any]:
    """The parts of a Glue table (as GetTable returns it, or a TableInput) that publish declares."""
    sd = table.get("StorageDescriptor", {})
    serde = sd.get("SerdeInfo", {})
    return {
        "Description": table.get("Description"),
        "TableType": table.get("TableType"),
        "Parameters": table.get("Parameters", {}),
        "PartitionKeys": table.get("PartitionKeys", []),
        "Columns": sd.get("Columns", []),
        "Location": sd.get("Location"),
        "InputFormat": sd.get("InputFormat"),
        "OutputFormat": sd.get("OutputFormat"),
        "Serde": (serde.get("SerializationLibrary"), serde.get("Parameters", {})),
    }


def ensure_database(glue: Any, database: str) -> bool:
    """Create the Glue database if it is missing (terraform normally has); True if created."""
    try:
        glue.get_database(Name=database)
        return False
    except glue.exceptions.EntityNotFoundException:
        pass
    try:
        glue.create_database(
            DatabaseInput={"Name": database, "Description": "vamosjuntos-lakehouse consumer zone"}
        )
    except glue.exceptions.AlreadyExistsException:
        return False  # another publish won the race
    return True


def publish_glue(lake: Lake, settings: Settings, glue: Any | None = None) -> list[dict[str, Any]]:
    """Declare every consumer table in the Glue database at its committed run; idempotent."""
    consumer = lake.root("consumer")
    if not consumer.startswith("s3://"):
        raise ConfigurationError(
            f"engine=athena needs the consumer zone on S3, but it is {consumer!r}. Set "
            "VAMOSJUNTOS_CONSUMER_ROOT=s3://<consumer bucket> (or VAMOSJUNTOS_LAKE_ROOT=s3://...), "
            "or VAMOSJUNTOS_ENGINE=duckdb to query locally."
        )
    glue = glue or glue_client(settings)
    database = settings.glue_database
    ensure_database(glue, database)
    results = []
    for spec in table_specs(lake):
        wanted = spec.table_input()
        try:
            current = glue.get_table(DatabaseName=database, Name=spec.name)["Table"]
        except glue.exceptions.EntityNotFoundException:
            current = None
        if current is None:
            glue.create_table(DatabaseName=database, TableInput=wanted)
            action = "created"
        elif _owned(current) == _owned(wanted):
            action = "unchanged"
        else:
            if current.get("Parameters", {}).get(OWNER_KEY) is None:
                raise ConfigurationError(
                    f"Glue table {database}.{spec.name} exists but was not declared by this pipeline "
                    f"(no {OWNER_KEY} parameter): not overwriting it. Drop it or choose another "
                    "VAMOSJUNTOS_GLUE_DATABASE."
                )
            glue.update_table(DatabaseName=database, TableInput=wanted)
            action = "updated"
        results.append(
            {
                "table": f"{database}.{spec.name}",
                "action": action,
                "location": spec.location,
                "run_id": spec.run_id,
                "records": spec.records,
                "partitions": ", ".join(f"{k}: {len(v)}" for k, v in spec.projection.items()) or "-",
            }
        )
    return results


def describe(specs: list[TableSpec], database: str) -> str:
    """Markdown with the DDL equivalent of each declaration (for the publish artifact)."""
    parts = [
        f"### `{database}.{s.name}` at run `{s.run_id}`\n\n```sql\n{s.ddl(database)}\n```" for s in specs
    ]
    return "\n\n".join(parts)
