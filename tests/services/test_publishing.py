"""flows/services/publishing.py without Prefect: a lake built by the services declared for DuckDB (a file
beside the consumer zone) and for Athena (Glue tables on moto's server); what it hands back is what was
declared, and a second publish changes nothing."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from flows.lake import Lake
from flows.layout import CONSUMER_TABLES, DUCKDB_FILE, consumer
from flows.services.publishing import publish
from tests.services.conftest import Built
from tests.support.cloud_lake import cloud_settings, copy_lake_to_s3, make_bucket

pytestmark = pytest.mark.integration  # a lake built on a SecantusDB server; Glue on moto's server


def _committed(lake: Lake) -> dict[str, int]:
    return {t: lake.manifest("consumer", consumer(t))["records"] for t in CONSUMER_TABLES}


def test_duckdb_declares_every_consumer_table_in_a_file_beside_the_zone(built: Built, tmp_path: Path) -> None:
    settings, lake = built.copy(tmp_path)
    published = publish(settings, lake)
    assert published.records == _committed(lake) and published.glue_tables == []
    assert published.records["publico_alvo"] > 0
    con = duckdb.connect(str(lake.path("consumer", DUCKDB_FILE)), read_only=True)
    try:
        counted = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in CONSUMER_TABLES}
    finally:
        con.close()
    assert counted == published.records
    assert publish(settings, lake) == published


def test_athena_declares_glue_tables_at_the_committed_runs_and_a_rerun_changes_nothing(
    built: Built, tmp_path: Path, moto: str
) -> None:
    _, local = built.copy(tmp_path)
    make_bucket(moto)
    settings = cloud_settings(moto)
    cloud = Lake(settings)
    copy_lake_to_s3(local, cloud)
    first = publish(settings, cloud)
    assert first.records == _committed(local)
    assert {t["action"] for t in first.glue_tables} == {"created"}
    runs = {t["table"].split(".", 1)[1]: t["run_id"] for t in first.glue_tables}
    assert runs == {t: local.manifest("consumer", consumer(t))["run_id"] for t in CONSUMER_TABLES}
    second = publish(settings, cloud)
    assert second.records == first.records
    assert {t["action"] for t in second.glue_tables} == {"unchanged"}
