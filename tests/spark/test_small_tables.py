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
from flows.lake import STAGING, Lake, sha256_file
from flows.settings import Settings
from flows.spark import small_tables
from flows.spark.small_tables import FILE_NAME, arrow_schema, collect_tables, write_staged

PEOPLE = StructType(
    [
        StructField("id", IntegerType(), False),
        StructField("name", StringType()),
        StructField("age", IntegerType()),
    ]
)
PLACES = StructType([StructField("code", StringType(), False), StructField("population", IntegerType())])
ROWS = [
    (1, "Ana", 30),
    (2, None, 0),
    (3, 'São Paulo, "SP"\nlinha 2\t\u2028\x00', -1),
    (-2147483648, "", None),
    (2147483647, "x\\y", 2147483647),
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
    )  # every value exactly: nulls, quotes, newlines, tabs, control characters, backslashes, int extremes
    assert sorted(tables["places"].to_pylist(), key=repr) == [
        {"code": "BR", "population": 203_080_756},
        {"code": "XX", "population": None},
    ]
    assert tables["none"].num_rows == 0
    for name, schema in (("people", PEOPLE), ("places", PLACES), ("none", PEOPLE)):
        assert tables[name].schema == arrow_schema(schema)
    assert arrow_schema(PEOPLE) == pa.schema(
        [pa.field("id", pa.int32(), False), pa.field("name", pa.string()), pa.field("age", pa.int32())]
    )
    assert collect_tables({}) == {}


def test_a_row_larger_than_pyarrows_default_block_comes_back_whole(spark: SparkSession) -> None:
    long = "ç" * (3 << 20)  # 6 MiB of UTF-8: pyarrow reads JSON in 1 MiB blocks unless told otherwise
    people = spark.createDataFrame([(1, long, None), (2, "Ana", 30)], PEOPLE)
    (table,) = collect_tables({"people": (people, PEOPLE)}).values()
    assert sorted(table.column("name").to_pylist(), key=len) == ["Ana", long]


def test_a_type_that_cannot_cross_as_json_is_refused_before_spark_runs(spark: SparkSession) -> None:
    priced = StructType([StructField("code", StringType(), False), StructField("price", DoubleType())])
    before = _jobs(spark)
    with pytest.raises(ValueError, match="column price: double is not a small table's type"):
        collect_tables({"prices": (spark.createDataFrame([("a", float("nan"))], priced), priced)})
    assert _jobs(spark) == before


def test_a_row_that_breaks_its_schema_fails_with_the_tables_name(spark: SparkSession) -> None:
    nullable = StructType([StructField("code", StringType()), StructField("population", IntegerType())])
    places = spark.createDataFrame([("BR", 1), (None, 2)], nullable)
    with pytest.raises(
        LakeError, match=r"places: 1 row\(s\) without code, which the table declares required"
    ):
        collect_tables({"places": (places, PLACES)})


def test_a_column_the_schema_does_not_declare_fails(spark: SparkSession) -> None:
    wider = spark.createDataFrame([("BR", 1, "extra")], "code string, population int, note string")
    with pytest.raises(LakeError, match="unexpected field"):
        collect_tables({"places": (wider, PLACES)})


def test_a_table_is_committed_as_one_parquet_file_with_its_count_and_checksum(tmp_path: Path) -> None:
    lake = Lake(Settings(lake_root=str(tmp_path / "lake")))
    table = pa.Table.from_pylist([{"code": "BR", "population": 1}, {"code": "PT", "population": None}])
    table = table.cast(arrow_schema(PLACES))

    unit = "places/ingestion_date=2026-11-25"
    manifest = write_staged(table, lake, lake.stage("processing", unit), source="test")

    (path,) = lake.committed_files("processing", unit)
    assert (manifest["records"], manifest["format"], manifest["source"]) == (2, "parquet", "test")
    (entry,) = manifest["files"]
    assert entry["records"] == 2 and entry["sha256"] == sha256_file(lake.fs("processing"), path)
    assert entry["bytes"] == Path(path).stat().st_size
    written = pq.ParquetFile(path)
    assert written.schema_arrow == arrow_schema(PLACES)
    assert written.metadata.row_group(0).column(0).compression == "ZSTD"  # as Spark writes the lake's files
    assert pq.read_table(path).equals(table)


@pytest.mark.parametrize("fault", ["the file cannot be written", "Ctrl-C as it is written"])
def test_a_write_that_fails_leaves_nothing_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    lake = Lake(Settings(lake_root=str(tmp_path / "lake")))
    unit = "places/ingestion_date=2026-11-25"
    table = arrow_schema(PLACES).empty_table()
    before = write_staged(table, lake, lake.stage("processing", unit))
    staging = lake.stage("processing", unit)
    if fault == "the file cannot be written":
        (Path(staging.path) / FILE_NAME).mkdir()
        expected: type[BaseException] = IsADirectoryError
    else:
        monkeypatch.setattr(small_tables, "copy_hashed", _interrupt)
        expected = KeyboardInterrupt

    with pytest.raises(expected):
        write_staged(table, lake, staging)

    assert lake.manifest("processing", unit) == before  # readers still see the last commit
    assert not Path(staging.path).exists()  # the failed run's folder is gone
    assert lake.runs("processing", unit) == [before["run_id"]]
    assert not list(Path(lake.path("processing", unit, STAGING)).glob("*.json"))  # nor is it "being written"


def _interrupt(*args: object) -> None:
    raise KeyboardInterrupt
