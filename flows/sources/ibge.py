"""IBGE localidades API: a live client (httpx, retries, validation) and the bundled snapshot.

Both implement `IbgeSource.fetch(entity) -> (raw bytes, parsed records, provenance)`, so the flow and the
tests swap them freely. The raw bytes land unchanged; the parsed records only prove the body's shape.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from importlib import resources
from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from flows import __version__, layout
from flows.errors import SourceError, SourceUnavailable
from flows.lake import Lake, utcnow
from flows.layout import Entity
from flows.settings import Settings

log = logging.getLogger(__name__)

USER_AGENT = f"vamosjuntos-lakehouse/{__version__} (+https://github.com/vamosjuntos/vamosjuntos-lakehouse)"
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
BACKOFF_CAP_S = 30.0


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
    layout.REGIOES: TypeAdapter(list[Regiao]),
    layout.MESORREGIOES: TypeAdapter(list[Mesorregiao]),
    layout.MICRORREGIOES: TypeAdapter(list[Microrregiao]),
}


@dataclass(frozen=True)
class Fetched:
    entity: Entity
    body: bytes
    records: int
    source: Literal["api", "snapshot"]
    url: str
    attempts: int = 1
    fetched_at: str = field(default_factory=utcnow)


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
        records = SHAPES[entity].validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise SourceError(
            f"{where}: wrong shape at [{loc}]: {first['msg']} ({exc.error_count()} errors)"
        ) from exc
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise SourceError(f"{where}: {len(ids) - len(set(ids))} duplicated ids in {len(ids)} {entity}")
    return records


class IbgeSource(Protocol):
    def fetch(self, entity: Entity) -> Fetched: ...


class SnapshotIbge:
    """The responses shipped with the package (`flows/snapshot/ibge`), for offline runs."""

    def fetch(self, entity: Entity) -> Fetched:
        ref = resources.files("flows") / "snapshot" / "ibge" / f"{entity}.json"
        body = ref.read_bytes()
        records = validate_body(entity, body, f"snapshot {entity}.json")
        return Fetched(entity, body, len(records), "snapshot", f"snapshot:{entity}.json")


def _retry_after(response: httpx.Response) -> float | None:
    """The server's `Retry-After` (seconds or an HTTP date) in seconds, if it sent a usable one."""
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
    """The real API (or a stand-in at the same paths), with bounded retries and a validated body.

    Retried: connection errors, timeouts, a connection cut mid-body, 408/429/5xx (but 501). Waits grow
    exponentially from `ibge_backoff_base_s` with jitter; a `Retry-After` is honoured as the minimum wait.
    Bounded twice: at most `ibge_max_retries` retries, and never past `ibge_retry_budget_s` in total
    (each attempt's timeouts shrink to what is left of the budget; a wait that would pass it gives up).
    Anything else (4xx, an HTML page, truncated or wrongly shaped JSON) fails at once: retrying would not
    change the answer.
    """

    def __init__(
        self,
        settings: Settings,
        client: httpx.Client | None = None,
        backoff_s: float | None = None,
        logger: Any = None,
    ) -> None:
        self.base_url = settings.ibge_base_url.rstrip("/")
        self.max_retries = settings.ibge_max_retries
        self.budget_s = settings.ibge_retry_budget_s
        self.backoff_s = settings.ibge_backoff_base_s if backoff_s is None else backoff_s
        self.connect_timeout_s = settings.ibge_connect_timeout_s
        self.read_timeout_s = settings.ibge_read_timeout_s
        self.log = logger or log
        self.client = client or httpx.Client(
            timeout=httpx.Timeout(settings.ibge_read_timeout_s, connect=settings.ibge_connect_timeout_s),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=True,
        )

    def _backoff(self, retry: int) -> float:
        """Exponential with "equal jitter": half the step for sure, the other half at random."""
        step = min(BACKOFF_CAP_S, self.backoff_s * 2 ** (retry - 1))
        return step / 2 + random.uniform(0, step / 2)

    def _timeout(self, remaining: float) -> httpx.Timeout:
        left = max(0.01, remaining)
        return httpx.Timeout(min(self.read_timeout_s, left), connect=min(self.connect_timeout_s, left))

    def fetch(self, entity: Entity) -> Fetched:
        url = f"{self.base_url}/{entity}"
        started = time.monotonic()
        answered = False  # did the host ever answer? if not, it is unavailable rather than broken
        attempt = 0
        while True:
            attempt += 1
            elapsed = time.monotonic() - started
            try:
                response = self.client.get(url, timeout=self._timeout(self.budget_s - elapsed))
            except httpx.TransportError as exc:
                answered = answered or not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                problem = f"{type(exc).__name__} ({exc})" if str(exc) else type(exc).__name__
                wait = self._backoff(attempt)
            else:
                answered = True
                if response.status_code not in RETRY_STATUS:
                    break
                after = _retry_after(response)
                problem = f"HTTP {response.status_code}"
                if after is not None:
                    problem += f" with Retry-After {after:g} s"
                    wait = after + random.uniform(0, min(1.0, self.backoff_s) / 2)
                else:
                    wait = self._backoff(attempt)
            elapsed = time.monotonic() - started
            if attempt > self.max_retries or elapsed + wait > self.budget_s:
                why = (
                    f"{self.max_retries} retries allowed (VAMOSJUNTOS_IBGE_MAX_RETRIES)"
                    if attempt > self.max_retries
                    else f"waiting {wait:.1f} s more would pass the {self.budget_s:g} s retry budget "
                    "(VAMOSJUNTOS_IBGE_RETRY_BUDGET_S)"
                )
                message = (
                    f"GET {url}: {problem}; gave up after {attempt} attempt(s) in {elapsed:.1f} s: {why}"
                )
                raise (SourceError if answered else SourceUnavailable)(message)
            self.log.warning(
                "GET %s: %s; retry %d of %d in %.2f s", url, problem, attempt, self.max_retries, wait
            )
            time.sleep(wait)
        if response.status_code != 200:
            raise SourceError(
                f"GET {url}: HTTP {response.status_code} (not retried): {response.text[:120]!r}"
            )
        records = validate_body(entity, response.content, f"GET {url}")
        return Fetched(entity, response.content, len(records), "api", url, attempts=attempt)

    def reachable(self) -> bool:
        """Whether the host answers at all (any HTTP status counts): the `auto` mode's only fallback."""
        for _ in range(2):
            try:
                self.client.head(self.base_url + "/regioes", timeout=httpx.Timeout(self.connect_timeout_s))
                return True
            except (httpx.ConnectError, httpx.ConnectTimeout):
                continue
            except httpx.TransportError:
                return True  # it accepted the connection: reachable, whatever else is wrong
        return False


def land(lake: Lake, fetched: Fetched, ingestion_date: str) -> dict[str, Any]:
    """Commit one fetched body, unchanged, as the entity's raw unit of that date (replacing it)."""
    name = f"{fetched.entity}.json"
    staging = lake.stage("raw", layout.raw_ibge(fetched.entity, ingestion_date))
    try:
        with staging.open(name) as fh:
            fh.write(fetched.body)
        staging.add_file(name, records=fetched.records, sha256=hashlib.sha256(fetched.body).hexdigest())
    except BaseException:
        lake.abort(staging)
        raise
    return lake.commit(
        staging,
        source=fetched.source,
        url=fetched.url,
        entity=fetched.entity,
        attempts=fetched.attempts,
        fetched_at=fetched.fetched_at,
        format="json (the response body, unchanged)",
    )


def ibge_source(settings: Settings, logger: Any = None) -> IbgeSource:
    """The source the settings ask for; `auto` falls back to the snapshot only if the host is unreachable."""
    if settings.ibge_source == "snapshot":
        return SnapshotIbge()
    live = LiveIbge(settings, logger=logger)
    if settings.ibge_source == "auto" and not live.reachable():
        if logger is not None:
            logger.warning(
                "IBGE API at %s cannot be reached; using the bundled snapshot (source=snapshot).",
                settings.ibge_base_url,
            )
        return SnapshotIbge()
    return live
