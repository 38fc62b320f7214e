"""Compare-and-swap of a unit's manifest (flows/lake/manifest_cas.py), on moto's S3 server."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
import s3fs

from flows.errors import LakeError, VamosJuntosError
from flows.lake import manifest_cas

KEY = "lake/raw/unit/_manifest.json"


class CommitsAfterHead:
    """The filesystem, with another writer's commit landing between a HEAD and its GET: after the first
    `commits` opens of the manifest (s3fs HEADs on open, GETs with If-Match on read)."""

    def __init__(self, endpoint: str, bucket: str, commits: int) -> None:
        self.fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, use_listings_cache=False)
        self.s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        self.bucket, self.commits, self.opened = bucket, commits, 0

    def open(self, *args: Any, **kwargs: Any) -> Any:
        fh = self.fs.open(*args, **kwargs)
        self.opened += 1
        if self.opened <= self.commits:
            self.s3.put_object(Bucket=self.bucket, Key=KEY, Body=f'{{"run_id": "{self.opened}"}}'.encode())
        return fh


def test_a_manifest_replaced_while_being_read_is_read_again(moto_s3: tuple[str, str]) -> None:
    """s3fs HEADs the manifest, then GETs it with If-Match: a commit in between fails that GET (412, raised
    as FileExpired); the reader takes the new manifest instead of failing the stage."""
    endpoint, bucket = moto_s3
    path = f"s3://{bucket}/{KEY}"
    racing = CommitsAfterHead(endpoint, bucket, commits=1)
    first = manifest_cas.swap(racing.fs, path, {"run_id": "first"}, None)
    seen = manifest_cas.read(racing, path)  # type: ignore[arg-type]
    assert seen.payload == {"run_id": "1"} and seen.version != first
    assert racing.opened == 2


def test_a_manifest_that_keeps_changing_while_being_read_is_a_clear_lake_error(
    moto_s3: tuple[str, str],
) -> None:
    """Another writer committing between every HEAD and its GET: after a few attempts the reader gives up
    with an error the CLI prints as one line (a VamosJuntosError), still an OSError for the commit's
    tidying."""
    endpoint, bucket = moto_s3
    path = f"s3://{bucket}/{KEY}"
    racing = CommitsAfterHead(endpoint, bucket, commits=1_000)
    manifest_cas.swap(racing.fs, path, {"run_id": "first"}, None)
    with pytest.raises(VamosJuntosError, match="kept changing while being read") as err:
        manifest_cas.read(racing, path)  # type: ignore[arg-type]
    assert isinstance(err.value, LakeError) and isinstance(err.value, OSError)
    assert racing.opened > 1
