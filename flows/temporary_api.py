"""The app of the temporary Prefect API server that `vamosjuntos run` starts (flows/in_process.py): Prefect's
own, with a request replayed where Prefect's SQLite database refused it for no lasting reason.

Prefect 3.9 creates a flow or task run in a transaction that reads before it writes. In SQLite's WAL mode,
when another connection commits between that read and the write (the server's task-run recorder writing
the states of the tasks that just ended, one transaction each), SQLite fails the write at once: waiting
cannot help a transaction whose snapshot is stale. The server answers 503 and Prefect's client tries again
two seconds later, when a new transaction succeeds at once. So this app replays a request that Prefect
answered 503 quickly, after 0.05, 0.1, 0.2 and 0.4 s, before the client sees it: it resends only what
Prefect's client would resend itself, and sooner (a handler that commits in parts, as the logs endpoint
does per batch, may repeat a part, as it would on the client's retry). The last answer reaches the client,
whose retries are unchanged, as does a 503 that came slowly (after SQLite's busy timeout). Measured in
docs/operations.md ("What Prefect costs a local run").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prefect.logging import get_logger

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

UNAVAILABLE = 503
# Waits before each replay: the task-run recorder writes each task's state change in a transaction of its
# own, one after another for ~0.1 s after a subflow's tasks end, and an immediate replay met the next one.
REPLAY_DELAYS_S = (0.05, 0.1, 0.2, 0.4)
# A stale snapshot fails at once: a 503 slower than this came from something a replay would only repeat.
FAST_S = 1.0


def create_app() -> ASGIApp:
    """uvicorn's factory (`--factory flows.temporary_api:create_app`): Prefect's app, replaying 503s."""
    from prefect.server.api.server import create_app as prefect_app

    return ReplayUnavailable(prefect_app())


class ReplayUnavailable:
    """An ASGI app that runs an HTTP request through `app` again, after each of REPLAY_DELAYS_S, while `app`
    answers 503 within FAST_S.

    The request's body is read before the first attempt (Prefect's requests are small JSON documents) so
    that the replay gets it whole; a 503's own answer is held back, never half-sent, and so is the
    exception behind it that the app raises after answering."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the lifespan (Prefect's services) and websockets go through as they are
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away before it had sent its body
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)

        for delay in REPLAY_DELAYS_S:
            started = time.monotonic()
            held, error = await self._attempt(scope, _replaying(body, receive), send)
            if not held:
                return
            if time.monotonic() - started > FAST_S:
                # A 503 that came slowly (after SQLite's busy timeout, say): a replay would wait as long
                # again, for a client that may have given up. It gets the answer, the server the error.
                for message in held:
                    await send(message)
                if error is not None:
                    raise error
                return
            # Prefect's server logger: in the server's output with PREFECT_LOGGING_SERVER_LEVEL=DEBUG
            get_logger("server").debug(
                "%s %s answered 503 (%r): replayed in %g s", scope["method"], scope["path"], error, delay
            )
            await asyncio.sleep(delay)
        await self.app(dict(scope), _replaying(body, receive), send)  # the last answer goes to the client

    async def _attempt(
        self, scope: MutableMapping[str, Any], receive: Receive, send: Send
    ) -> tuple[list[Message], Exception | None]:
        """One attempt, on a copy of the scope (Starlette writes into it, e.g. a mount's root_path). Its
        answer goes to the client unless it is a 503: then the 503's messages, held back, and the
        exception the app raised after answering, if any."""
        held: list[Message] = []

        async def holding_unavailable(message: Message) -> None:
            if (message["type"] == "http.response.start" and message["status"] == UNAVAILABLE) or held:
                held.append(message)
            else:
                await send(message)

        try:
            await self.app(dict(scope), receive, holding_unavailable)
        except Exception as exc:
            # Starlette sends the answer of an app's handler for `Exception` (Prefect's 503), then raises
            # the exception again for the server to log: held back with the answer.
            if not held:
                raise
            return held, exc
        return held, None


def _replaying(body: bytes, receive: Receive) -> Receive:
    """The request's body as one message, then the client's own messages (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
