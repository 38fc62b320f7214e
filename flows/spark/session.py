"""The SparkSession every step uses: local mode here, the Kubernetes driver in the cloud."""

from __future__ import annotations

import os

from pyspark.sql import SparkSession

from flows.settings import Settings
from flows.spark import class_cache
from flows.spark.jvm import JVM_OPTIONS, LOCAL_JVM_OPTIONS


def spark_session(settings: Settings, app_name: str = "vamosjuntos") -> SparkSession:
    """Get (or reuse) the session; its JVM settings are fixed by whoever starts it first."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON", "python3"))
    # Locally, the JVM maps the classes archived by `python -m flows.spark.class_cache` when it was built.
    directory = class_cache.cache_dir(settings.spark_class_cache_dir)
    archive = class_cache.jvm_options(settings.spark_master, settings.spark_class_cache, directory)
    builder = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark_master)
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.driver.extraJavaOptions", f"{JVM_OPTIONS} {LOCAL_JVM_OPTIONS} {archive}".strip())
        .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.compression.codec", "zstd")
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if settings.spark_master.startswith("k8s://"):
        from flows.spark.kubernetes.spark_conf import spark_conf_for_kubernetes

        for key, value in spark_conf_for_kubernetes(settings).items():
            builder = builder.config(key, value)
    if settings.s3_endpoint_url:
        # An S3-compatible endpoint (moto, MinIO): bucket in the path, and the region S3A would otherwise
        # work out from the AWS endpoint's name.
        builder = (
            builder.config("spark.hadoop.fs.s3a.endpoint", settings.s3_endpoint_url)
            .config("spark.hadoop.fs.s3a.endpoint.region", settings.aws_region)
            .config("spark.hadoop.fs.s3a.path.style.access", "true")
        )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
