"""`ingest_ibge` as a Prefect flow: concurrency, the raw manifests, `api`/`snapshot`/`auto`, reruns."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from flows.errors import SourceError, SourceUnavailable
from flows.lake import Lake
from flows.layout import IBGE_ENTITIES
from flows.pipeline import ingest_ibge
from flows.settings import Settings
from tests.support.ibge_server import FIXTURES, Fault, IbgeServer
from tests.support.sources import DATE, dead_url

pytestmark = pytest.mark.integration


def _unit(entity: str) -> str:
    return f"ibge/{entity}/ingestion_date={DATE}"


def test_the_three_endpoints_are_fetched_concurrently(
    prefect_harness: None, fast: Callable[..., Settings], ibge_server: IbgeServer
) -> None:
    for entity in IBGE_ENTITIES:
        ibge_server.inject(entity, Fault(delay_s=1.5))  # each answer takes 1.5 s
    counts = ingest_ibge(DATE, settings=fast(ibge_base_url=ibge_server.base_url))
    assert counts == {"regioes": 5, "mesorregioes": 137, "microrregioes": 558}
    arrivals = sorted(ibge_server.gets(e)[0].at for e in IBGE_ENTITIES)
    # Sequential requests would arrive >= 1.5 s apart; concurrent ones all arrive while the first waits.
    assert arrivals[-1] - arrivals[0] < 1.0, arrivals


def test_each_endpoint_lands_unchanged_with_its_manifest(
    prefect_harness: None, fast: Callable[..., Settings], ibge_server: IbgeServer
) -> None:
    ibge_server.inject("regioes", Fault(status=503))
    settings = fast(ibge_base_url=ibge_server.base_url)
    ingest_ibge(DATE, settings=settings)
    lake = Lake(settings)
    for entity in IBGE_ENTITIES:
        m = lake.manifest("raw", _unit(entity))
        assert m["source"] == "api" and m["url"] == f"{ibge_server.base_url}/{entity}"
        assert m["entity"] == entity and m["version"] and m["started_at"] <= m["finished_at"]
        assert m["attempts"] == (2 if entity == "regioes" else 1)
        [path] = lake.committed_files("raw", _unit(entity))
        body = Path(path).read_bytes()
        assert body == (FIXTURES / f"{entity}.json").read_bytes()  # what the API said, byte for byte
        [entry] = m["files"]
        assert entry["sha256"] == hashlib.sha256(body).hexdigest() and entry["records"] == m["records"]
    assert lake.partitions("raw", "ibge/regioes") == [DATE]


def test_a_rerun_of_the_same_date_replaces_it(
    prefect_harness: None, fast: Callable[..., Settings], ibge_server: IbgeServer
) -> None:
    settings = fast(ibge_base_url=ibge_server.base_url)
    lake = Lake(settings)
    ingest_ibge(DATE, settings=settings)
    first = lake.manifest("raw", _unit("mesorregioes"))
    ingest_ibge(DATE, settings=settings)
    second = lake.manifest("raw", _unit("mesorregioes"))
    assert second["run_id"] != first["run_id"] and second["previous_run_id"] == first["run_id"]
    assert lake.partitions("raw", "ibge/mesorregioes") == [DATE]
    assert len(lake.committed_files("raw", _unit("mesorregioes"))) == 1


def test_auto_falls_back_to_the_snapshot_when_the_host_cannot_be_reached(
    prefect_harness: None, fast: Callable[..., Settings]
) -> None:
    settings = fast(ibge_source="auto", ibge_base_url=dead_url())
    counts = ingest_ibge(DATE, settings=settings)
    assert counts == {"regioes": 5, "mesorregioes": 137, "microrregioes": 558}
    lake = Lake(settings)
    for entity in IBGE_ENTITIES:
        m = lake.manifest("raw", _unit(entity))
        assert m["source"] == "snapshot" and m["url"] == f"snapshot:{entity}.json"


@pytest.mark.parametrize(
    "fault",
    [Fault(status=500), Fault(body=b"<html><body>maintenance</body></html>")],
    ids=["http-500", "html-page"],
)
def test_auto_never_falls_back_on_an_http_error_or_a_bad_body(
    prefect_harness: None, fast: Callable[..., Settings], ibge_server: IbgeServer, fault: Fault
) -> None:
    ibge_server.inject("regioes", *[fault] * 10)
    settings = fast(ibge_source="auto", ibge_base_url=ibge_server.base_url, ibge_max_retries=2)
    with pytest.raises(SourceError, match="/regioes"):
        ingest_ibge(DATE, settings=settings)
    lake = Lake(settings)
    assert lake.manifest("raw", _unit("regioes")) is None  # nothing landed for the failing endpoint
    sources = {(lake.manifest("raw", _unit(e)) or {}).get("source") for e in IBGE_ENTITIES}
    assert "snapshot" not in sources
    assert lake.runs("raw", _unit("regioes")) == []  # and its staged run was cleaned up


def test_api_mode_fails_the_run_when_the_host_cannot_be_reached(
    prefect_harness: None, fast: Callable[..., Settings]
) -> None:
    settings = fast(ibge_source="api", ibge_base_url=dead_url(), ibge_max_retries=1)
    with pytest.raises(SourceUnavailable, match=r"regioes: ConnectError"):
        ingest_ibge(DATE, settings=settings)
    assert Lake(settings).partitions("raw", "ibge/regioes") == []


def test_snapshot_mode_never_calls_the_api(
    prefect_harness: None, fast: Callable[..., Settings], ibge_server: IbgeServer
) -> None:
    settings = fast(ibge_source="snapshot", ibge_base_url=ibge_server.base_url)
    ingest_ibge(DATE, settings=settings)
    assert ibge_server.requests == []
    assert Lake(settings).manifest("raw", _unit("regioes"))["source"] == "snapshot"
