"""Compare-and-swap of a unit's manifest (flows/lake/manifest_cas.py), on moto's S3 server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import fsspec
import pytest
import s3fs

from flows.errors import DamagedLakeFile, LakeError, VamosJuntosError
from flows.lake import Lake, manifest_cas
from flows.settings import Settings

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


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b"[1, 2]", "a JSON array, not an object"),
        (b"null", "a JSON null, not an object"),
        (b'{"run_id": ', "not valid JSON"),
        (b"\xff", "not valid JSON"),
    ],
    ids=["an-array", "null", "cut-short", "not-utf8"],
)
def test_a_damaged_manifest_is_a_lake_error_naming_it_on_s3_and_on_disk(
    moto_s3: tuple[str, str],
    tmp_path: Path,
    settings_for: Callable[..., Settings],
    body: bytes,
    what: str,
) -> None:
    """A manifest edited into something else (a list, JSON cut short) is named, on S3 and on a local disk,
    by the readers of the lake and by a commit's stage, where it was an AttributeError or a JSONDecodeError
    with no path."""
    endpoint, bucket = moto_s3
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, use_listings_cache=False)
    s3_path = f"s3://{bucket}/{KEY}"
    fs.pipe(s3_path, body)
    local = tmp_path / "_manifest.json"
    local.write_bytes(body)
    for filesystem, path in ((fs, s3_path), (fsspec.filesystem("file"), str(local))):
        with pytest.raises(DamagedLakeFile, match="is damaged: " + what) as err:
            manifest_cas.read(filesystem, path)
        assert path in str(err.value)
        assert isinstance(err.value, LakeError) and isinstance(err.value, ValueError)

    lake = Lake(settings_for())
    manifest = Path(lake.path("consumer", "ufs", "_manifest.json"))
    manifest.parent.mkdir(parents=True)
    manifest.write_bytes(body)
    with pytest.raises(DamagedLakeFile, match=str(manifest)):
        lake.manifest("consumer", "ufs")
    with pytest.raises(DamagedLakeFile, match=str(manifest)):
        lake.stage("consumer", "ufs")
    manifest.unlink()  # the way out the error gives: the unit is empty until a run commits it again
    assert lake.manifest("consumer", "ufs") is None and lake.stage("consumer", "ufs").base_run_id is None
