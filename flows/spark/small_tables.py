"""Tables of a few hundred rows: computed by Spark in one job, written to the lake by the driver.

Spark's Parquet writer runs a job per table, and on a fresh JVM (a step's pod) each job pays its share of
loading and warming Spark's write path. The IBGE step has seven tables of ~700 rows in all: one job that
collects every one of them, then pyarrow on the driver writing each as one Parquet file of its declared
schema (together with its flattening written as SQL text) made the step about a second faster on a
fresh JVM and twice as fast on a warm one (docs/spark-performance.md). Each table is still its own staged
run, committed on its own (flows/lake), its manifest with the row count and sha256 of the file written.

Only for tables known to be small: the caller bounds their rows before collecting (every row crosses to
the driver). Strings and ints only: a double's NaN or infinity has no JSON number to cross as.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from pyspark.sql import DataFrame
from pyspark.sql.types import DataType, IntegerType, StringType, StructType

from flows.errors import CommitConflict, LakeError
from flows.lake import Lake
from flows.lake.commits import Staging
from flows.lake.files import copy_hashed
from flows.spark.io import abort_quietly
from flows.spark.session import PARQUET_CODEC

FILE_NAME = "part-00000.parquet"
_ARROW: dict[type[DataType], pa.DataType] = {StringType: pa.string(), IntegerType: pa.int32()}


def arrow_schema(schema: StructType) -> pa.Schema:
    """The Arrow schema of a declared table: the same columns, types and nullability."""
    fields = []
    for f in schema.fields:
        if type(f.dataType) not in _ARROW:
            raise ValueError(f"column {f.name}: {f.dataType.simpleString()} is not a small table's type")
        fields.append(pa.field(f.name, _ARROW[type(f.dataType)], f.nullable))
    return pa.schema(fields)


def collect_tables(frames: Mapping[str, tuple[DataFrame, StructType]]) -> dict[str, pa.Table]:
    """Every frame's rows, in one Spark job, as an Arrow table of its declared schema.

    The frames have different columns, so each row crosses as its JSON text (Spark's `to_json`: a null
    column is left out) tagged with its frame, and pyarrow parses each frame's rows with its schema. A row
    that does not fit it (a null in a required column, a column the schema lacks) fails with LakeError.
    """
    if not frames:
        return {}
    names = list(frames)
    # A type that cannot cross is refused here, before Spark runs anything.
    schemas = {name: arrow_schema(schema) for name, (_, schema) in frames.items()}
    tagged = [
        df.selectExpr(f"{i} AS t", "to_json(struct(*)) AS j") for i, (df, _) in enumerate(frames.values())
    ]
    union = tagged[0]
    for part in tagged[1:]:
        union = union.union(part)
    lines: list[list[str]] = [[] for _ in names]
    for t, j in union.collect():
        lines[t].append(j)
    return {name: _parse(name, lines[i], schemas[name]) for i, name in enumerate(names)}


def _parse(name: str, lines: list[str], schema: pa.Schema) -> pa.Table:
    if not lines:
        return schema.empty_table()
    data = "\n".join(lines).encode()
    # Every column read as nullable, so a missing value is reported by its column below, not by pyarrow's
    # "a required field was absent"; one block for all of it, so no row straddles two.
    nullable = pa.schema([f.with_nullable(True) for f in schema])
    try:
        table = pa_json.read_json(
            io.BytesIO(data),
            read_options=pa_json.ReadOptions(block_size=len(data) + 1),
            parse_options=pa_json.ParseOptions(explicit_schema=nullable, unexpected_field_behavior="error"),
        )
    except pa.ArrowInvalid as exc:
        raise LakeError(
            f"{name}: a row does not fit the table's declared schema ({exc}); not written."
        ) from exc
    for f in schema:
        if not f.nullable and (nulls := table.column(f.name).null_count):
            raise LakeError(
                f"{name}: {nulls:,} row(s) without {f.name}, which the table declares required; not written."
            )
    return table.cast(schema)


def write_staged(table: pa.Table, lake: Lake, staging: Staging, **manifest_extra: Any) -> dict[str, Any]:
    """Write `table` as one Parquet file into its staged run, then commit it: readers see all of it or none.
    A write or commit that fails removes the run (the unit stays as it was; a run the manifest names is
    never removed)."""
    buffer = io.BytesIO()
    try:
        pq.write_table(table, buffer, compression=PARQUET_CODEC)
        buffer.seek(0)
        with staging.open(FILE_NAME) as out:
            sha256, size = copy_hashed(buffer, out)
        staging.add_file(FILE_NAME, records=table.num_rows, sha256=sha256, size=size)
        return lake.commit(
            staging, records=table.num_rows, format="parquet", partition_by=[], **manifest_extra
        )
    except CommitConflict:
        raise  # the commit removed its run already (a DamagedLakeFile kept it: abort_quietly keeps it too)
    except BaseException:  # interrupted too: the run goes now, not at a later commit's cleanup
        abort_quietly(lake, staging)
        raise
