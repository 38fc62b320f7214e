"""The cloud path against moto's S3, Glue and Athena in server mode: what we declare and what we send.

moto runs no SQL. These tests check the Glue tables publish declares (against the Parquet a real run
wrote), that a rebuild repoints them, and what the answer flow sends to Athena (the SQL files as they
are, the workgroup, the database, no client-side result location); canned results queued in moto flow
back through pyathena and our parsing into the same answers the local engine gave.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import boto3
import duckdb
import httpx
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from flows import catalog
from flows.engines.athena import AthenaEngine, AthenaQueryError
from flows.engines.duckdb_engine import DuckDBEngine
from flows.errors import ConfigurationError
from flows.lake import Lake
from flows.questions import questions
from flows.report.chart_data import chart_data, chart_sqls
from flows.report.store import local_copy
from flows.settings import Settings
from tests.support.cloud_lake import (
    ACCOUNT,
    REGION,
    cloud_settings,
    copy_lake_to_s3,
    make_bucket,
)
from tests.support.local_run import LocalRun

ARROW_TO_ATHENA = {"int32": "int", "int64": "bigint", "double": "double", "string": "string"}


@pytest.fixture
def cloud(moto: str, local_run: LocalRun) -> tuple[Settings, Lake]:
    """The real local run's lake, uploaded to moto's S3, with settings for the Athena engine."""
    make_bucket(moto)
    settings = cloud_settings(moto)
    lake = Lake(settings)
    copy_lake_to_s3(local_run.lake, lake)
    return settings, lake


def glue(settings: Settings) -> Any:
    return boto3.client("glue", endpoint_url=settings.glue_endpoint_url, region_name=REGION)


def _parquet_columns(local: Lake, table: str) -> list[tuple[str, str]]:
    """Columns of every committed Parquet file of a table (they must all agree), as Athena types."""
    schemas = {
        tuple((f.name, str(f.type)) for f in pq.read_schema(p))
        for p in local.committed_files("consumer", table)
    }
    assert len(schemas) == 1, f"{table}: files disagree on their schema"
    return [(name, ARROW_TO_ATHENA[t]) for name, t in schemas.pop()]


def _folder_partitions(local: Lake, table: str) -> list[dict[str, str]]:
    """The hive partition values of each committed file, from its folders under the run."""
    out = []
    for f in local.manifest("consumer", table)["files"]:
        folders = f["name"].split("/")[1:-1]  # drop run=<id>/ and the file name
        out.append(dict(seg.split("=", 1) for seg in folders))
    return out


@pytest.mark.integration
def test_publish_declares_every_consumer_table_at_its_committed_run(
    cloud: tuple[Settings, Lake], local_run: LocalRun
) -> None:
    settings, lake = cloud
    results = catalog.publish_glue(lake, settings)
    assert {r["action"] for r in results} == {"created"}

    client = glue(settings)
    assert client.get_database(Name="vamosjuntos_test")["Database"]["Name"] == "vamosjuntos_test"
    tables = {t["Name"]: t for t in client.get_tables(DatabaseName="vamosjuntos_test")["TableList"]}
    assert set(tables) == {"publico_alvo", "regioes", "ufs", "mesorregioes", "microrregioes"}

    for name, table in tables.items():
        sd = table["StorageDescriptor"]
        run_id = lake.manifest("consumer", name)["run_id"]
        assert sd["Location"] == f"s3://vj-lake/consumer/{name}/run={run_id}/"
        assert table["TableType"] == "EXTERNAL_TABLE"
        assert table["Parameters"]["EXTERNAL"] == "TRUE"
        assert table["Parameters"]["classification"] == "parquet"
        assert table["Parameters"]["vamosjuntos.run_id"] == run_id
        assert sd["InputFormat"] == "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
        assert (
            sd["SerdeInfo"]["SerializationLibrary"]
            == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
        )
        # the declared columns are exactly the columns (names, order, types) of the Parquet files written
        declared = [(c["Name"], c["Type"]) for c in sd["Columns"]]
        assert declared == _parquet_columns(local_run.lake, name), name

    # publico_alvo: partition keys are the folders the files sit in, projected (no registered partitions)
    fact = tables["publico_alvo"]
    params = fact["Parameters"]
    keys = [(k["Name"], k["Type"]) for k in fact["PartitionKeys"]]
    folders = _folder_partitions(local_run.lake, "publico_alvo")
    assert keys == [(k, "string") for k in folders[0]] == [("regiao_sigla", "string"), ("uf_sigla", "string")]
    assert (
        client.get_partitions(DatabaseName="vamosjuntos_test", TableName="publico_alvo")["Partitions"] == []
    )
    assert params["projection.enabled"] == "true"
    ufs_dim = {
        r["uf_sigla"] for r in pq.read_table(local_run.lake.committed_files("consumer", "ufs")[0]).to_pylist()
    }
    for key, _ in keys:
        assert params[f"projection.{key}.type"] == "enum"
        values = params[f"projection.{key}.values"].split(",")
        assert values == sorted({f[key] for f in folders})
    assert set(params["projection.uf_sigla.values"].split(",")) <= ufs_dim
    # every committed file is where the location template sends Athena for its partition
    template = params["storage.location.template"]
    location = fact["StorageDescriptor"]["Location"]
    assert template == location + "regiao_sigla=${regiao_sigla}/uf_sigla=${uf_sigla}/"
    manifest = lake.manifest("consumer", "publico_alvo")
    for f, parts in zip(manifest["files"], folders, strict=True):
        prefix = template.replace("${regiao_sigla}", parts["regiao_sigla"]).replace(
            "${uf_sigla}", parts["uf_sigla"]
        )
        assert f"s3://vj-lake/consumer/publico_alvo/{f['name']}".startswith(prefix)


def _recommit(lake: Lake, table: str, manifest: dict[str, Any] | None = None) -> str:
    """Commit a new run of a consumer table with the same files as its current run, or as the run of
    `manifest` (what a rebuild does); its run id."""
    manifest = manifest or lake.manifest("consumer", table)
    fs = lake.fs("consumer")
    staging = lake.stage("consumer", table)
    for f in manifest["files"]:
        rel = f["name"].split("/", 1)[1]
        fs.copy(lake.path("consumer", table, f["name"]), f"{staging.path}/{rel}")
    staging.add_written_files(".parquet")
    return lake.commit(staging, records=manifest["records"], partition_by=manifest["partition_by"])["run_id"]


@pytest.mark.integration
def test_publish_is_idempotent_and_repoints_tables_at_a_rebuilt_run(cloud: tuple[Settings, Lake]) -> None:
    settings, lake = cloud
    client = glue(settings)
    catalog.publish_glue(lake, settings)

    def versions(table: str) -> int:
        return len(
            client.get_table_versions(DatabaseName="vamosjuntos_test", TableName=table)["TableVersions"]
        )

    before = {t: versions(t) for t in catalog.CONSUMER}
    again = catalog.publish_glue(lake, settings)
    assert {r["action"] for r in again} == {"unchanged"}
    assert {t: versions(t) for t in catalog.CONSUMER} == before  # no new Glue table version

    old_location = client.get_table(DatabaseName="vamosjuntos_test", Name="publico_alvo")["Table"]
    new_run = _recommit(lake, "publico_alvo")
    after = {r["table"]: r["action"] for r in catalog.publish_glue(lake, settings)}
    assert after.pop("vamosjuntos_test.publico_alvo") == "updated"
    assert set(after.values()) == {"unchanged"}
    table = client.get_table(DatabaseName="vamosjuntos_test", Name="publico_alvo")["Table"]
    assert table["StorageDescriptor"]["Location"] == f"s3://vj-lake/consumer/publico_alvo/run={new_run}/"
    assert table["StorageDescriptor"]["Location"] != old_location["StorageDescriptor"]["Location"]
    assert f"/run={new_run}/" in table["Parameters"]["storage.location.template"]
    assert table["Parameters"]["vamosjuntos.run_id"] == new_run
    assert versions("publico_alvo") == before["publico_alvo"] + 1


def _commit_empty(lake: Lake, table: str) -> str:
    """Commit a run of a table with no rows, as the Spark step does when no one is of the target public."""
    staging = lake.stage("consumer", table)
    manifest = lake.manifest("consumer", table)
    return lake.commit(staging, records=0, partition_by=manifest["partition_by"])["run_id"]


@pytest.mark.integration
def test_a_target_public_of_no_one_is_projected_on_a_value_that_names_no_folder(
    cloud: tuple[Settings, Lake],
) -> None:
    """No rows, no partition folders: the enums get one value that names no folder, so Athena finds no
    files (and still never reads partitions registered in Glue), and DuckDB over the same S3 zone answers
    "no data" too, in a session that had declared the table with rows (its dataset of the old run's files
    let go). Publishing it again changes nothing; a later run with rows is projected on its folders."""
    settings, lake = cloud
    client = glue(settings)
    catalog.publish_glue(lake, settings)
    with_rows = lake.manifest("consumer", "publico_alvo")
    engine = DuckDBEngine(lake)
    try:
        assert engine.register_consumer()["publico_alvo"] == with_rows["records"] > 0
        assert engine.query("SELECT count(*) FROM publico_alvo__arrow")[1] == [(with_rows["records"],)]
    except BaseException:
        engine.close()
        raise
    _commit_empty(lake, "publico_alvo")
    published = {r["table"]: r for r in catalog.publish_glue(lake, settings)}
    assert published["vamosjuntos_test.publico_alvo"]["action"] == "updated"
    assert published["vamosjuntos_test.publico_alvo"]["records"] == 0
    table = client.get_table(DatabaseName="vamosjuntos_test", Name="publico_alvo")["Table"]
    assert [k["Name"] for k in table["PartitionKeys"]] == ["regiao_sigla", "uf_sigla"]
    params = table["Parameters"]
    assert params["projection.enabled"] == "true"
    assert params["projection.regiao_sigla.values"] == params["projection.uf_sigla.values"] == "__no_rows__"
    empty_run = params["storage.location.template"].split("/run=")[1].split("/")[0]
    assert not lake.fs("consumer").exists(
        lake.path("consumer", "publico_alvo", f"run={empty_run}", "regiao_sigla=__no_rows__")
    )
    again = {r["table"]: r["action"] for r in catalog.publish_glue(lake, settings)}
    assert set(again.values()) == {"unchanged"}
    try:
        assert engine.register_consumer()["publico_alvo"] == 0
        assert engine.query("SELECT avg(renda), count(*) FROM publico_alvo")[1] == [(None, 0)]
        with pytest.raises(duckdb.CatalogException, match="publico_alvo__arrow"):
            engine.query("SELECT count(*) FROM publico_alvo__arrow")
    finally:
        engine.close()

    rows_again = _recommit(lake, "publico_alvo", with_rows)
    catalog.publish_glue(lake, settings)
    table = client.get_table(DatabaseName="vamosjuntos_test", Name="publico_alvo")["Table"]
    assert "__no_rows__" not in table["Parameters"]["projection.uf_sigla.values"]
    assert f"/run={rows_again}/" in table["Parameters"]["storage.location.template"]


@pytest.mark.integration
def test_publish_refuses_a_table_it_does_not_own(cloud: tuple[Settings, Lake]) -> None:
    settings, lake = cloud
    client = glue(settings)
    client.create_database(DatabaseInput={"Name": "vamosjuntos_test"})
    client.create_table(
        DatabaseName="vamosjuntos_test",
        TableInput={"Name": "regioes", "StorageDescriptor": {"Columns": [], "Location": "s3://elsewhere/"}},
    )
    with pytest.raises(ConfigurationError, match="not declared by this pipeline"):
        catalog.publish_glue(lake, settings)
    kept = client.get_table(DatabaseName="vamosjuntos_test", Name="regioes")["Table"]
    assert kept["StorageDescriptor"]["Location"] == "s3://elsewhere/"


@pytest.mark.parametrize("engines", [{"engine": "athena"}, {"answer_engine": "athena"}])
def test_athena_needs_the_consumer_zone_on_s3(tmp_path: Any, engines: dict[str, str]) -> None:
    """Said when the settings are read, before a run starts; and by publishing, whatever built them."""
    with pytest.raises(ValidationError, match="VAMOSJUNTOS_CONSUMER_ROOT=s3://"):
        Settings(lake_root=str(tmp_path / "lake"), **engines)
    on_s3 = Settings(lake_root=str(tmp_path / "lake"), consumer_root="s3://bucket/consumer", **engines)
    assert "athena" in (on_s3.engine, on_s3.answer_engine)
    settings = Settings(lake_root=str(tmp_path / "lake")).model_copy(update={"engine": "athena"})
    with pytest.raises(ConfigurationError, match="VAMOSJUNTOS_CONSUMER_ROOT=s3://"):
        catalog.publish_glue(Lake(settings), settings, glue=object())


def test_the_ddl_text_declares_the_same_table_as_the_glue_input(local_run: LocalRun) -> None:
    """The DDL shown to people (publish artifact, docs) says what the Glue API call declares."""
    import sqlglot
    from sqlglot import exp

    for spec in catalog.table_specs(local_run.lake):
        tree = sqlglot.parse_one(spec.ddl("vamosjuntos").rstrip(";"), read="athena")
        wanted = spec.table_input()

        def hive(columns: list[exp.Expression]) -> list[tuple[str, str]]:
            return [(c.name, c.args["kind"].sql("hive").lower()) for c in columns]

        assert hive(tree.this.expressions) == [
            (c["Name"], c["Type"]) for c in wanted["StorageDescriptor"]["Columns"]
        ]
        partitioned = tree.find(exp.PartitionedByProperty)
        keys = hive(partitioned.this.expressions) if partitioned else []
        assert keys == [(k["Name"], k["Type"]) for k in wanted["PartitionKeys"]]
        assert tree.find(exp.LocationProperty).text("this") == wanted["StorageDescriptor"]["Location"]
        props = {p.name: p.text("value") for p in tree.find_all(exp.Property) if type(p) is exp.Property}
        assert props == {k: v for k, v in wanted["Parameters"].items() if k != "EXTERNAL"}


# --- answering through Athena ----------------------------------------------------------------
def _column(name: str, athena_type: str) -> dict[str, Any]:
    return {
        "CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": name, "Label": name,
        "Type": athena_type, "Precision": 0, "Scale": 0, "Nullable": "UNKNOWN", "CaseSensitive": False,
    }  # fmt: skip


def _athena_type(values: list[Any]) -> str:
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {int}:
        return "bigint"
    if kinds <= {int, float}:
        return "double"
    return "varchar"


def canned(columns: list[str], rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """A result as Athena's GetQueryResults returns it: a header row, then each value as text (NULL: {})."""
    header = {"Data": [{"VarCharValue": c} for c in columns]}
    data = [
        {
            "Data": [
                {} if v is None else {"VarCharValue": repr(v) if isinstance(v, float) else str(v)} for v in r
            ]
        }
        for r in rows
    ]
    types = [_athena_type([r[i] for r in rows]) for i in range(len(columns))]
    return {
        "rows": [header, *data],
        "column_info": [_column(c, t) for c, t in zip(columns, types, strict=True)],
    }


def _stats_by_query_length(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto reports zero cost for every query; make it distinct per query so we can see it routed right."""
    from moto.athena.responses import AthenaResponse

    original = AthenaResponse.get_query_execution

    def with_stats(self: Any) -> str:
        body = json.loads(original(self))
        n = len(body["QueryExecution"]["Query"])
        body["QueryExecution"]["Statistics"].update(
            DataScannedInBytes=n * 1000, EngineExecutionTimeInMillis=n, TotalExecutionTimeInMillis=n + 100
        )
        return json.dumps(body)

    monkeypatch.setattr(AthenaResponse, "get_query_execution", with_stats)


@pytest.mark.integration
def test_answer_flow_on_athena_sends_the_sql_files_and_parses_the_results(
    cloud: tuple[Settings, Lake], local_run: LocalRun, moto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.athena.models import athena_backends
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    from flows.pipeline import answer, publish

    settings, lake = cloud
    boto3.client("athena", endpoint_url=moto, region_name=REGION).create_work_group(
        Name=settings.athena_workgroup,
        Configuration={"ResultConfiguration": {"OutputLocation": "s3://vj-athena-results/"}},
    )
    _stats_by_query_length(monkeypatch)
    # What Athena would return: the local run's answers and chart rows, in the order the flow starts them.
    local = DuckDBEngine(local_run.lake)
    try:
        local.register_consumer()
        charts = chart_data(local)
    finally:
        local.close()
    results = [canned(["answer", "row_count"], [(a["answer"], a["rows"])]) for a in local_run.answers]
    results += [canned(list(rows[0]), [tuple(r.values()) for r in rows]) for rows in charts.values()]
    httpx.post(
        f"{moto}/moto-api/static/athena/query-results", json={"results": results}, timeout=10
    ).raise_for_status()

    published = publish(settings=settings)
    got = answer(settings=settings).rows

    assert published == {t: lake.manifest("consumer", t)["records"] for t in catalog.CONSUMER}
    # the answers parsed from Athena's text results are the local engine's, value for value
    assert got == local_run.answers
    assert (got[5]["id"], got[5]["answer"], got[5]["rows"]) == (6, None, 0)  # NULL text → "no data"

    # what we sent: each SQL file unchanged, then the chart SQL; our workgroup and database; and no
    # ResultConfiguration, so the workgroup's (encrypted) result location applies
    executions = list(athena_backends[ACCOUNT][REGION].executions.values())
    sent = [q.sql for q in questions()] + chart_sqls()
    assert [e.query for e in executions] == [s.strip() for s in sent]  # pyathena trims the ends only
    for e in executions:
        assert e.workgroup is not None and e.workgroup.name == settings.athena_workgroup
        assert e.context == {"Database": settings.glue_database, "Catalog": "awsdatacatalog"}
        assert not e.config
        assert e.execution_parameters is None

    # each query's cost is recorded with its answer: in the lake's payload, the artifacts and the report
    payload = lake.read_json("consumer", "_answers/latest.json")
    assert payload["run"]["engine"] == "athena"
    queries = payload["run"]["queries"]
    assert [q["id"] for q in queries] == list(range(1, 11))
    for q, e in zip(queries, executions, strict=False):
        assert q["query_id"] == e.id
        assert q["bytes_scanned"] == len(e.query) * 1000
        assert q["engine_ms"] == len(e.query) and q["total_ms"] == len(e.query) + 100

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["answers", "answers-summary"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(payload["run"]["flow_run_id"])]),
            )
        )
    by_key = {a.key: a for a in artifacts}
    table = by_key["answers"].data
    table = json.loads(table) if isinstance(table, str) else table
    assert [r["bytes_scanned"] for r in table] == [q["bytes_scanned"] for q in queries]
    # each answer with its unit, as the report shows it: not a raw float
    assert table[0]["answer"] == f"R$ {got[0]['answer']:,.2f}" and table[3]["answer"] == got[3]["answer"]
    assert table[5]["answer"] == "no data" and table[6]["answer"] == f"{got[6]['answer']:,.2f} years"
    assert "Bytes scanned in total" in by_key["answers-summary"].data

    head = boto3.client("s3", endpoint_url=moto, region_name=REGION).head_object(
        Bucket="vj-lake", Key="consumer/_reports/latest.html"
    )
    assert head["ContentType"] == "text/html; charset=utf-8"  # opens in a browser, not as a download
    html = lake.fs("consumer").cat_file(lake.path("consumer", "_reports/latest.html")).decode()
    assert local_copy(lake).read_text(encoding="utf-8") == html  # what `vamosjuntos report` opens
    assert ">athena</span>" in html
    assert executions[0].id in html


def test_a_missing_workgroup_is_a_clear_error(moto: str) -> None:
    settings = cloud_settings(moto, athena_workgroup="nobody-made-this")
    engine = AthenaEngine(settings)
    try:
        with pytest.raises(AthenaQueryError, match=r"did not start.*nobody-made-this"):
            engine.query(questions()[0].sql)
    finally:
        engine.close()


def test_glue_publish_with_duckdb_answers_over_the_same_s3_consumer(
    cloud: tuple[Settings, Lake], local_run: LocalRun
) -> None:
    """engine=athena with answer_engine=duckdb: the Glue tables are declared (publish follows `engine`) and
    DuckDB answers over the S3 consumer zone what the local run answered (where Athena cannot run)."""
    from flows.answers import LATEST
    from flows.pipeline import answer, publish

    settings = cloud[0].model_copy(update={"answer_engine": "duckdb"})
    lake = Lake(settings)
    published = publish(settings=settings)
    rows = answer(settings=settings).rows
    names = {t["Name"] for t in glue(settings).get_tables(DatabaseName=settings.glue_database)["TableList"]}
    assert names == set(published) and names
    assert [(a["id"], a["rows"]) for a in rows] == [(a["id"], a["rows"]) for a in local_run.answers]
    for got, want in zip(rows, local_run.answers, strict=True):
        assert got["answer"] == pytest.approx(want["answer"]), got["id"]
    assert lake.read_json("consumer", LATEST)["run"]["engine"] == "duckdb"
