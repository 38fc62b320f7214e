"""Prefect's client in a `vamosjuntos` command sends a request again soon after a quick 503, whatever the
server: its own retry waits two seconds.

A Prefect server on SQLite answers 503 when creating a flow or task run (or taking a concurrency slot) meets
a stale snapshot (WAL mode fails such a write at once: flows/temporary_api.py has the mechanism), and its
client retries after 2 s (`2 ** try` seconds, Prefect's backoff; the server sends no Retry-After). Our
temporary server replays such a request itself, but a user's own `prefect server start` on SQLite serves
Prefect's app as it is: in benchmark runs against one, `ingest_pnadc` started ~2 s late in about half the
runs (docs/operations.md). So the client in our process replays a 503 that came quickly (under `FAST_S`)
after 0.05, 0.1, 0.2 and 0.4 s, the delays the temporary server uses, before Prefect's retry logic sees the
answer. It resends only what Prefect's client would resend two seconds later; a slow 503, one with
Retry-After or Prefect's maintenance header, and the last one reach Prefect's retry logic unchanged, as do
every other answer and error. (A 503 that keeps coming quickly is thus sent five times for each of Prefect's
tries.)

Prefect offers no hook for this (its clients are built inside the engine), so `replaying_unavailable`
wraps the `send` that each client class's `_send_with_retry` is given, for as long as the context is open.
If that method is gone or changed in another Prefect version, nothing is wrapped and the command runs with
Prefect's own retries (a warning says so; tests/test_client_replay.py fails on such a version).
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
from prefect.client.base import PrefectHttpxAsyncClient, PrefectHttpxSyncClient

from flows.temporary_api import FAST_S, REPLAY_DELAYS_S, UNAVAILABLE

log = logging.getLogger(__name__)
PATCHED = "_send_with_retry"
_MARK = "__vamosjuntos_replay__"

AsyncSend = Callable[..., Awaitable[httpx.Response]]
SyncSend = Callable[..., httpx.Response]


def replayable(response: httpx.Response, started: float) -> bool:
    """A quick 503 that asks nothing of the client: a server that says when to come back (Retry-After) or
    that it is down for maintenance (Prefect Cloud's `Prefect-Maintenance`) is left to Prefect's retries,
    which honour both."""
    return (
        response.status_code == UNAVAILABLE
        and time.monotonic() - started <= FAST_S
        and "Retry-After" not in response.headers
        and response.headers.get("Prefect-Maintenance") != "true"
    )


def _replayed(request: httpx.Request, delay: float) -> None:
    log.debug("%s %s answered 503: replayed in %g s", request.method, request.url.path, delay)


def replaying_async(send: AsyncSend) -> AsyncSend:
    async def replaying(request: httpx.Request, *args: Any, **kwargs: Any) -> httpx.Response:
        started = time.monotonic()
        response = await send(request, *args, **kwargs)
        for delay in REPLAY_DELAYS_S:
            if not replayable(response, started):
                break
            await response.aclose()
            _replayed(request, delay)
            await anyio.sleep(delay)
            started = time.monotonic()
            response = await send(request, *args, **kwargs)
        return response

    return replaying


def replaying_sync(send: SyncSend) -> SyncSend:
    def replaying(request: httpx.Request, *args: Any, **kwargs: Any) -> httpx.Response:
        started = time.monotonic()
        response = send(request, *args, **kwargs)
        for delay in REPLAY_DELAYS_S:
            if not replayable(response, started):
                break
            response.close()
            _replayed(request, delay)
            time.sleep(delay)
            started = time.monotonic()
            response = send(request, *args, **kwargs)
        return response

    return replaying


def _wrapped(original: Callable[..., Any], wrap: Callable[[Any], Any]) -> Callable[..., Any]:
    """`original` (a `_send_with_retry`) with its `send` argument wrapped, however it is passed."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def with_replay(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.arguments["send"] = wrap(bound.arguments["send"])
        return original(*bound.args, **bound.kwargs)

    setattr(with_replay, _MARK, original)
    return with_replay


def _patchable(cls: type) -> bool:
    method = cls.__dict__.get(PATCHED)
    return callable(method) and "send" in inspect.signature(method).parameters


_CLASSES: dict[type, Callable[[Any], Any]] = {
    PrefectHttpxAsyncClient: replaying_async,
    PrefectHttpxSyncClient: replaying_sync,
}
# The contexts open in this process, from any thread: the first one in wraps, the last one out restores.
_lock = threading.Lock()
_open = 0
_originals: dict[type, Any] = {}


@contextmanager
def replaying_unavailable() -> Iterator[bool]:
    """Inside, Prefect's clients (async and sync) replay a quick 503 as the module docstring says. Yields
    whether they do (False: this Prefect version's clients are not the ones this wraps). Contexts may
    nest or overlap, in one thread or several: the clients are as Prefect made them again once the last
    one has closed."""
    global _open
    with _lock:
        supported = _open > 0 or all(_patchable(cls) for cls in _CLASSES)
        if supported:
            if _open == 0:
                for cls, wrap in _CLASSES.items():
                    _originals[cls] = cls.__dict__[PATCHED]
                    setattr(cls, PATCHED, _wrapped(_originals[cls], wrap))
            _open += 1
    if not supported:
        log.warning(
            "This Prefect version's client has no %s(send=…) to wrap: a quick 503 is retried after "
            "Prefect's own 2 s wait",
            PATCHED,
        )
        yield False
        return
    try:
        yield True
    finally:
        with _lock:
            _open -= 1
            if _open == 0:
                for cls, method in _originals.items():
                    if getattr(cls.__dict__.get(PATCHED), _MARK, None) is method:  # not replaced since
                        setattr(cls, PATCHED, method)
                _originals.clear()
