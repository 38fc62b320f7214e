"""The MongoDB client: reachable and authenticated, or a clear, fast, redacted error."""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError, ServerSelectionTimeoutError

from flows.errors import SourceError, SourceUnavailable
from flows.settings import Settings
from flows.sources.mongo_uri import redact, redacted_uri, server_of

# The longest wait before a dropped connection is tried again.
RECONNECT_WAIT_CAP_S = 30.0


def reconnect_wait(backoff_s: float, failures: int) -> float:
    """The wait before the `failures`-th try again in a row after a dropped connection: doubling, capped."""
    return min(backoff_s * 2 ** (failures - 1), RECONNECT_WAIT_CAP_S)


def connect(settings: Settings) -> MongoClient[Any]:
    """A client that has proven it can reach and authenticate, or a clear, fast, redacted error."""
    if settings.mongo_uri is None:
        raise SourceError("VAMOSJUNTOS_MONGO_URI is not set and no embedded server was started.")
    uri = settings.mongo_uri.get_secret_value()
    where = redacted_uri(uri)
    timeout_ms = settings.mongo_server_selection_timeout_ms
    try:
        client: MongoClient[Any] = MongoClient(
            uri,
            serverSelectionTimeoutMS=timeout_ms,  # an unreachable server still fails this fast
            # Also the heartbeat's timeout: too short, and a server slow to answer one while it builds a
            # large answer gets the running cursor cancelled ("operation cancelled") and re-read.
            connectTimeoutMS=settings.mongo_connect_timeout_ms,
            appname="vamosjuntos-lakehouse",
        )
        client.admin.command("ping")
        # With auth on, ping is allowed unauthenticated on some servers: ask for something that needs it.
        client[settings.mongo_database].command("listCollections", nameOnly=True)
        return client
    except ServerSelectionTimeoutError as exc:
        raise SourceUnavailable(
            f"MongoDB at {where} cannot be reached within {timeout_ms} ms "
            f"(VAMOSJUNTOS_MONGO_SERVER_SELECTION_TIMEOUT_MS): {redact(str(exc), uri)[:300]}"
        ) from None
    except OperationFailure as exc:
        if exc.code in (13, 18):
            raise SourceError(
                f"MongoDB at {where} refused the credentials (code {exc.code}): check the user "
                "and password in VAMOSJUNTOS_MONGO_URI."
            ) from None
        raise SourceError(f"MongoDB at {where}: {redact(str(exc), uri)[:300]}") from None
    except (PyMongoError, ValueError, TypeError, OSError) as exc:  # a malformed URI, option, TLS file
        raise SourceError(f"MongoDB at {where}: {redact(str(exc), uri)[:300]}") from None


def server_name(settings: Settings) -> str | None:
    """The server's scheme and hosts, for a manifest or a message: no user, password or options."""
    return server_of(settings.mongo_uri.get_secret_value()) if settings.mongo_uri else None


def broken_stream(settings: Settings, done: int, parts: int, exc: PyMongoError) -> SourceError:
    """What a driver error mid-run means to the operator: how far the run got, and that a rerun resumes."""
    kind = SourceUnavailable if isinstance(exc, ConnectionFailure) else SourceError
    uri = settings.mongo_uri.get_secret_value() if settings.mongo_uri else None
    return kind(
        f"MongoDB {settings.mongo_database}.{settings.mongo_collection} at {server_name(settings) or '?'}: "
        f"the stream broke after {done} documents in {parts} checkpointed parts: "
        f"{redact(str(exc), uri)[:300]} — rerun the same ingestion date to resume after "
        "the last checkpointed part."
    )
