"""Pieces of the small ASGI apps that stand in for Prefect's server in tests."""

from __future__ import annotations

from typing import Any


async def request_body(receive: Any) -> bytes:
    """The whole body of the HTTP request `receive` delivers, however many messages it comes in."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body
