"""The app of the temporary Prefect API server that `vamosjuntos run` starts (flows/in_process.py): Prefect's
own, with a request replayed where Prefect's SQLite database refused it for no lasting reason.

Prefect 3.9 creates a flow or task run in a transaction that reads before it writes. In SQLite's WAL mode,
when another connection commits between that read and the write (the server's task-run recorder writing
the states of the tasks that just ended, one transaction each), SQLite fails the write at once: waiting
cannot help a transaction whose snapshot is stale. The server answers 503 and Prefect's client tries again
two seconds later, when a new transaction succeeds at once. So this app replays a request the app answered
503 after a short wait, up to four times within 0.75 s, before the client sees it: the handler's
transaction was rolled back, as the client's own retry assumes. The last answer reaches the client, whose
retries are unchanged. Measured in docs/operations.md ("What Prefect costs a local run").
"""

from __future__ import annotations

import asyncio
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


def create_app() -> ASGIApp:
    """uvicorn's factory (`--factory flows.temporary_api:create_app`): Prefect's app, replaying 503s."""
    from prefect.server.api.server import create_app as prefect_app

    return ReplayUnavailable(prefect_app())


class ReplayUnavailable:
    """An ASGI app that runs an HTTP request through `app` again, after each of REPLAY_DELAYS_S, while `app`
    answers 503.

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

        for delay in (*REPLAY_DELAYS_S, None):
            if delay is None:  # the last attempt: its answer, whatever it is, goes to the client
                await self.app(dict(scope), _replaying(body, receive), send)
                return
            if await self._answered(scope, _replaying(body, receive), send):
                return
            # Prefect's server logger: in the server's output with PREFECT_LOGGING_SERVER_LEVEL=DEBUG
            get_logger("server").debug(
                "%s %s answered 503: replayed in %g s", scope["method"], scope["path"], delay
            )
            await asyncio.sleep(delay)

    async def _answered(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> bool:
        """One attempt: True when its answer went to the client, False when it was a 503, held back."""
        held: list[Message] = []

        async def holding_unavailable(message: Message) -> None:
            if (message["type"] == "http.response.start" and message["status"] == UNAVAILABLE) or held:
                held.append(message)
            else:
                await send(message)

        try:
            await self.app(dict(scope), receive, holding_unavailable)
        except Exception:
            # Starlette sends the answer of an app's handler for `Exception` (Prefect's 503), then raises
            # the exception again for the server to log: held back, it is replayed instead.
            if not held:
                raise
        return not held


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
