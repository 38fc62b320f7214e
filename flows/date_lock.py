"""One run per ingestion date at a time: a Prefect global concurrency limit named for the date.

Runs of different flows for one date write the same lake units (a `lakehouse` run and an on-demand
`ingest-pnadc` run, or two `lakehouse` runs): the second waits, queued by Prefect, until the first has
finished; runs for different dates go ahead together. A deployment's `concurrency_limit` cannot say this
(it counts runs of one deployment, whatever their date). The lake's compare-and-swap commits stay the
last line of defence, for writers that bypass Prefect.

The limit (1 slot) is created on first use. Prefect holds the slot under a lease the client renews, so a
killed flow-run pod frees its date when the lease lapses (`LEASE_S`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar

from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

LEASE_S = 300.0
# Dates the current flow run holds: its subflows (the `lakehouse` parent's ingest/transform) run inside
# the parent's slot rather than wait for it.
_held: ContextVar[frozenset[str]] = ContextVar("vamosjuntos_dates_held", default=frozenset())


def limit_name(ingestion_date: str) -> str:
    return f"vamosjuntos-lake-{ingestion_date}"


@contextmanager
def one_run_per_date(ingestion_date: str) -> Iterator[None]:
    """Hold the date's slot for the block; wait (without bound) while another run holds it."""
    if ingestion_date in _held.get() or FlowRunContext.get() is None:
        # Held by the parent flow run already; or no flow run at all (a flow's `.fn` called directly).
        yield
        return
    name = limit_name(ingestion_date)
    _ensure_limit(name)
    # strict: a limit that vanished must stop the run, not let it go ahead unguarded. A failed lease
    # renewal, though, must not kill a run that has been writing for an hour (a Prefect server restart
    # forgets its in-memory leases): the run goes on, and the lake's compare-and-swap still guards it.
    with concurrency(
        name, occupy=1, strict=True, lease_duration=LEASE_S, raise_on_lease_renewal_failure=False
    ):
        token = _held.set(_held.get() | {ingestion_date})
        try:
            yield
        finally:
            _held.reset(token)


def _ensure_limit(name: str) -> None:
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:  # the date's first run (reading first spares the server a failing insert)
            with suppress(ObjectAlreadyExists):  # another run of the date created it just now
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
