"""The IBGE client against a real HTTP stand-in on a real socket, one fault at a time."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable

import pytest

from flows.errors import SourceError, SourceUnavailable
from flows.settings import Settings
from flows.sources.ibge import LiveIbge, _retry_after
from tests.support.ibge_server import Fault, IbgeServer
from tests.support.sources import dead_url

HTML = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


@pytest.fixture
def client(fast: Callable[..., Settings], ibge_server: IbgeServer) -> Callable[..., LiveIbge]:
    def make(**overrides: object) -> LiveIbge:
        return LiveIbge(fast(ibge_base_url=ibge_server.base_url, **overrides))

    return make


def _gaps(server: IbgeServer, entity: str) -> list[float]:
    times = [r.at for r in server.gets(entity)]
    return [b - a for a, b in itertools.pairwise(times)]


def test_a_healthy_endpoint_is_fetched_validated_and_named(client, ibge_server: IbgeServer) -> None:
    fetched = client().fetch("mesorregioes")
    assert (fetched.source, fetched.records, fetched.attempts) == ("api", 137, 1)
    assert fetched.url == f"{ibge_server.base_url}/mesorregioes"
    [request] = ibge_server.gets("mesorregioes")
    assert request.headers["User-Agent"].startswith("vamosjuntos-lakehouse/")
    assert request.headers["Accept"] == "application/json"


def test_500_on_every_attempt_fails_after_the_allowed_retries(client, ibge_server: IbgeServer) -> None:
    ibge_server.inject("regioes", *[Fault(status=500, body=b"oops")] * 10)
    with pytest.raises(SourceError) as err:
        client(ibge_max_retries=3).fetch("regioes")
    message = str(err.value)
    assert f"GET {ibge_server.base_url}/regioes" in message
    assert "HTTP 500" in message and "4 attempt(s)" in message and "VAMOSJUNTOS_IBGE_MAX_RETRIES" in message
    assert len(ibge_server.gets("regioes")) == 4  # 1 + 3 retries, bounded


def test_503_then_success_is_retried_transparently(client, ibge_server: IbgeServer) -> None:
    ibge_server.inject("regioes", Fault(status=503), Fault(status=503))
    fetched = client().fetch("regioes")
    assert (fetched.records, fetched.attempts) == (5, 3)
    assert len(ibge_server.gets("regioes")) == 3


def test_backoff_grows_exponentially_with_jitter(client, ibge_server: IbgeServer) -> None:
    live = client(ibge_backoff_base_s=1.0)
    for retry, (low, high) in {1: (0.5, 1.0), 2: (1.0, 2.0), 3: (2.0, 4.0), 10: (15.0, 30.0)}.items():
        waits = {live._backoff(retry) for _ in range(50)}
        assert all(low <= w <= high for w in waits) and len(waits) > 1  # bounded, capped, jittered

    ibge_server.inject("regioes", *[Fault(status=502)] * 3)
    client(ibge_backoff_base_s=0.2).fetch("regioes")
    gaps = _gaps(ibge_server, "regioes")
    assert [g >= floor for g, floor in zip(gaps, (0.1, 0.2, 0.4), strict=True)] == [True] * 3, gaps


def test_429_retry_after_is_honoured(client, ibge_server: IbgeServer) -> None:
    ibge_server.inject("regioes", Fault(status=429, headers={"Retry-After": "1"}))
    fetched = client(ibge_backoff_base_s=0.01).fetch("regioes")  # backoff alone would wait ~10 ms
    assert fetched.attempts == 2
    [gap] = _gaps(ibge_server, "regioes")
    # Waited the server's second, not the ~10 ms backoff; the upper bound only rules out a much longer
    # wait (a loaded machine adds seconds to any gap, so it is not a timing assertion).
    assert 1.0 <= gap < 10.0


def test_a_retry_after_beyond_the_budget_gives_up_at_once(client, ibge_server: IbgeServer) -> None:
    ibge_server.inject("regioes", Fault(status=429, headers={"Retry-After": "120"}))
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"HTTP 429 with Retry-After 120 s.*retry budget"):
        client(ibge_retry_budget_s=5).fetch("regioes")
    assert time.monotonic() - started < 60.0  # far below the 120 s it would have slept
    assert len(ibge_server.gets("regioes")) == 1


def test_retry_after_as_an_http_date() -> None:
    from email.utils import formatdate

    import httpx

    response = httpx.Response(429, headers={"Retry-After": formatdate(time.time() + 30, usegmt=True)})
    assert 28 <= (_retry_after(response) or 0) <= 30
    assert _retry_after(httpx.Response(429, headers={"Retry-After": "soon"})) is None


def test_a_read_timeout_is_retried(client, ibge_server: IbgeServer) -> None:
    ibge_server.inject("regioes", Fault(delay_s=2.0))
    started = time.monotonic()
    fetched = client(ibge_read_timeout_s=0.3).fetch("regioes")
    assert fetched.attempts == 2 and fetched.records == 5
    assert time.monotonic() - started < 1.5  # gave up on the slow answer after ~0.3 s


def test_timeouts_on_every_attempt_stay_within_the_total_budget(client, ibge_server: IbgeServer) -> None:
    ibge_server.inject("regioes", *[Fault(delay_s=3.0)] * 20)
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"ReadTimeout.*regioes|regioes.*ReadTimeout") as err:
        client(ibge_read_timeout_s=0.5, ibge_max_retries=50, ibge_retry_budget_s=2.0).fetch("regioes")
    elapsed = time.monotonic() - started
    assert elapsed < 2.5, elapsed
    assert "retry budget" in str(err.value)


def test_a_connection_cut_mid_body_is_retried(client, ibge_server: IbgeServer) -> None:
    ibge_server.inject("microrregioes", Fault(cut_after=1_000))
    fetched = client().fetch("microrregioes")
    assert (fetched.records, fetched.attempts) == (558, 2)


def test_truncated_json_fails_clearly_and_is_not_retried(client, ibge_server: IbgeServer) -> None:
    ibge_server.inject("mesorregioes", Fault(truncate_to=700))
    with pytest.raises(SourceError) as err:
        client().fetch("mesorregioes")
    assert f"GET {ibge_server.base_url}/mesorregioes" in str(err.value)
    assert "not valid JSON" in str(err.value) and "700 bytes, truncated?" in str(err.value)
    assert len(ibge_server.gets("mesorregioes")) == 1


def test_an_html_page_instead_of_json_fails_clearly(client, ibge_server: IbgeServer) -> None:
    ibge_server.inject("regioes", Fault(body=HTML, headers={"Content-Type": "text/html"}))
    with pytest.raises(SourceError, match=r"/regioes: expected JSON, got an HTML page: '<!DOCTYPE html>"):
        client().fetch("regioes")
    assert len(ibge_server.gets("regioes")) == 1


def test_an_html_error_page_with_a_5xx_status_is_retried(client, ibge_server: IbgeServer) -> None:
    ibge_server.inject("regioes", Fault(status=502, body=HTML, headers={"Content-Type": "text/html"}))
    assert client().fetch("regioes").attempts == 2


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"regioes": []}, "expected a JSON array, got dict"),
        ([], "the array is empty"),
        ([{"id": "1", "sigla": "N", "nome": "Norte"}], r"wrong shape at \[0.id\]"),
        ([{"id": 1, "nome": "Norte"}], r"wrong shape at \[0.sigla\]: Field required"),
        ([{"id": 1, "sigla": "N", "nome": "Norte"}] * 2, "1 duplicated ids"),
    ],
)
def test_a_wrong_shape_fails_clearly(client, ibge_server: IbgeServer, body: object, expected: str) -> None:
    ibge_server.inject("regioes", Fault(body=json.dumps(body).encode()))
    with pytest.raises(SourceError, match=rf"GET {ibge_server.base_url}/regioes: {expected}"):
        client().fetch("regioes")


def test_a_404_is_not_retried(client, ibge_server: IbgeServer) -> None:
    ibge_server.inject("regioes", Fault(status=404, body=b"not here"))
    with pytest.raises(SourceError, match=r"regioes: HTTP 404 \(not retried\): 'not here'"):
        client().fetch("regioes")
    assert len(ibge_server.gets("regioes")) == 1


def test_an_unreachable_host_is_unavailable_quickly(fast: Callable[..., Settings]) -> None:
    url = dead_url()
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=r"ConnectError.*3 attempt\(s\)"):
        LiveIbge(fast(ibge_base_url=url, ibge_max_retries=2)).fetch("regioes")
    assert time.monotonic() - started < 10.0  # bounded retries, not an open-ended wait
    assert not LiveIbge(fast(ibge_base_url=url)).reachable()
