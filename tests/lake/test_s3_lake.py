"""Both sources into an s3:// raw zone, on moto's S3 server over a real socket."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from pymongo import MongoClient

from flows.errors import SourceUnavailable
from flows.lake import Lake
from flows.layout import raw_pnadc
from flows.pipeline import ingest_ibge, ingest_pnadc
from flows.settings import Settings
from flows.sources.local_mongo import SecantusProcess
from flows.sources.mongo import extract_pnadc
from tests.sources.mongo.support import OnGetMore
from tests.support.ibge_server import IbgeServer
from tests.support.sources import DATE, raw_docs, source_ids

pytestmark = pytest.mark.integration


@pytest.fixture
def s3_settings(fast: Callable[..., Settings], moto_s3: tuple[str, str]) -> Callable[..., Settings]:
    endpoint, bucket = moto_s3

    def make(**overrides: Any) -> Settings:
        return fast(lake_root=f"s3://{bucket}/lake", s3_endpoint_url=endpoint, **overrides)

    return make


def _keys(endpoint: str, bucket: str, prefix: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def test_both_sources_land_in_s3_with_manifests_and_a_rerun_replaces(
    prefect_harness: None,
    s3_settings: Callable[..., Settings],
    moto_s3: tuple[str, str],
    ibge_server: IbgeServer,
    seeded: Callable[[int], SecantusProcess],
) -> None:
    endpoint, bucket = moto_s3
    server = seeded(2_000)
    settings = s3_settings(ibge_base_url=ibge_server.base_url, mongo_uri=server.uri, mongo_batch_size=800)
    lake = Lake(settings)
    assert lake.root("raw") == f"s3://{bucket}/lake/raw"

    ingest_ibge(DATE, settings=settings)
    assert ingest_pnadc(DATE, settings=settings) == 2_000
    keys = _keys(endpoint, bucket, "lake/raw/")
    for unit in ("ibge/regioes", "ibge/mesorregioes", "ibge/microrregioes", "pnadc"):
        assert f"lake/raw/{unit}/ingestion_date={DATE}/_manifest.json" in keys
    assert not [k for k in keys if "_checkpoints" in k]

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    first = lake.manifest("raw", raw_pnadc(DATE))
    assert first["records"] == first["source_count"] == 2_000 and first["source"] == "mongodb"
    for entry in first["files"]:
        key = f"lake/raw/pnadc/ingestion_date={DATE}/{entry['name']}"
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == entry["sha256"]
        assert len(gzip.decompress(body).splitlines()) == entry["records"]
    assert lake.manifest("raw", f"ibge/regioes/ingestion_date={DATE}")["source"] == "api"
    assert [d["_id"] for d in raw_docs(lake)] == source_ids(server.uri)

    # the same date again: replaced, not duplicated
    ingest_ibge(DATE, settings=settings)
    ingest_pnadc(DATE, settings=settings)
    second = lake.manifest("raw", raw_pnadc(DATE))
    assert second["previous_run_id"] == first["run_id"] and second["records"] == 2_000
    assert lake.partitions("raw", "pnadc") == [DATE]
    assert [d["_id"] for d in raw_docs(lake)] == source_ids(server.uri)
    meso = lake.manifest("raw", f"ibge/mesorregioes/ingestion_date={DATE}")
    assert meso["previous_run_id"] is not None and len(meso["files"]) == 1

    # a third time: the run before the previous one is deleted from S3
    ingest_pnadc(DATE, settings=settings)
    runs = {k.split("/")[4] for k in _keys(endpoint, bucket, f"lake/raw/pnadc/ingestion_date={DATE}/run=")}
    assert runs == {f"run={second['run_id']}", f"run={lake.manifest('raw', raw_pnadc(DATE))['run_id']}"}


def test_an_uncommitted_s3_batch_is_invisible_and_resumes_in_place(
    s3_settings: Callable[..., Settings], moto_s3: tuple[str, str], seeded: Callable[[int], SecantusProcess]
) -> None:
    server = seeded(3_000)
    settings = s3_settings(mongo_uri=server.uri, mongo_batch_size=500, mongo_reconnects=0)
    lake = Lake(settings)
    hook = OnGetMore(3, lambda: server.stop(kill=True))  # mid-stream: 1,500 documents read
    with pytest.raises(SourceUnavailable):
        extract_pnadc(settings, lake, DATE, client=MongoClient(server.uri, event_listeners=[hook]))
    assert lake.partitions("raw", "pnadc") == [] and lake.manifest("raw", raw_pnadc(DATE)) is None
    [run_id] = lake.runs("raw", raw_pnadc(DATE))

    server.start()
    result = extract_pnadc(settings, lake, DATE)
    assert result.manifest["run_id"] == run_id and result.resumed_from is not None
    assert [d["_id"] for d in raw_docs(lake)] == source_ids(server.uri)
    assert lake.partitions("raw", "pnadc") == [DATE]
