"""Small tables: every frame collected in one Spark job, typed by its declared schema, written and committed
by the driver as one Parquet file."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

from flows.errors import LakeError
from flows.lake import Lake, sha256_file
from flows.settings import Settings
from flows.spark.small_tables import FILE_NAME, arrow_schema, collect_tables, write_arrow_table

PEOPLE = StructType(
    [
        StructField("id", IntegerType(), False),
        StructField("name", StringType()),
        StructField("income", DoubleType()),
    ]
)
PLACES = StructType([StructField("code", StringType(), False), StructField("population", IntegerType())])
ROWS = [
    (1, "Ana", 0.1),
    (2, None, 1 / 3),
    (3, 'São Paulo, "SP"\nlinha 2', -2.5e-300),
    (-2147483648, "", None),
    (2147483647, "x\\y", 1.7976931348623157e308),
]


def _jobs(spark: SparkSession) -> set[int]:
    return set(spark.sparkContext.statusTracker().getJobIdsForGroup(None))


def test_every_frame_comes_back_typed_by_its_schema_in_one_spark_job(spark: SparkSession) -> None:
    people = spark.createDataFrame(ROWS, PEOPLE)
    places = spark.createDataFrame([("BR", 203_080_756), ("XX", None)], PLACES)
    nobody = spark.createDataFrame([], PEOPLE)
    before = _jobs(spark)

    tables = collect_tables(
        {"people": (people, PEOPLE), "places": (places, PLACES), "none": (nobody, PEOPLE)}
    )

    assert len(_jobs(spark) - before) == 1
    assert list(tables) == ["people", "places", "none"]
    assert sorted(tables["people"].to_pylist(), key=lambda r: r["id"]) == sorted(
        [dict(zip(PEOPLE.names, r, strict=True)) for r in ROWS], key=lambda r: r["id"]
    )  # every value exactly: nulls, quotes, newlines, backslashes, int extremes, doubles to the last bit
    assert sorted(tables["places"].to_pylist(), key=repr) == [
        {"code": "BR", "population": 203_080_756},
        {"code": "XX", "population": None},
    ]
    assert tables["none"].num_rows == 0
    for name, schema in (("people", PEOPLE), ("places", PLACES), ("none", PEOPLE)):
        assert tables[name].schema == arrow_schema(schema)
    assert arrow_schema(PEOPLE) == pa.schema(
        [pa.field("id", pa.int32(), False), pa.field("name", pa.string()), pa.field("income", pa.float64())]
    )


def test_a_row_that_breaks_its_schema_fails_with_the_tables_name(spark: SparkSession) -> None:
    nullable = StructType([StructField("code", StringType()), StructField("population", IntegerType())])
    places = spark.createDataFrame([("BR", 1), (None, 2)], nullable)
    with pytest.raises(LakeError, match=r"places: a row does not fit the table's declared schema"):
        collect_tables({"places": (places, PLACES)})  # `code` is required by the contract


def test_a_column_the_schema_does_not_declare_fails(spark: SparkSession) -> None:
    wider = spark.createDataFrame([("BR", 1, "extra")], "code string, population int, note string")
    with pytest.raises(LakeError, match="unexpected field"):
        collect_tables({"places": (wider, PLACES)})


def test_a_table_is_committed_as_one_parquet_file_with_its_count_and_checksum(tmp_path: Path) -> None:
    lake = Lake(Settings(lake_root=str(tmp_path / "lake")))
    table = pa.Table.from_pylist([{"code": "BR", "population": 1}, {"code": "PT", "population": None}])
    table = table.cast(arrow_schema(PLACES))

    manifest = write_arrow_table(table, lake, "processing", "places/ingestion_date=2026-11-25", source="test")

    (path,) = lake.committed_files("processing", "places/ingestion_date=2026-11-25")
    assert (manifest["records"], manifest["format"], manifest["source"]) == (2, "parquet", "test")
    (entry,) = manifest["files"]
    assert entry["records"] == 2 and entry["sha256"] == sha256_file(lake.fs("processing"), path)
    assert entry["bytes"] == Path(path).stat().st_size
    written = pq.ParquetFile(path)
    assert written.schema_arrow == arrow_schema(PLACES)
    assert written.metadata.row_group(0).column(0).compression == "ZSTD"  # as Spark writes the lake's files
    assert pq.read_table(path).equals(table)


def test_a_write_that_fails_leaves_nothing_visible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = Lake(Settings(lake_root=str(tmp_path / "lake")))
    unit = "places/ingestion_date=2026-11-25"
    table = arrow_schema(PLACES).empty_table()
    before = write_arrow_table(table, lake, "processing", unit)
    staged = []

    def stage_with_a_folder_where_the_file_goes(zone, unit_, run_id=None):  # type: ignore[no-untyped-def]
        staging = Lake.stage(lake, zone, unit_, run_id)
        (Path(staging.path) / FILE_NAME).mkdir()  # the file cannot be written
        staged.append(staging)
        return staging

    monkeypatch.setattr(lake, "stage", stage_with_a_folder_where_the_file_goes)
    with pytest.raises(IsADirectoryError):
        write_arrow_table(table, lake, "processing", unit)
    assert lake.manifest("processing", unit) == before  # readers still see the last commit
    assert not Path(staged[0].path).exists()  # the failed run's folder is gone
    assert lake.runs("processing", unit) == [before["run_id"]]
