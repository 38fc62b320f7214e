"""Backfill through the real local pipeline (SecantusDB, the IBGE stand-in, Spark local, DuckDB, a Prefect
test server): each date once, oldest first; a failure in the middle stops it, and a rerun resumes there."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from prefect import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

from flows.cli import main
from flows.lake import Lake
from flows.layout import PNADC, PUBLICO_ALVO, Zone, backfill_record, consumer, processing
from flows.ops.backfill import behind, completed, dates_between
from flows.ops.backfill_flow import backfill
from flows.settings import Settings
from flows.sources.local_mongo_seed import seed

ROWS = 2_000
D1, D2, D3 = "2026-11-20", "2026-11-21", "2026-11-22"


def test_a_range_is_every_date_in_it_oldest_first() -> None:
    assert dates_between("2026-02-27", "2026-03-02") == [
        "2026-02-27",
        "2026-02-28",
        "2026-03-01",
        "2026-03-02",
    ]
    assert dates_between("2026-11-29", "2026-11-29") == ["2026-11-29"]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--from", D1], "error: a backfill needs both --from and --to"),
        (
            ["--from", D2, "--to", D1],
            "error: backfill range ends before it starts: from 2026-11-21 to 2026-11-20.",
        ),
        (["--from", "2020-01-01", "--to", D1], "more than 366: split it"),
        (["--from", D1, "--to", D2, "--ingestion-date", D1], "either --ingestion-date or --from/--to"),
        (["--rerun-completed"], "--rerun-completed goes with --from and --to"),
    ],
)
def test_a_bad_range_is_refused_before_anything_runs(tmp_path: Path, argv: list[str], says: str) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["run", *argv])
    assert says in str(refused.value) and "\n" not in str(refused.value)


def test_a_date_that_is_not_a_calendar_date_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["run", "--from", "2026-13-01", "--to", "2026-11-20"])
    assert refused.value.code == 2
    assert "not a calendar date written YYYY-MM-DD: '2026-13-01'" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["[]", '{"finished_at": "cut short', '{"ingestion_date": "2026-11-24"}'])
def test_a_damaged_completion_record_counts_as_not_complete_and_says_so(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    lake = Lake(Settings(lake_root=str(tmp_path / "lake")))
    lake.write_json("consumer", backfill_record(D2), {"finished_at": "2026-11-24T10:00:00+00:00"})
    assert completed(lake, D2) == {"finished_at": "2026-11-24T10:00:00+00:00"}
    record = Path(lake.path("consumer", backfill_record(D2)))
    record.write_text(damage)
    logger = logging.getLogger("backfill-test")
    with caplog.at_level(logging.WARNING, logger="backfill-test"):
        assert completed(lake, D2, logger) is None
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith(f"{D2}: its completion record {record} ") and said.endswith(
        ": the date runs again"
    )
    assert ("gives no finish time" if damage.startswith('{"ingestion') else "is damaged (") in said


def _commit(lake: Lake, zone: Zone, unit: str, **extra: Any) -> None:
    lake.commit(lake.stage(zone, unit), records=0, **extra)


def test_consumer_tables_older_than_the_newest_date_loaded_say_how_to_bring_them_back(tmp_path: Path) -> None:
    lake = Lake(Settings(lake_root=str(tmp_path / "lake")))
    assert behind(lake) is None  # nothing loaded
    for date in (D1, D3):
        _commit(lake, "processing", processing(PNADC, date))
    assert behind(lake) is None  # nothing built yet
    _commit(lake, "consumer", consumer(PUBLICO_ALVO), ingestion_date=D2)  # D2 backfilled after D3 ran
    assert behind(lake) == (
        f"the consumer tables now hold the data as of {D2}, older than {D3}, the newest date loaded: run "
        f"`vamosjuntos run --ingestion-date {D3}` (or the `lakehouse/lakehouse-daily` deployment for that "
        "date) to bring them back to the newest data"
    )
    _commit(lake, "consumer", consumer(PUBLICO_ALVO), ingestion_date=D3)
    assert behind(lake) is None


def test_a_consumer_that_cannot_be_read_gives_no_advice_and_fails_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The advice comes at the end of a run that has done its work: a damaged manifest is said, not raised."""
    lake = Lake(Settings(lake_root=str(tmp_path / "lake")))
    _commit(lake, "processing", processing(PNADC, D3))
    _commit(lake, "consumer", consumer(PUBLICO_ALVO), ingestion_date=D2)
    Path(lake.path("consumer", consumer(PUBLICO_ALVO), "_manifest.json")).write_text("[]")
    with caplog.at_level(logging.WARNING, logger="flows.ops.backfill"):
        assert behind(lake) is None
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith("Could not tell whether the consumer tables hold the newest date loaded: ")


def _manifests(lake: Lake) -> dict[str, Any]:
    """Every committed manifest of the lake, by path (a rerun that wrote anything changes one)."""
    found = {}
    for zone in ("raw", "processing", "consumer"):
        for path in sorted(Path(lake.root(zone)).rglob("_manifest.json")):
            found[str(path)] = path.read_text()
    return found


@pytest.mark.integration
def test_backfill_runs_each_date_once_in_order_and_resumes_after_a_failure(
    prefect_harness: None, mongo_server: Any, ibge_server: Any, settings_for: Any
) -> None:
    seed(mongo_server.uri, "ibge", "pnadc20203", ROWS, 7)
    settings = settings_for(mongo_uri=mongo_server.uri, ibge_base_url=ibge_server.base_url)
    lake = Lake(settings)
    # The injected failure: a file where D2's first raw unit must go, so landing it fails.
    blocker = Path(lake.path("raw", f"ibge/regioes/ingestion_date={D2}"))
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way")

    state = backfill(start=D1, end=D3, return_state=True, settings=settings)
    assert state.is_failed()
    assert completed(lake, D1) is not None
    assert completed(lake, D2) is None and completed(lake, D3) is None
    assert lake.partitions("raw", "pnadc") == [D1]  # D2 stopped at its first step, D3 never started
    d1_raw = lake.manifest("raw", f"pnadc/ingestion_date={D1}")["run_id"]

    blocker.unlink()
    outcomes = backfill(start=D1, end=D3, settings=settings)
    assert [(o["ingestion_date"], o["outcome"]) for o in outcomes] == [
        (D1, "skipped (complete)"),
        (D2, "ran"),
        (D3, "ran"),
    ]
    assert lake.manifest("raw", f"pnadc/ingestion_date={D1}")["run_id"] == d1_raw  # D1 was not run again
    assert lake.partitions("raw", "pnadc") == [D1, D2, D3]
    assert completed(lake, D2)["finished_at"] < completed(lake, D3)["finished_at"]  # oldest first
    assert lake.manifest("consumer", "publico_alvo")["ingestion_date"] == D3
    answers = completed(lake, D3)["answers"]
    assert [a["id"] for a in answers] == list(range(1, 11))

    before = _manifests(lake)
    again = backfill(start=D1, end=D3, settings=settings)
    assert {o["outcome"] for o in again} == {"skipped (complete)"}
    assert _manifests(lake) == before  # idempotent: a complete range writes nothing

    # D2's completion record changed outside the pipeline: it says nothing, so D2 runs again (idempotent)
    Path(lake.path("consumer", backfill_record(D2))).write_text("[]")
    d2_raw = lake.manifest("raw", f"pnadc/ingestion_date={D2}")["run_id"]
    state = backfill(start=D1, end=D3, settings=settings, return_state=True)
    outcomes = state.result()
    assert [o["outcome"] for o in outcomes] == ["skipped (complete)", "ran", "skipped (complete)"]
    assert lake.manifest("raw", f"pnadc/ingestion_date={D2}")["run_id"] != d2_raw
    assert completed(lake, D2)["finished_at"] > completed(lake, D3)["finished_at"]  # written anew
    # so the consumer is now as of D2, older than D3: said at the backfill's end, in its run's log
    assert lake.manifest("consumer", "publico_alvo")["ingestion_date"] == D2
    said = _logged(state.state_details.flow_run_id, "Backfill done, but ")
    assert said == [f"Backfill done, but {behind(lake)}."] and f"--ingestion-date {D3}" in said[0]


def _logged(flow_run_id: Any, starting: str) -> list[str]:
    """The flow run's log lines (as the Prefect UI shows them) that start with `starting`."""
    deadline = time.monotonic() + 20  # logs reach the API in batches, in the background
    while True:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        said = [log.message for log in logs if log.message.startswith(starting)]
        if said or time.monotonic() > deadline:
            return said
        time.sleep(0.5)
