"""Prefect queues a second run of one ingestion date behind the first; other dates run alongside.

Real flows (`ingest_ibge`) on the session's Prefect test server, racing from two threads against the IBGE
stand-in. Its `regioes` answers wait until both runs have asked (a barrier with a timeout): two runs in
flight at once meet there at once; a run queued behind the other leaves the first waiting the whole timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from prefect import flow, get_client
from prefect.concurrency.context import ConcurrencyContext
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.date_lock import limit_name, one_run_per_date
from flows.pipeline import ingest_ibge
from flows.settings import Settings
from flows.sources.local_mongo import free_port
from tests.support.ibge_server import Fault, IbgeServer
from tests.support.sources import DATE

pytestmark = pytest.mark.integration
HOLD_S = 20.0  # longer than two flow runs take to start on a busy machine (2 cores, CI)
OTHER_DATE = "2026-11-26"


def _race(settings: Settings, server: IbgeServer, dates: list[str]) -> bool:
    """Both runs at once; whether their regioes requests met at the barrier (both in flight at once)."""
    server.reset()
    meet = threading.Barrier(len(dates), timeout=HOLD_S)
    server.inject("regioes", *[Fault(hold=meet)] * len(dates))

    def run(date: str) -> dict[str, int]:
        return ingest_ibge(date, settings=settings)

    with ThreadPoolExecutor(len(dates)) as pool:
        assert all(r["regioes"] == 5 for r in pool.map(run, dates))
    assert len(server.gets("regioes")) == len(dates)
    return not meet.broken


def test_two_runs_of_one_date_queue_and_two_dates_run_together(
    prefect_harness: None, fast: Callable[..., Settings], ibge_server: IbgeServer
) -> None:
    settings = fast(
        ibge_source="api",
        ibge_base_url=ibge_server.base_url,
        ibge_read_timeout_s=4 * HOLD_S,
        ibge_retry_budget_s=8 * HOLD_S,
    )

    # One date: the first run waits at the barrier alone until it breaks; only then can the second start.
    assert not _race(settings, ibge_server, [DATE, DATE])
    # Different dates: both runs are in flight at once and meet there.
    assert _race(settings, ibge_server, [DATE, OTHER_DATE])

    with get_client(sync_client=True) as client:  # created on first use, one slot per date
        assert client.read_global_concurrency_limit_by_name(limit_name(DATE)).limit == 1
        assert client.read_global_concurrency_limit_by_name(limit_name(OTHER_DATE)).active_slots == 0


def test_a_parents_subflows_run_inside_its_slot(
    prefect_harness: None, fast: Callable[..., Settings], ibge_server: IbgeServer
) -> None:
    """The `lakehouse` parent holds the date while its subflows run: they must not wait for it."""
    settings = fast(ibge_source="api", ibge_base_url=ibge_server.base_url)

    @flow
    def parent(settings: Settings) -> dict[str, int]:
        with one_run_per_date(DATE, settings):
            return ingest_ibge(DATE, settings=settings)

    done: list[dict[str, int]] = []

    def run() -> None:
        done.append(parent(settings=settings))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=90)
    assert done and done[0]["regioes"] == 5, "the subflow waited for its own parent's slot"


def test_outside_a_flow_run_there_is_nothing_to_queue() -> None:
    """A flow's `.fn` called directly (unit tests, scripts) needs no Prefect API: none is reachable here."""
    with (
        temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}),
        one_run_per_date(DATE, Settings()),
    ):
        pass


def test_a_lease_the_server_forgot_does_not_kill_the_run(
    prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As after a Prefect server restart: the run's lease is gone, its renewals fail, the run goes on."""
    monkeypatch.setattr("flows.date_lock.LEASE_S", 60.0)  # Prefect's least: renewed after 45 s

    @flow
    def long_step() -> str:
        with one_run_per_date("2026-01-02", Settings()):
            [lease_id] = ConcurrencyContext.get().cleanup_lease_ids
            with get_client(sync_client=True) as client:
                client.release_concurrency_slots_with_lease(lease_id)  # the server forgets it
            for _ in range(275):  # the renewal at 45 s fails (3 attempts, ~3 s) while the step works on
                time.sleep(0.2)
        return "finished"

    assert long_step() == "finished"
