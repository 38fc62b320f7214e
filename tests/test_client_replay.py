"""Prefect's own clients, inside `replaying_unavailable` (flows/client_replay.py), replay a quick 503 from
any server: here a small ASGI app served by uvicorn on a real socket. Prefect's own retries are off
(PREFECT_CLIENT_MAX_RETRIES=0), so an answer the client returns is the one our replay ended with."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from prefect.client.base import PrefectHttpxAsyncClient, PrefectHttpxSyncClient
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from flows.client_replay import PATCHED, replayable, replaying_unavailable
from flows.in_process import flow_settings
from flows.temporary_api import FAST_S, REPLAY_DELAYS_S
from tests.support.asgi import request_body


class Answers:
    """Answers each request with the next status of `statuses` (the last one from then on), after
    `slow_s`; keeps each request's body."""

    def __init__(
        self, *statuses: int, slow_s: float = 0, headers: tuple[tuple[bytes, bytes], ...] = ()
    ) -> None:
        self.statuses = list(statuses)
        self.slow_s = slow_s
        self.headers = list(headers)
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.bodies.append(await request_body(receive))
        await asyncio.sleep(self.slow_s)
        status = self.statuses[min(len(self.bodies), len(self.statuses)) - 1]
        await send({"type": "http.response.start", "status": status, "headers": self.headers})
        await send({"type": "http.response.body", "body": b'{"attempt": %d}' % len(self.bodies)})


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: Answers) -> str:
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the stand-in server did not start"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0}):
        yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def _post_sync(url: str) -> tuple[int, bytes]:
    with PrefectHttpxSyncClient(base_url=url, raise_on_all_errors=False) as client:
        response = client.post("/flow_runs/", json={"name": "x"})
        return response.status_code, response.content


def _post_async(url: str) -> tuple[int, bytes]:
    async def post() -> tuple[int, bytes]:
        async with PrefectHttpxAsyncClient(base_url=url, raise_on_all_errors=False) as client:
            response = await client.post("/flow_runs/", json={"name": "x"})
            return response.status_code, response.content

    return asyncio.run(post())


POSTS = pytest.mark.parametrize("post", [_post_sync, _post_async], ids=["sync", "async"])


@POSTS
def test_a_quick_503_is_replayed_with_the_same_body_until_the_server_answers(serve: Any, post: Any) -> None:
    app = Answers(503, 503, 200)
    url = serve(app)
    with replaying_unavailable() as replaying:
        assert replaying  # the pinned Prefect's clients are the ones it wraps
        assert post(url) == (200, b'{"attempt": 3}')
    assert len(app.bodies) == 3 and len(set(app.bodies)) == 1 and b'"name"' in app.bodies[0]


@POSTS
def test_the_last_503_reaches_prefects_retry_logic(serve: Any, post: Any) -> None:
    app = Answers(503)
    url = serve(app)
    with replaying_unavailable():
        status, body = post(url)
    assert status == 503 and len(app.bodies) == 1 + len(REPLAY_DELAYS_S)
    assert body == b'{"attempt": %d}' % len(app.bodies)


@POSTS
def test_a_slow_503_and_other_answers_are_not_replayed(serve: Any, post: Any) -> None:
    slow = Answers(503, 200, slow_s=FAST_S + 0.2)
    other = Answers(500, 200)
    slow_url, other_url = serve(slow), serve(other)
    with replaying_unavailable():
        assert post(slow_url)[0] == 503
        assert post(other_url)[0] == 500
    assert len(slow.bodies) == 1 and len(other.bodies) == 1


def test_outside_the_context_prefects_client_is_as_it_was(serve: Any) -> None:
    originals = {cls: cls.__dict__[PATCHED] for cls in (PrefectHttpxAsyncClient, PrefectHttpxSyncClient)}
    app = Answers(503, 200)
    url = serve(app)
    with replaying_unavailable():
        with replaying_unavailable():
            pass
        assert _post_sync(url)[0] == 200  # the outer context still replays once the inner one closed
    assert {cls: cls.__dict__[PATCHED] for cls in originals} == originals
    assert _post_sync(url)[0] == 200 and len(app.bodies) == 3  # the 200 again: nothing replayed here
    app.statuses = [503]
    assert _post_sync(url)[0] == 503 and len(app.bodies) == 4


def test_a_503_that_says_when_to_come_back_is_left_to_prefects_retries(serve: Any) -> None:
    app = Answers(503, 200, headers=((b"retry-after", b"0"),))
    url = serve(app)
    with replaying_unavailable():
        assert _post_sync(url)[0] == 503
    assert len(app.bodies) == 1
    # Prefect retries a maintenance 503 without counting it against its retries, so only the rule shows it
    now = time.monotonic()
    maintenance = httpx.Response(503, headers={"Prefect-Maintenance": "true"})
    assert not replayable(maintenance, now) and replayable(httpx.Response(503), now)


def test_a_prefect_whose_client_it_cannot_wrap_runs_with_its_own_retries(
    serve: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    original = PrefectHttpxSyncClient.__dict__[PATCHED]

    def without_send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:  # another version's shape
        return original(self, request, *args, **kwargs)

    monkeypatch.setattr(PrefectHttpxSyncClient, PATCHED, without_send)
    app = Answers(503, 200)
    url = serve(app)
    with caplog.at_level("WARNING", logger="flows.client_replay"), replaying_unavailable() as replaying:
        assert not replaying
        assert _post_sync(url)[0] == 503
    assert len(app.bodies) == 1 and "Prefect's own 2 s wait" in caplog.text
    assert PrefectHttpxSyncClient.__dict__[PATCHED] is without_send


def test_a_vamosjuntos_commands_flows_replay(serve: Any) -> None:
    """`flow_settings`, which `vamosjuntos run` and its backfill enter, holds the replay."""
    app = Answers(503, 200)
    url = serve(app)
    with flow_settings():
        assert _post_sync(url)[0] == 200
    assert len(app.bodies) == 2


def test_against_the_runs_temporary_server_the_client_leaves_replays_to_it(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its app replays a quick 503 itself (flows/temporary_api.py): the client does not replay as well."""
    from prefect.settings import PREFECT_API_URL

    from flows.in_process import TEMPORARY_API_URL

    app = Answers(503, 200)
    url = serve(app)
    monkeypatch.setenv(TEMPORARY_API_URL, f"{url}/api")
    with temporary_settings(updates={PREFECT_API_URL: f"{url}/api"}), flow_settings():
        assert _post_sync(url)[0] == 503
    assert len(app.bodies) == 1
