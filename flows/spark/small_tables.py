"""Tables of a few hundred rows: computed by Spark in one job, written to the lake by the driver.

Spark's Parquet writer runs a job per table, and on a fresh JVM (a step's pod) each job pays its share of
loading and warming Spark's write path. The IBGE step has seven tables of 700 rows in all: one job that
collects every one of them, then pyarrow on the driver writing each as one Parquet file of its declared
schema, made the step about a second faster on a fresh JVM and twice as fast on a warm one
(docs/spark-performance.md). Each table is still its own staged run, committed on its own (flows/lake),
its manifest with the row count and sha256 of the file written.

Only for tables known to be small: the caller bounds their rows before collecting (every row crosses to
the driver).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from pyspark.sql import DataFrame
from pyspark.sql.types import DataType, DoubleType, IntegerType, StringType, StructType

from flows.errors import LakeError
from flows.lake import Lake
from flows.lake.files import copy_hashed
from flows.layout import Zone
from flows.spark.session import PARQUET_CODEC

FILE_NAME = "part-00000.parquet"
_ARROW: dict[type[DataType], pa.DataType] = {
    StringType: pa.string(),
    IntegerType: pa.int32(),
    DoubleType: pa.float64(),
}


def arrow_schema(schema: StructType) -> pa.Schema:
    """The Arrow schema of a declared table: the same columns, types and nullability."""
    return pa.schema([pa.field(f.name, _ARROW[type(f.dataType)], f.nullable) for f in schema.fields])


def collect_tables(frames: Mapping[str, tuple[DataFrame, StructType]]) -> dict[str, pa.Table]:
    """Every frame's rows, in one Spark job, as an Arrow table of its declared schema.

    The frames have different columns, so each row crosses as its JSON text (Spark's `to_json`: a null
    column is left out) tagged with its frame, and pyarrow parses each frame's rows with its schema. A row
    that does not fit it (a null in a required column, a column the schema lacks) fails the step.
    """
    names = list(frames)
    tagged = [
        df.selectExpr(f"{i} AS t", "to_json(struct(*)) AS j") for i, (df, _) in enumerate(frames.values())
    ]
    lines: list[list[str]] = [[] for _ in names]
    for t, j in functools.reduce(DataFrame.unionAll, tagged).collect():
        lines[t].append(j)
    return {name: _parse(name, lines[i], frames[name][1]) for i, name in enumerate(names)}


def _parse(name: str, lines: list[str], schema: StructType) -> pa.Table:
    arrow = arrow_schema(schema)
    if not lines:
        return arrow.empty_table()
    options = pa_json.ParseOptions(explicit_schema=arrow, unexpected_field_behavior="error")
    try:
        table = pa_json.read_json(io.BytesIO("\n".join(lines).encode()), parse_options=options)
    except pa.ArrowInvalid as exc:
        raise LakeError(
            f"{name}: a row does not fit the table's declared schema ({exc}); not written."
        ) from exc
    return table.cast(arrow)  # read_json declares every column nullable; the contract's flags are kept


def write_arrow_table(
    table: pa.Table, lake: Lake, zone: Zone, unit: str, **manifest_extra: Any
) -> dict[str, Any]:
    """Write `table` as one Parquet file into a staged run, then commit it: readers see all of it or none."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression=PARQUET_CODEC)
    buffer.seek(0)
    staging = lake.stage(zone, unit)
    try:
        with staging.open(FILE_NAME) as out:
            sha256, size = copy_hashed(buffer, out)
        staging.add_file(FILE_NAME, records=table.num_rows, sha256=sha256, size=size)
    except Exception:
        lake.abort(staging)
        raise
    return lake.commit(staging, records=table.num_rows, format="parquet", partition_by=[], **manifest_extra)
