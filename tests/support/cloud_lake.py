"""A lake on moto's S3 for the publish/answer tests: cloud settings, a bucket, a local lake copied up, and a
hand-made consumer unit (moto's server itself is the `moto` fixture of tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flows.lake import Lake
from flows.settings import Settings

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account


def cloud_settings(moto_url: str, bucket: str = "vj-lake", **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "lake_root": f"s3://{bucket}",
        "s3_endpoint_url": moto_url,
        "glue_endpoint_url": moto_url,
        "athena_endpoint_url": moto_url,
        "aws_region": REGION,
        "engine": "athena",
        "glue_database": "vamosjuntos_test",
        "athena_workgroup": "vamosjuntos-test",
    }
    values.update(overrides)
    return Settings(**values)


def copy_lake_to_s3(local: Lake, cloud: Lake) -> None:
    """Upload every zone of a local lake (manifests, data files) to the S3 lake, same relative names."""
    for zone in ("raw", "processing", "consumer"):
        base = Path(local.root(zone))
        fs = cloud.fs(zone)
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.endswith(".crc") and path.suffix != ".duckdb":
                fs.pipe_file(cloud.path(zone, path.relative_to(base).as_posix()), path.read_bytes())


def make_bucket(moto_url: str, bucket: str = "vj-lake") -> None:
    import boto3

    boto3.client("s3", endpoint_url=moto_url, region_name=REGION).create_bucket(Bucket=bucket)


# --- a hand-made consumer zone ---------------------------------------------------------------
def commit_parquet(
    lake: Lake, unit: str, table: pa.Table, partition_by: tuple[str, ...] = (), **extra: Any
) -> dict[str, Any]:
    """Commit `table` as a consumer unit the way the Spark step lays it out (hive folders, a manifest)."""
    staging = lake.stage("consumer", unit)
    if partition_by:
        keys = table.select(list(partition_by)).to_pylist()
        for combo in sorted({tuple(k.values()) for k in keys}):
            mask = None
            for col, value in zip(partition_by, combo, strict=True):
                cond = pc.equal(table[col], value)
                mask = cond if mask is None else pc.and_(mask, cond)
            part = table.filter(mask).drop(list(partition_by))
            folder = "/".join(f"{c}={v}" for c, v in zip(partition_by, combo, strict=True))
            with staging.open(f"{folder}/part-00000.parquet") as fh:
                pq.write_table(part, fh)
    else:
        with staging.open("part-00000.parquet") as fh:
            pq.write_table(table, fh)
    staging.add_written_files(".parquet")
    return lake.commit(
        staging, records=table.num_rows, format="parquet", partition_by=list(partition_by), **extra
    )
