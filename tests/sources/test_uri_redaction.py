"""No secret of a MongoDB URI reaches a message or a log: unescaped passwords, secret-bearing options.

Each hostile URI is tried where a URI can surface: the redaction functions themselves, the error of a
connection that fails (bad URI, bad option, unreachable server), a stream that breaks mid-run, the
manifest's `server`, and the logs (the driver's included).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from pymongo import MongoClient

from flows.errors import SourceError, SourceUnavailable
from flows.lake import Lake
from flows.settings import Settings
from flows.sources.local_mongo import SecantusProcess, free_port
from flows.sources.mongo import extract_pnadc
from flows.sources.mongo_uri import redact, redacted_uri, secrets, server_of
from tests.support.sources import DATE

# (URI template with {port}, the secrets and pieces of them that must never show)
HOSTILE: list[tuple[str, list[str]]] = [
    # an unescaped "@" in the password: pymongo refuses the URI; its tail must not be taken for a host
    ("mongodb://etl:Secret@Tail-PW@127.0.0.1:{port}/?directConnection=true", ["Secret", "Tail-PW"]),
    ("mongodb://etl:Esc%40ped-PW@127.0.0.1:{port}/?directConnection=true", ["Esc%40ped-PW", "Esc@ped-PW"]),
    ("mongodb://etl:Quest?on-PW@127.0.0.1:{port}/?directConnection=true", ["Quest?on-PW", "on-PW"]),
    (
        "mongodb://127.0.0.1:{port}/?directConnection=true&tls=true&tlsCertificateKeyFile=/nonexistent.pem"
        "&tlsCertificateKeyFilePassword=K3y-File-PW",
        ["K3y-File-PW"],
    ),
    (
        "mongodb://127.0.0.1:{port}/?directConnection=true&proxyHost=127.0.0.1&proxyPort={port}"
        "&proxyUsername=Pr0xy-User&proxyPassword=Pr0xy-PW",
        ["Pr0xy-User", "Pr0xy-PW"],
    ),
    (
        "mongodb://AKIAEXAMPLE:Aws-S3cret-PW@127.0.0.1:{port}/?directConnection=true&authMechanism=MONGODB-AWS"
        "&authMechanismProperties=AWS_SESSION_TOKEN:S3ssion-T0ken",
        ["Aws-S3cret-PW", "S3ssion-T0ken"],
    ),
    (  # an option pymongo rejects, beside a secret one: the rejection must not quote the secret
        "mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=soon&tlsCertificateKeyFilePassword=K3y-PW2",
        ["K3y-PW2"],
    ),
]


def _assert_hidden(text: str, hidden: list[str]) -> None:
    for secret in hidden:
        assert secret not in text, f"{secret!r} leaked in: {text}"


@pytest.mark.parametrize(("template", "hidden"), HOSTILE)
def test_the_redaction_functions_hide_every_secret(template: str, hidden: list[str]) -> None:
    uri = template.format(port=27017)
    shown = redacted_uri(uri)
    _assert_hidden(shown, hidden)
    assert "127.0.0.1:27017" in shown and "***" in shown
    assert server_of(uri) == "mongodb://127.0.0.1:27017"
    message = f"failed for {uri}: the driver said {' and '.join(secrets(uri))}"
    _assert_hidden(redact(message, uri), hidden)
    assert "127.0.0.1:27017" in redact(message, uri)


@pytest.mark.parametrize(("template", "hidden"), HOSTILE)
def test_a_failed_connection_never_shows_a_secret(
    template: str, hidden: list[str], fast: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    settings = fast(mongo_uri=template.format(port=port))
    with pytest.raises((SourceError, SourceUnavailable)) as err:
        extract_pnadc(settings, Lake(settings), DATE)
    message = str(err.value)
    assert f"127.0.0.1:{port}" in message  # still says where
    _assert_hidden(message, hidden)
    _assert_hidden(caplog.text, hidden)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_a_broken_stream_and_the_manifest_never_show_a_secret(
    fast: Callable[..., Settings], seeded: Callable[[int], SecantusProcess], caplog: pytest.LogCaptureFixture
) -> None:
    """The driver talks to the real server; the settings' URI (the one messages quote) is hostile."""
    caplog.set_level(logging.DEBUG)
    server = seeded(1_000)
    hostile = (
        f"mongodb://etl:Secret@Tail-PW@127.0.0.1:{server.port}/?tlsCertificateKeyFilePassword=K3y-File-PW"
    )
    hidden = ["Secret", "Tail-PW", "K3y-File-PW"]
    admin: MongoClient[Any] = MongoClient(server.uri)
    settings = fast(mongo_uri=hostile, mongo_batch_size=300, mongo_reconnects=0)
    lake = Lake(settings)
    admin.admin.command(
        "configureFailPoint",
        "failCommand",
        mode={"times": 1},
        data={"failCommands": ["getMore"], "closeConnection": True},
    )
    with pytest.raises(SourceUnavailable) as err:
        extract_pnadc(settings, lake, DATE, client=MongoClient(server.uri))
    assert "the stream broke" in str(err.value) and f"127.0.0.1:{server.port}" in str(err.value)
    _assert_hidden(str(err.value), hidden)

    manifest = extract_pnadc(settings, lake, DATE, client=MongoClient(server.uri)).manifest
    assert manifest["server"] == f"mongodb://127.0.0.1:{server.port}"
    _assert_hidden(str(manifest), hidden)
    _assert_hidden(caplog.text, hidden)
