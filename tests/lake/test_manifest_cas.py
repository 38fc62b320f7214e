"""Compare-and-swap of a unit's manifest (flows/lake/manifest_cas.py), on moto's S3 server."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
import s3fs

from flows.errors import LakeError, VamosJuntosError
from flows.lake import manifest_cas


def test_a_manifest_replaced_while_being_read_is_read_again(moto_s3: tuple[str, str]) -> None:
    """s3fs HEADs the manifest, then GETs it with If-Match: a commit in between fails that GET (412, raised
    as FileExpired); the reader takes the new manifest instead of failing the stage."""
    endpoint, bucket = moto_s3
    key = "lake/raw/unit/_manifest.json"
    path = f"s3://{bucket}/{key}"
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, use_listings_cache=False)
    first = manifest_cas.swap(fs, path, {"run_id": "first"}, None)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")

    class CommitAfterHead:
        """The filesystem, with another writer's commit landing between the first HEAD and its GET."""

        def __init__(self) -> None:
            self.opened = 0

        def open(self, *args: Any, **kwargs: Any) -> Any:
            fh = fs.open(*args, **kwargs)
            self.opened += 1
            if self.opened == 1:
                s3.put_object(Bucket=bucket, Key=key, Body=b'{"run_id": "second"}')
            return fh

    racing = CommitAfterHead()
    seen = manifest_cas.read(racing, path)  # type: ignore[arg-type]
    assert seen.payload == {"run_id": "second"} and seen.version != first
    assert racing.opened == 2


def test_a_manifest_that_keeps_changing_while_being_read_is_a_clear_lake_error(
    moto_s3: tuple[str, str],
) -> None:
    """Another writer committing between every HEAD and its GET: after a few attempts the reader gives up
    with an error the CLI prints as one line (a VamosJuntosError), still an OSError for the commit's
    tidying."""
    endpoint, bucket = moto_s3
    key = "lake/raw/unit/_manifest.json"
    path = f"s3://{bucket}/{key}"
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, use_listings_cache=False)
    manifest_cas.swap(fs, path, {"run_id": "first"}, None)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")

    class CommitAfterEveryHead:
        def __init__(self) -> None:
            self.opened = 0

        def open(self, *args: Any, **kwargs: Any) -> Any:
            fh = fs.open(*args, **kwargs)
            self.opened += 1
            s3.put_object(Bucket=bucket, Key=key, Body=f'{{"run_id": "{self.opened}"}}'.encode())
            return fh

    racing = CommitAfterEveryHead()
    with pytest.raises(VamosJuntosError, match="kept changing while being read") as err:
        manifest_cas.read(racing, path)  # type: ignore[arg-type]
    assert isinstance(err.value, LakeError) and isinstance(err.value, OSError)
    assert racing.opened > 1
