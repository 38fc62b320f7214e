"""The temporary API server's app (flows/temporary_api.py) replays a request its app answered 503:
in front of small ASGI apps standing in for Prefect's, served by uvicorn on a real socket. That the real
temporary server runs it is checked in tests/in_process_isolated.py."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from flows.temporary_api import FAST_S, REPLAY_DELAYS_S, ReplayUnavailable
from tests.support.asgi import request_body


class Recorder:
    """An ASGI app answering each request with `answers[i]` (status, body chunks) in turn, keeping the
    body it received each time; its lifespan start is recorded too. `raising`: an answer ≥ 500 is followed
    by an exception, as Prefect's app does; `slow_s`: each answer waits that long."""

    def __init__(self, *answers: tuple[int, list[bytes]], raising: bool = False, slow_s: float = 0) -> None:
        self.answers = list(answers)
        self.raising = raising
        self.slow_s = slow_s
        self.bodies: list[bytes] = []
        self.started = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                self.started = True
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.bodies.append(await request_body(receive))
        await asyncio.sleep(self.slow_s)
        status, chunks = self.answers[min(len(self.bodies), len(self.answers)) - 1]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"x-attempt", b"%d" % len(self.bodies))],
            }
        )
        for i, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": i < len(chunks) - 1})
        if status >= 500 and self.raising:
            # As Starlette's ServerErrorMiddleware does after the answer of Prefect's `Exception` handler.
            raise RuntimeError("database is locked")


@pytest.fixture
def serve() -> Iterator[Any]:
    """Serves an app behind ReplayUnavailable with uvicorn on a free port; yields a function of the app
    that returns its base URL."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: Any) -> str:
        config = uvicorn.Config(
            ReplayUnavailable(app), host="127.0.0.1", port=0, lifespan="on", log_level="error"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        for _ in range(200):
            if server.started:  # port 0: the kernel chose one
                return f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
            time.sleep(0.05)
        raise RuntimeError("uvicorn did not start")

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize("raising", [False, True])
def test_a_503_is_replayed_with_the_whole_body_and_the_client_sees_the_answer_that_is_not(
    serve: Any, raising: bool
) -> None:
    app = Recorder((503, [b"busy"]), (503, [b"busy again"]), (201, [b"created: ", b"third"]), raising=raising)
    url = serve(app)
    body = bytes(range(256)) * 800  # 200 KB, sent in chunks: each replay gets it whole
    answer = httpx.post(f"{url}/api/flow_runs/", content=_chunks(body, 16_384), timeout=10)
    assert (answer.status_code, answer.content, answer.headers["x-attempt"]) == (201, b"created: third", "3")
    assert app.bodies == [body] * 3
    assert app.started  # the lifespan (Prefect's services) reached the app through the wrapper


@pytest.mark.parametrize("raising", [False, True])
def test_the_last_503_reaches_the_client_whose_own_retries_decide(serve: Any, raising: bool) -> None:
    app = Recorder((503, [b"busy, first"]), (503, [b"busy, again"]), raising=raising)
    started = time.monotonic()
    answer = httpx.get(f"{serve(app)}/api/health", timeout=10)
    attempts = len(REPLAY_DELAYS_S) + 1
    assert (answer.status_code, answer.content) == (503, b"busy, again")
    assert answer.headers["x-attempt"] == str(attempts) and len(app.bodies) == attempts
    assert time.monotonic() - started >= sum(REPLAY_DELAYS_S)  # it waited between the attempts


@pytest.mark.parametrize(("status", "raising"), [(200, False), (404, False), (500, False), (500, True)])
def test_any_other_answer_is_sent_as_it_is_after_one_call(serve: Any, status: int, raising: bool) -> None:
    app = Recorder((status, [b"part one, ", b"part two"]), raising=raising)
    answer = httpx.post(f"{serve(app)}/api/logs/", json=[{"message": "x"}], timeout=10)
    assert (answer.status_code, answer.content) == (status, b"part one, part two")
    assert app.bodies == [b'[{"message":"x"}]']


def test_a_slow_503_is_not_replayed(serve: Any) -> None:
    """A 503 after a wait (SQLite's busy timeout) would only wait again: the client gets it at once."""
    app = Recorder((503, [b"busy after a wait"]), (201, [b"never"]), raising=True, slow_s=FAST_S + 0.2)
    answer = httpx.get(f"{serve(app)}/api/health", timeout=10)
    assert (answer.status_code, answer.content) == (503, b"busy after a wait") and len(app.bodies) == 1


def _like_prefects(failures: int) -> tuple[Starlette, list[str]]:
    """A Starlette app shaped as Prefect's: its API app mounted under /api (Starlette writes the mount's
    root_path into the request's scope), with a handler for `Exception` that answers 503 for SQLite's
    "database is locked" (Starlette then raises the error again). Its endpoint fails `failures` times."""
    seen: list[str] = []

    async def create(request: Request) -> JSONResponse:
        seen.append(request.scope.get("root_path", ""))
        if len(seen) <= failures:
            raise sqlite3.OperationalError("database is locked")
        return JSONResponse({"name": (await request.json())["name"], "attempt": len(seen)}, status_code=201)

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"exception_message": "Service Unavailable"}, status_code=503)

    api = Starlette(
        routes=[Route("/flow_runs/", create, methods=["POST"])], exception_handlers={Exception: unavailable}
    )
    return Starlette(routes=[Mount("/api", app=api)]), seen


def test_an_app_shaped_as_prefects_is_replayed_on_a_fresh_scope_each_time(serve: Any) -> None:
    app, seen = _like_prefects(failures=2)
    answer = httpx.post(f"{serve(app)}/api/flow_runs/", json={"name": "ingest_pnadc"}, timeout=10)
    assert (answer.status_code, answer.json()) == (201, {"name": "ingest_pnadc", "attempt": 3})
    assert seen == ["/api"] * 3  # each attempt routed from the request's own scope, not the last one's


def test_an_error_with_no_answer_held_goes_to_the_server_as_it_is() -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("not a 503")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        raise AssertionError(f"nothing is sent: {message}")

    scope = {"type": "http", "method": "GET", "path": "/api/health", "headers": []}
    with pytest.raises(ValueError, match="not a 503"):
        asyncio.run(ReplayUnavailable(failing)(scope, receive, send))
