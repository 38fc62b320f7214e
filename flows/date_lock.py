"""One run per ingestion date at a time: a second run of a date waits until the first has finished.

Runs of different flows for one date write the same lake units (a `lakehouse` run and an on-demand
`ingest-pnadc` run, or two `lakehouse` runs): the second waits until the first has finished; runs for
different dates go ahead together. A deployment's `concurrency_limit` cannot say this (it counts runs of one
deployment, whatever their date). The lake's compare-and-swap commits stay the last line of defence, for
writers that bypass this.

Who queues depends on where the Prefect API is:

- **a Prefect server** (`PREFECT_API_URL` names one of the user's: deployments, the UI): a Prefect global
  concurrency limit named for the date (1 slot, created on first use), held under a lease the client
  renews, so a killed flow-run pod frees its date when the lease lapses (`LEASE_S`; the server's
  repossessor does it);
- **the ephemeral API** of a plain `vamosjuntos run` (its temporary server, flows/in_process.py): an exclusive
  `flock` on a file per date beside the lake. The temporary server keeps leases in its own memory and ends
  with the run, so a slot taken by a run that was then killed (SIGKILL, a closed laptop) would stay taken
  in its database forever and every later run of that date would wait without end; the kernel drops a dead
  process's `flock` at once.

The same guards keep rollbacks of one consumer table in turn (`one_rollback_per_table`): a second one
waits, then finds the first carried through (refused) or stopped half-way (finished: flows/ops/rollback.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from contextvars import ContextVar
from pathlib import Path

from prefect import get_client, get_run_logger
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from flows import layout
from flows.in_process import server_named
from flows.settings import Settings

LEASE_S = 300.0
# Dates the current flow run holds: its subflows (the `lakehouse` parent's ingest/transform) run inside
# the parent's slot rather than wait for it.
_held: ContextVar[frozenset[str]] = ContextVar("vamosjuntos_dates_held", default=frozenset())


def limit_name(ingestion_date: str) -> str:
    return f"vamosjuntos-lake-{ingestion_date}"


@contextmanager
def one_run_per_date(ingestion_date: str, settings: Settings) -> Iterator[None]:
    """Hold the date for the block; wait (without bound) while another run holds it."""
    if ingestion_date in _held.get() or FlowRunContext.get() is None:
        # Held by the parent flow run already; or no flow run at all (a flow's `.fn` called directly).
        yield
        return
    with _guard(limit_name(ingestion_date), lock_path(settings, ingestion_date), ingestion_date):
        token = _held.set(_held.get() | {ingestion_date})
        try:
            yield
        finally:
            _held.reset(token)


@contextmanager
def one_rollback_per_table(table: str, settings: Settings) -> Iterator[None]:
    """Hold the rollback of a consumer table (a name flows/ops/rollback.py checked) for the block; wait
    while another rollback of it holds it. Nothing to hold outside a flow run."""
    if FlowRunContext.get() is None:
        yield
        return
    lock = _lock_folder(settings) / f"rollback-{table}.lock"
    with _guard(f"vamosjuntos-rollback-{table}", lock, f"rollback {table}"):
        yield


def _guard(limit: str, lock: Path, what: str) -> AbstractContextManager[None]:
    """The server's concurrency limit `limit` when a server is named, else the file lock `lock`."""
    return _server_slot(limit) if server_named() else _local_lock(lock, what)


@contextmanager
def _server_slot(name: str) -> Iterator[None]:
    _ensure_limit(name)
    # strict: a limit that vanished must stop the run, not let it go ahead unguarded. A failed lease
    # renewal, though, must not kill a run that has been writing for an hour (a Prefect server restart
    # forgets its in-memory leases): the run goes on, and the lake's compare-and-swap still guards it.
    with concurrency(
        name, occupy=1, strict=True, lease_duration=LEASE_S, raise_on_lease_renewal_failure=False
    ):
        yield


def lock_path(settings: Settings, ingestion_date: str) -> Path:
    """The date's lock file: beside a local lake's zones, or in the user's cache for an s3:// lake."""
    return _lock_folder(settings) / layout.lock_file(ingestion_date)


def _lock_folder(settings: Settings) -> Path:
    if "://" not in settings.lake_root:
        return Path(settings.lake_root).resolve() / layout.LOCKS
    lake = hashlib.sha256(settings.lake_root.encode()).hexdigest()[:12]
    return Path.home() / ".cache" / "vamosjuntos" / "locks" / lake


@contextmanager
def _local_lock(path: Path, what: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            get_run_logger().info(
                "Another run of %s is in progress (%s, lock %s): waiting for it to finish",
                what, holder, path,
            )  # fmt: skip
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _ensure_limit(name: str) -> None:
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:  # the date's first run (reading first spares the server a failing insert)
            with suppress(ObjectAlreadyExists):  # another run of the date created it just now
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
