"""The consumer's Parquet files as their footers describe them: row groups, compressed column chunks and
their statistics (what an engine reads before any data), and where a table's bytes are."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq


@dataclass
class RowGroup:
    num_rows: int
    columns: dict[str, dict[str, Any]]  # name -> compressed bytes, min, max, nulls


@dataclass
class FileMeta:
    path: str
    partition: dict[str, str]
    footer_bytes: int
    row_groups: list[RowGroup] = field(default_factory=list)


def file_meta(path: str) -> FileMeta:
    meta = pq.ParquetFile(path).metadata
    partition = dict(part.split("=", 1) for part in Path(path).parts if "=" in part and "run=" not in part)
    groups = []
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        cols = {}
        for j in range(rg.num_columns):
            c = rg.column(j)
            st = c.statistics
            cols[c.path_in_schema] = {
                "bytes": c.total_compressed_size,
                "min": st.min if st is not None and st.has_min_max else None,
                "max": st.max if st is not None and st.has_min_max else None,
                "nulls": st.null_count if st is not None and st.has_null_count else None,
            }
        groups.append(RowGroup(rg.num_rows, cols))
    # The footer, its 4-byte length and the 4-byte magic: what an engine reads before any data.
    return FileMeta(path, partition, meta.serialized_size + 8, groups)


def layout(files: list[FileMeta]) -> dict[str, Any]:
    """Where a table's bytes are: compressed bytes per column, footers, files, rows and row groups."""
    columns: dict[str, int] = {}
    rows = groups = 0
    for f in files:
        for rg in f.row_groups:
            groups += 1
            rows += rg.num_rows
            for name, c in rg.columns.items():
                columns[name] = columns.get(name, 0) + int(c["bytes"])
    return {
        "files": len(files),
        "row_groups": groups,
        "rows": rows,
        "footer_bytes": sum(f.footer_bytes for f in files),
        "column_bytes": dict(sorted(columns.items(), key=lambda kv: -kv[1])),
    }
