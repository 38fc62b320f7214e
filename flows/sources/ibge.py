"""IBGE localidades API: a live client (httpx, retries, validation) and the bundled snapshot.

Both implement `IbgeSource.fetch(entity) -> (raw bytes, parsed records, provenance)`, so the flow and the
tests swap them freely. The raw bytes land unchanged; the parsed records only prove the body's shape.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from importlib import resources
from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay

from flows import __version__
from flows.errors import SourceError, SourceUnavailable
from flows.settings import Settings

Entity = Literal["regioes", "mesorregioes", "microrregioes"]
ENTITIES: tuple[Entity, ...] = ("regioes", "mesorregioes", "microrregioes")
USER_AGENT = f"vamosjuntos-lakehouse/{__version__} (+https://github.com/vamosjuntos/vamosjuntos-lakehouse)"
RETRY_STATUS = {429, 500, 502, 503, 504}


# --- the API's shapes, checked before anything lands ----------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class Regiao(_Strict):
    id: int
    sigla: str
    nome: str


class UF(_Strict):
    id: int
    sigla: str
    nome: str
    regiao: Regiao


class Mesorregiao(_Strict):
    id: int
    nome: str
    UF: UF


class Microrregiao(_Strict):
    id: int
    nome: str
    mesorregiao: Mesorregiao


SHAPES: dict[Entity, TypeAdapter[Any]] = {
    "regioes": TypeAdapter(list[Regiao]),
    "mesorregioes": TypeAdapter(list[Mesorregiao]),
    "microrregioes": TypeAdapter(list[Microrregiao]),
}


@dataclass(frozen=True)
class Fetched:
    entity: Entity
    body: bytes
    records: int
    source: Literal["api", "snapshot"]
    url: str


def validate_body(entity: Entity, body: bytes, where: str) -> list[Any]:
    """Parse and check a body, or raise SourceError saying which endpoint and what was wrong."""
    head = body[:200].decode("utf-8", "replace").strip()
    if head[:1] == "<":
        raise SourceError(f"{where}: expected JSON, got an HTML page: {head[:80]!r}")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"{where}: body is not valid JSON ({exc}); {len(body)} bytes, truncated?") from exc
    if not isinstance(data, list):
        raise SourceError(f"{where}: expected a JSON array, got {type(data).__name__}")
    if not data:
        raise SourceError(f"{where}: the array is empty")
    try:
        return SHAPES[entity].validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise SourceError(
            f"{where}: wrong shape at [{loc}]: {first['msg']} ({exc.error_count()} errors)"
        ) from exc


class IbgeSource(Protocol):
    def fetch(self, entity: Entity) -> Fetched: ...


class SnapshotIbge:
    """The responses shipped with the package (`flows/snapshot/ibge`), for offline runs."""

    def fetch(self, entity: Entity) -> Fetched:
        ref = resources.files("flows") / "snapshot" / "ibge" / f"{entity}.json"
        body = ref.read_bytes()
        records = validate_body(entity, body, f"snapshot {entity}.json")
        return Fetched(entity, body, len(records), "snapshot", f"snapshot:{entity}.json")


class _RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class LiveIbge:
    """The real API (or a stand-in at the same paths), with bounded retries and a validated body."""

    def __init__(self, settings: Settings, client: httpx.Client | None = None, backoff_s: float = 0.5):
        self.base_url = settings.ibge_base_url.rstrip("/")
        self.max_retries = settings.ibge_max_retries
        self.budget_s = settings.ibge_retry_budget_s
        self.backoff_s = backoff_s
        self.client = client or httpx.Client(
            timeout=httpx.Timeout(settings.ibge_read_timeout_s, connect=settings.ibge_connect_timeout_s),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=True,
        )

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _RetryableStatus) and (after := _retry_after(exc.response)) is not None:
            return min(after, self.budget_s)
        # Exponential backoff with full jitter: spreads retries of concurrent clients apart.
        return random.uniform(0, self.backoff_s * 2 ** (state.attempt_number - 1))

    def _get(self, url: str) -> httpx.Response:
        response = self.client.get(url)
        if response.status_code in RETRY_STATUS:
            raise _RetryableStatus(response)
        return response

    def fetch(self, entity: Entity) -> Fetched:
        url = f"{self.base_url}/{entity}"
        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1) | stop_after_delay(self.budget_s),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, _RetryableStatus | httpx.TransportError)),
            reraise=True,
        )
        try:
            response = retrying(self._get, url)
        except _RetryableStatus as exc:
            raise SourceError(
                f"GET {url}: HTTP {exc.response.status_code} after {self.max_retries} retries"
            ) from exc
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise SourceUnavailable(f"GET {url}: cannot connect ({exc})") from exc
        except httpx.TransportError as exc:
            raise SourceError(f"GET {url}: {type(exc).__name__} ({exc})") from exc
        if response.status_code != 200:
            raise SourceError(f"GET {url}: HTTP {response.status_code}: {response.text[:120]!r}")
        records = validate_body(entity, response.content, f"GET {url}")
        return Fetched(entity, response.content, len(records), "api", url)

    def reachable(self) -> bool:
        """Whether the host answers at all (any HTTP status counts): the `auto` mode's only fallback."""
        for _ in range(2):
            try:
                self.client.head(self.base_url + "/regioes")
                return True
            except (httpx.ConnectError, httpx.ConnectTimeout):
                continue
            except httpx.TransportError:
                return True
        return False


def ibge_source(settings: Settings, logger: Any = None) -> IbgeSource:
    """The source the settings ask for; `auto` falls back to the snapshot only if the host is unreachable."""
    if settings.ibge_source == "snapshot":
        return SnapshotIbge()
    live = LiveIbge(settings)
    if settings.ibge_source == "auto" and not live.reachable():
        if logger is not None:
            logger.warning(
                "IBGE API at %s cannot be reached; using the bundled snapshot (source=snapshot).",
                settings.ibge_base_url,
            )
        return SnapshotIbge()
    return live
