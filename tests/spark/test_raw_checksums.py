"""Raw parts are verified against their manifest's sha256 before a Spark step reads them; a mismatch fails
the step at once, naming the unit and the part, and is not retried."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from flows.errors import ChecksumMismatch
from flows.lake import Lake
from flows.settings import Settings
from flows.spark.io import committed_spark_files, read_raw_lines

DATE = "2026-11-25"
PNADC = f"pnadc/ingestion_date={DATE}"
IBGE = f"ibge/microrregioes/ingestion_date={DATE}"


def _commit(lake: Lake, unit: str, files: dict[str, bytes]) -> list[Path]:
    staging = lake.stage("raw", unit)
    for name, body in files.items():
        with staging.open(name) as fh:
            fh.write(body)
        staging.add_file(name, records=1)
    lake.commit(staging)
    return [Path(p) for p in lake.committed_files("raw", unit)]


def _line(renda: float) -> bytes:
    return gzip.compress((json.dumps({"_id": {"$oid": "6" * 24}, "renda": renda}) + "\n").encode(), mtime=0)


@pytest.fixture
def lake(settings_for: Callable[..., Settings]) -> Lake:
    return Lake(settings_for())


def test_intact_parts_are_read(spark: SparkSession, lake: Lake) -> None:
    _commit(lake, PNADC, {"part-00000.jsonl.gz": _line(2303.02), "part-00001.jsonl.gz": _line(10.0)})
    assert read_raw_lines(spark, committed_spark_files(lake, "raw", PNADC), DATE).count() == 2


@pytest.mark.parametrize("tamper", ["rewritten as valid gzip", "one byte flipped", "deleted"])
def test_a_part_changed_after_ingestion_fails_naming_unit_and_part(
    spark: SparkSession, lake: Lake, tamper: str
) -> None:
    parts = _commit(lake, PNADC, {"part-00000.jsonl.gz": _line(1.0), "part-00001.jsonl.gz": _line(2303.02)})
    target = parts[1]
    if tamper == "rewritten as valid gzip":
        target.write_bytes(_line(1_540_293.51))
    elif tamper == "one byte flipped":
        body = bytearray(target.read_bytes())
        body[len(body) // 2] ^= 0xFF
        target.write_bytes(bytes(body))
    else:
        target.unlink()
    with pytest.raises(ChecksumMismatch) as err:
        committed_spark_files(lake, "raw", PNADC)
    assert f"raw/{PNADC}: part {target.parent.name}/part-00001.jsonl.gz" in str(err.value)
    assert "Not retried" in str(err.value)


def test_the_spark_step_fails_at_once_and_is_not_retried(
    prefect_harness: None, spark: SparkSession, settings_for: Callable[..., Settings]
) -> None:
    """Through the Prefect task that runs steps (retries=1 for other failures): one attempt only."""
    from prefect import flow
    from prefect.client.orchestration import get_client

    from flows.pipeline import spark_step

    settings = settings_for()
    lake = Lake(settings)
    # the last entity the step builds is the altered one: none is written, as every input is checked first
    snapshot = Path("flows/snapshot/ibge")
    for entity in ("regioes", "mesorregioes"):
        _commit(
            lake,
            f"ibge/{entity}/ingestion_date={DATE}",
            {f"{entity}.json": (snapshot / f"{entity}.json").read_bytes()},
        )
    body = (snapshot / "microrregioes.json").read_bytes()
    (part,) = _commit(lake, IBGE, {"microrregioes.json": body})
    part.write_bytes(body.replace(b"Sudeste", b"Sudoeste"))

    @flow(name="one-step")
    def one_step() -> None:
        spark_step("ibge_to_processing", settings, DATE)

    state = one_step(return_state=True)
    assert state.is_failed()
    with pytest.raises(
        ChecksumMismatch, match=r"raw/ibge/microrregioes/ingestion_date=2026-11-25: part run="
    ):
        state.result()

    async def attempts() -> list[int]:
        async with get_client() as client:
            runs = await client.read_task_runs()
        return [r.run_count for r in runs if r.flow_run_id == state.state_details.flow_run_id]

    assert asyncio.run(attempts()) == [1]
    for table in ("regioes", "mesorregioes", "microrregioes", "ufs"):
        assert lake.manifest("processing", f"{table}/ingestion_date={DATE}") is None


def test_the_step_entrypoint_exits_with_the_mismatch_code_naming_unit_and_part(
    spark: SparkSession, settings_for: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    """What a driver pod runs: its exit code and last line tell the Kubernetes runner not to retry."""
    from flows.spark.jobs import ibge_to_processing

    settings = settings_for()
    lake = Lake(settings)
    snapshot = Path("flows/snapshot/ibge")
    for entity in ("regioes", "mesorregioes", "microrregioes"):
        body = (snapshot / f"{entity}.json").read_bytes()
        (part,) = _commit(lake, f"ibge/{entity}/ingestion_date={DATE}", {f"{entity}.json": body})
    part.write_bytes(body.replace(b"Sudeste", b"Sudoeste"))

    rc = ibge_to_processing.main(["--ingestion-date", DATE, "--lake-root", settings.lake_root])

    assert rc == ChecksumMismatch.exit_code
    assert f"ibge_to_processing failed: ChecksumMismatch: raw/{IBGE}: part run=" in capsys.readouterr().err
