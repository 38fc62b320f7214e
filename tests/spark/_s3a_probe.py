"""Run in a fresh process by tests/spark/test_s3a.py: a Spark step's session writes and reads `s3a://`.

A fresh process because the session's JVM reads SPARK_CONF_DIR and the AWS variables once, when it starts.
Prints one JSON line: what was read back and the S3A conf the session ended up with.
"""

from __future__ import annotations

import json
import sys

from pyspark.sql import functions as F

from flows.settings import Settings
from flows.spark.session import spark_session

SHOWN = (
    "spark.hadoop.fs.s3a.aws.credentials.provider",
    "spark.hadoop.fs.s3a.committer.name",
    "spark.sql.sources.commitProtocolClass",
    "spark.hadoop.fs.s3a.endpoint",
    "spark.hadoop.fs.s3a.endpoint.region",
    "spark.hadoop.fs.s3a.path.style.access",
)


def main(path: str) -> None:
    spark = spark_session(Settings(), "s3a-probe")
    try:
        frame = spark.range(0, 1000).select("id", (F.col("id") % 4).cast("int").alias("part"))
        frame.write.mode("overwrite").partitionBy("part").parquet(path)
        back = spark.read.parquet(path)
        conf = spark.sparkContext.getConf()
        print(
            json.dumps(
                {
                    "rows": back.count(),
                    "id_sum": back.agg(F.sum("id")).first()[0],
                    "parts": sorted(r.part for r in back.select("part").distinct().collect()),
                    "conf": {key: conf.get(key, None) for key in SHOWN},
                }
            )
        )
    finally:
        spark.stop()


if __name__ == "__main__":
    main(sys.argv[1])
