"""flows/services/ingestion.py without Prefect: each IBGE endpoint fetched from a real HTTP stand-in and
committed unchanged as its raw unit; what it hands back is what the lake's manifest says."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from flows.errors import SourceError
from flows.lake import Lake
from flows.layout import IBGE_ENTITIES, raw_ibge
from flows.services.ingestion import land_ibge, land_ibge_endpoint
from flows.settings import Settings
from flows.sources.ibge import LiveIbge
from tests.support.ibge_server import FIXTURES, Fault, IbgeServer
from tests.support.sources import DATE

pytestmark = pytest.mark.integration  # each endpoint from a real HTTP stand-in (IbgeServer)


def _landed_bytes(lake: Lake, entity: str) -> bytes:
    [path] = lake.committed_files("raw", raw_ibge(entity, DATE))
    with lake.fs("raw").open(path, "rb") as fh:
        return fh.read()


def test_every_endpoint_is_landed_with_what_its_manifest_records(
    fast: Callable[..., Settings], ibge_server: IbgeServer
) -> None:
    settings = fast(ibge_base_url=ibge_server.base_url)
    lake = Lake(settings)
    ibge_server.inject("mesorregioes", Fault(status=503))
    landed = land_ibge(lake, LiveIbge(settings), DATE)
    assert list(landed) == list(IBGE_ENTITIES)
    for entity, done in landed.items():
        body = (FIXTURES / f"{entity}.json").read_bytes()
        assert done.entity == entity and done.source == "api"
        assert done.records == len(json.loads(body)) > 0
        assert done.url == f"{ibge_server.base_url}/{entity}"
        assert done.attempts == (2 if entity == "mesorregioes" else 1)
        assert done.manifest == lake.manifest("raw", raw_ibge(entity, DATE))
        assert done.manifest["records"] == done.records
        assert _landed_bytes(lake, entity) == body


def test_a_rerun_replaces_the_date_and_a_bad_body_commits_nothing(
    fast: Callable[..., Settings], ibge_server: IbgeServer
) -> None:
    settings = fast(ibge_base_url=ibge_server.base_url)
    lake, source = Lake(settings), LiveIbge(settings)
    first = land_ibge_endpoint(lake, source, "regioes", DATE)
    second = land_ibge_endpoint(lake, source, "regioes", DATE)
    assert second.manifest["run_id"] != first.manifest["run_id"]
    assert lake.manifest("raw", raw_ibge("regioes", DATE)) == second.manifest
    assert lake.partitions("raw", "ibge/regioes") == [DATE]

    ibge_server.inject("microrregioes", Fault(body=b"[{"))  # truncated JSON: not retried
    with pytest.raises(SourceError, match="microrregioes"):
        land_ibge_endpoint(lake, source, "microrregioes", DATE)
    assert lake.manifest("raw", raw_ibge("microrregioes", DATE)) is None
