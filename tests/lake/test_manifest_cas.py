"""Compare-and-swap of a unit's manifest (flows/lake/manifest_cas.py), on moto's S3 server."""

from __future__ import annotations

import json
import re
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


GOOD = {
    "run_id": "r2",
    "previous_run_id": "r1",
    "records": 3,
    "files": [{"name": "run=r2/part-0.parquet", "bytes": 10, "records": 3}],
}


@pytest.mark.parametrize(
    ("edit", "what"),
    [
        ({"run_id": None}, '"run_id" is null, not a run id'),
        ({"files": "run=r2/part-0.parquet"}, '"files" is "run=r2/part-0.parquet", not a list of files'),
        (
            {"files": [{"name": "run=r1/p.parquet"}]},
            'the file entry {"name": "run=r1/p.parquet"} is not a file in run=r2/',
        ),
        (
            {"files": [{"name": "run=r2/../run=r1/p"}]},
            'the file entry {"name": "run=r2/../run=r1/p"} is not a file in',
        ),
        ({"files": [{"bytes": 10}]}, 'the file entry {"bytes": 10} is not a file in run=r2/'),
        ({"records": "3"}, '"records" is "3", not a whole number of records (or null)'),
        ({"records": True}, '"records" is true, not a whole number of records (or null)'),
        ({"records": -1}, '"records" is -1, not a whole number of records (or null)'),
        ({"records": 2.5}, '"records" is 2.5, not a whole number of records (or null)'),
        ({"records": ...}, 'no "records" count'),
        ({"previous_run_id": []}, '"previous_run_id" is [], not a run id (or null)'),
        ({"previous_run_id": ""}, '"previous_run_id" is "", not a run id (or null)'),
        (
            {"files": [{"name": "run=r2/p.parquet", "records": "9"}]},
            'the file entry {"name": "run=r2/p.parquet", "records": "9"} has a record count that is not one',
        ),
        (
            {"files": [{"name": "run=r2/p.parquet", "records": 2.5}]},
            'the file entry {"name": "run=r2/p.parquet", "records": 2.5} has a record count that is not one',
        ),
        (
            {"rollback": {"from_run_id": "r1"}},
            '"rollback" is {"from_run_id": "r1"}, not a record of a rollback',
        ),
        (
            {"rollback": "r1"},
            '"rollback" is "r1", not a record of a rollback (from_run_id, to_run_id, by, at',
        ),
    ],
    ids=[
        "no-run",
        "files-text",
        "another-runs-file",
        "dot-dot",
        "file-without-name",
        "records-text",
        "records-bool",
        "records-negative",
        "records-float",
        "no-records",
        "previous-run-list",
        "previous-run-empty",
        "file-records-text",
        "file-records-float",
        "rollback-partial",
        "rollback-text",
    ],
)
def test_an_object_that_is_not_a_manifest_is_damaged_for_every_reader(
    moto_s3: tuple[str, str],
    settings_for: Callable[..., Settings],
    edit: dict[str, object],
    what: str,
) -> None:
    """Valid JSON, an object, but not a manifest (fields a reader relies on missing or of another kind, its
    files outside its run's folder): named as damaged by the lake's readers and a commit's stage, on a disk
    and on S3, where readers failed with a KeyError or a TypeError naming no file, or read another run's."""
    endpoint, bucket = moto_s3
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, use_listings_cache=False)
    s3_path = f"s3://{bucket}/{KEY}"
    body = json.dumps({k: v for k, v in {**GOOD, **edit}.items() if v is not ...})
    fs.pipe(s3_path, body.encode())
    with pytest.raises(DamagedLakeFile, match=re.escape(f"{s3_path} is damaged: not a manifest: {what}")):
        manifest_cas.read_manifest(fs, s3_path)
    fs.pipe(s3_path, json.dumps(GOOD).encode())
    assert manifest_cas.read_manifest(fs, s3_path).payload == GOOD

    lake = Lake(settings_for())
    manifest = Path(lake.path("consumer", "ufs", "_manifest.json"))
    manifest.parent.mkdir(parents=True)
    manifest.write_text(body)
    for read in (
        lambda: lake.manifest("consumer", "ufs"),
        lambda: lake.committed_files("consumer", "ufs"),
        lambda: lake.stage("consumer", "ufs"),
    ):
        with pytest.raises(
            DamagedLakeFile, match=re.escape(f"{manifest} is damaged: not a manifest: {what}")
        ):
            read()
    manifest.write_text(json.dumps(GOOD))
    assert lake.committed_files("consumer", "ufs") == [lake.path("consumer", "ufs", "run=r2/part-0.parquet")]
