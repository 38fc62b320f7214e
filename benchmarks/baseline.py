"""The original prototype's way, reimplemented faithfully as the baseline to beat.

Its Airflow task `extract_and_load` (the `mongo_ingestion` DAG) did, in one function:

    data = list(pnadc.find({}))
    obj = BytesIO(json.dumps(data, default=str, indent=4, sort_keys=True, ensure_ascii=False).encode("utf8"))
    s3_client.upload_fileobj(obj, LANDING_ZONE, f"mongo/extract_date={date}/mongo_export.json")

and its Spark job read that one file as multiline JSON with schema inference, kept the target public
(women aged 20 to 40) and wrote Parquet partitioned by `uf`. Here the upload is a write to the local raw
folder (the same bytes, from the same in-memory buffer); everything else is as it was. Spark gets the same
JVM resources as our steps (master, driver memory, UI off) and otherwise Spark's defaults, as the
prototype had.
"""

from __future__ import annotations

import json
import shutil
from io import BytesIO
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from benchmarks.marks import Marks


def extract_and_load(uri: str, database: str, collection: str, raw_file: Path, marks: Marks) -> int:
    """MongoDB → one pretty-printed JSON array in the raw zone, as the prototype's DAG did it."""
    with marks.stage("extract: list(find({}))"):
        mongo_client: MongoClient[Any] = MongoClient(uri)
        pnadc = mongo_client[database][collection]
        data = list(pnadc.find({}))
    with marks.stage("json.dumps(indent=4, sort_keys)"):
        obj = BytesIO(
            json.dumps(data, default=str, indent=4, sort_keys=True, ensure_ascii=False).encode("utf8")
        )
    with marks.stage("land: upload the file"):
        raw_file.parent.mkdir(parents=True, exist_ok=True)
        with open(raw_file, "wb") as fh:
            shutil.copyfileobj(obj, fh)  # what upload_fileobj streams from the buffer
    mongo_client.close()
    return len(data)


def spark_job(raw_file: Path, out_dir: Path, marks: Marks, master: str, driver_memory: str) -> None:
    """Multiline JSON with schema inference → the target public → Parquet partitioned by `uf`."""
    with marks.stage("spark start"):
        from pyspark.sql import SparkSession
        from pyspark.sql import functions as F

        spark = (
            SparkSession.builder.appName("original-prototype")
            .master(master)
            .config("spark.driver.memory", driver_memory)
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("WARN")
    with marks.stage("spark: read multiline JSON (schema inference)"):
        df = spark.read.option("multiLine", True).json(str(raw_file))
    with marks.stage("spark: filter women 20-40, write Parquet by uf"):
        target = df.filter((F.col("sexo") == "Mulher") & F.col("idade").between(20, 40))
        target.write.mode("overwrite").partitionBy("uf").parquet(str(out_dir))


def run(spec: dict[str, Any], marks: Marks) -> dict[str, Any]:
    root = Path(spec["lake"])
    raw_file = root / "raw" / "mongo" / f"extract_date={spec['date']}" / "mongo_export.json"
    out_dir = root / "silver" / "pnadc"
    documents = extract_and_load(spec["uri"], spec["database"], spec["collection"], raw_file, marks)
    spark_job(raw_file, out_dir, marks, spec["spark_master"], spec["spark_driver_memory"])
    return {"documents": documents, "raw_file": str(raw_file), "out_dir": str(out_dir)}
