"""The client: a wrong password or an unreachable server fails fast, clearly, redacted; timeouts."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from flows.errors import SourceError, SourceUnavailable
from flows.lake import MANIFEST, Lake
from flows.layout import raw_pnadc
from flows.settings import Settings
from flows.sources.local_mongo import SecantusProcess, free_port
from flows.sources.mongo import connect, extract_pnadc
from tests.support.sources import DATE, PASSWORD, USER


def test_a_wrong_password_fails_fast_and_the_password_never_leaks(
    fast: Callable[..., Settings], auth_mongo: SecantusProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-Pa55word"
    uri = f"mongodb://{USER}:{wrong}@127.0.0.1:{auth_mongo.port}/?directConnection=true&authSource=admin"
    settings = fast(mongo_uri=uri)
    started = time.monotonic()
    with pytest.raises(SourceError) as err:
        extract_pnadc(settings, Lake(settings), DATE)
    assert time.monotonic() - started < 15.0  # fails fast, not after pymongo's 30 s server selection
    message = str(err.value)
    assert "refused the credentials (code 18)" in message and f"{USER}:***@" in message
    assert wrong not in message and wrong not in caplog.text
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no chained driver error

    good = f"mongodb://{USER}:{PASSWORD}@127.0.0.1:{auth_mongo.port}/?directConnection=true&authSource=admin"
    settings = fast(mongo_uri=good, mongo_batch_size=300)
    lake = Lake(settings)
    manifest = extract_pnadc(settings, lake, DATE, logger=logging.getLogger("tests.sources.auth")).manifest
    assert manifest["records"] == 1_000
    assert PASSWORD not in Path(lake.path("raw", raw_pnadc(DATE), MANIFEST)).read_text()
    assert USER not in manifest["server"]
    assert PASSWORD not in caplog.text and PASSWORD not in repr(settings)
    assert any(r.name.startswith("pymongo") for r in caplog.records)  # the driver's own logs were seen too


def test_an_unreachable_server_fails_fast_and_clearly(fast: Callable[..., Settings]) -> None:
    port = free_port()
    settings = fast(mongo_uri=f"mongodb://{USER}:{PASSWORD}@127.0.0.1:{port}/?directConnection=true")
    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as err:
        extract_pnadc(settings, Lake(settings), DATE)
    assert time.monotonic() - started < 15.0  # fails fast, not after pymongo's 30 s server selection
    assert f"@127.0.0.1:{port}/?directConnection=true cannot be reached within 800 ms" in str(err.value)
    assert PASSWORD not in str(err.value)


def test_a_heartbeat_may_wait_longer_than_server_selection(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess]
) -> None:
    # At 2M documents SecantusDB answered heartbeats late while it built the answer; with the 5 s
    # selection timeout as the heartbeat's too, pymongo cancelled the cursor again and again.
    server = seeded(10)
    client = connect(fast(mongo_uri=server.uri, mongo_connect_timeout_ms=45_000))
    try:
        assert client.options.pool_options.connect_timeout == 45.0
        assert client.options.server_selection_timeout == 0.8
    finally:
        client.close()
