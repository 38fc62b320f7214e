"""The SparkSession every step uses: local mode here, the Kubernetes driver in the cloud, or a running
Spark Connect server (`spark_remote`)."""

from __future__ import annotations

import atexit
import contextlib
import os
import socket

from pyspark.sql import SparkSession

from flows.settings import Settings
from flows.spark import class_cache
from flows.spark.jvm import JVM_OPTIONS, LOCAL_JVM_OPTIONS

REMOTE_CONNECT_TIMEOUT_S = 5.0


def connect_address(remote: str) -> tuple[str, int]:
    """(host, port) of a Spark Connect URL, parsed by PySpark's own client; ConfigurationError otherwise,
    without the URL (its token)."""
    from pyspark.sql.connect.client import DefaultChannelBuilder

    from flows.errors import ConfigurationError

    try:
        host, port = DefaultChannelBuilder(remote).endpoint.rsplit(":", 1)
        return host.strip("[]"), int(port)
    except Exception as exc:
        raise ConfigurationError(
            "VAMOSJUNTOS_SPARK_REMOTE is not a Spark Connect URL PySpark can use "
            f"(sc://localhost:PORT/;token=…, as `vamosjuntos spark-server` prints it): {type(exc).__name__}."
        ) from None


# Every Parquet file of the lake, whether Spark or the driver (flows/spark/small_tables.py) writes it.
PARQUET_CODEC = "zstd"


def is_remote_session(spark: SparkSession) -> bool:
    """A Spark Connect session (no JVM in this process: no SparkContext, no py4j)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def sql_conf(settings: Settings) -> dict[str, str]:
    """The session's SQL settings, the same whether this process starts the JVM or a server runs it."""
    return {
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.compression.codec": PARQUET_CODEC,
        "spark.sql.adaptive.enabled": "true",
    }


def local_driver_java_options(settings: Settings) -> str:
    """The local JVM's options: the project's, plus the class archive when one is built for this JVM."""
    directory = class_cache.cache_dir(settings.spark_class_cache_dir)
    archive = class_cache.jvm_options(settings.spark_master, settings.spark_class_cache, directory)
    return f"{JVM_OPTIONS} {LOCAL_JVM_OPTIONS} {archive}".strip()


def s3_endpoint_conf(settings: Settings) -> dict[str, str]:
    """An S3-compatible endpoint (moto, MinIO): bucket in the path, and the region S3A would otherwise work
    out from the AWS endpoint's name. Empty without one."""
    if not settings.s3_endpoint_url:
        return {}
    return {
        "spark.hadoop.fs.s3a.endpoint": settings.s3_endpoint_url,
        "spark.hadoop.fs.s3a.endpoint.region": settings.aws_region,
        "spark.hadoop.fs.s3a.path.style.access": "true",
    }


def spark_session(settings: Settings, app_name: str = "vamosjuntos") -> SparkSession:
    """Get (or reuse) the session; its JVM settings are fixed by whoever starts it first."""
    if settings.spark_remote:
        return remote_session(settings, app_name)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON", "python3"))
    # Locally, the JVM maps the classes archived by `python -m flows.spark.class_cache` when it was built.
    builder = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark_master)
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.driver.extraJavaOptions", local_driver_java_options(settings))
        .config(map=sql_conf(settings))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if settings.spark_master.startswith("k8s://"):
        from flows.spark.kubernetes.spark_conf import spark_conf_for_kubernetes

        for key, value in spark_conf_for_kubernetes(settings).items():
            builder = builder.config(key, value)
    spark = builder.config(map=s3_endpoint_conf(settings)).getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def remote_session(settings: Settings, app_name: str = "vamosjuntos") -> SparkSession:
    """A session on the running Spark Connect server `settings.spark_remote`.

    The server's JVM is already warm (its classes loaded, its hot code compiled by earlier runs), which is
    the whole point: a local run otherwise starts a JVM whose first step spends more CPU in the JIT than in
    the work (docs/spark-performance.md). The server reads the lake's paths itself, so it must see the same
    files (the same machine, for a local lake). Its JVM options are the server's own: `vamosjuntos
    spark-server` gives it the project's.

    The session is released when this process exits, which interrupts what it still runs on the server: a
    run stopped by a signal does not leave its work running there."""
    remote = settings.spark_remote.get_secret_value() if settings.spark_remote else ""
    builder = SparkSession.builder.remote(remote).appName(app_name).config(map=sql_conf(settings))
    if _released:  # checked when this process connected (again after a release); each later step reuses it
        return builder.getOrCreate()
    address = check_remote(settings)
    session = builder.getOrCreate()
    if not _released_at_exit:
        atexit.register(release_remote_sessions)
        _released_at_exit.append(True)
    _released.append((session, address))
    return session


_released: list[tuple[SparkSession, tuple[str, int]]] = []
_released_at_exit: list[bool] = []  # the exit's release registered once


def release_remote_sessions() -> None:
    """Release this process's session on the Spark Connect server now, which interrupts what it still runs
    there (at exit, this is done anyway): before removing a folder that work writes into."""
    while _released:
        _release(*_released.pop())


def _release(session: SparkSession, address: tuple[str, int]) -> None:
    # Releasing the session on the server interrupts what it still runs. Without retries, and only if the
    # server still listens: PySpark's client would retry a server that is gone for ten minutes, holding up
    # the process's exit.
    with contextlib.suppress(Exception):
        session.client.set_retry_policies([])  # type: ignore[attr-defined]
        socket.create_connection(address, timeout=1.0).close()
        session.stop()


def check_remote(settings: Settings) -> tuple[str, int]:
    """(host, port), or ConfigurationError unless the Spark Connect client loads and the server at
    `settings.spark_remote` answers a call with its token. PySpark's client would retry an unreachable
    server for minutes: say so at once. The messages name the host and port only: the URL carries a token."""
    from flows.errors import ConfigurationError

    try:
        import pyspark.sql.connect.session  # noqa: F401  (the gRPC packages: the `connect` extra)
    except ImportError as exc:
        raise ConfigurationError(
            "VAMOSJUNTOS_SPARK_REMOTE is set, but PySpark's Spark Connect client cannot load "
            f"({exc}): install the package's `connect` extra (`pip install "
            "'vamosjuntos-lakehouse[connect]'`; `bash .ci/setup` does)."
        ) from exc
    host, port = connect_address(settings.spark_remote.get_secret_value() if settings.spark_remote else "")
    try:
        socket.create_connection((host, port), timeout=REMOTE_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigurationError(
            f"No Spark Connect server answers at {host}:{port} (VAMOSJUNTOS_SPARK_REMOTE): {exc}. Start one "
            "with `vamosjuntos spark-server`, or unset VAMOSJUNTOS_SPARK_REMOTE to start Spark in this run."
        ) from exc
    _answers(settings.spark_remote.get_secret_value() if settings.spark_remote else "", f"{host}:{port}")
    return host, port


def _answers(remote: str, where: str) -> None:
    """One authenticated call, without retries: a token from an earlier start of the server is refused
    here, before the run ingests anything, not at its first Spark step."""
    from pyspark.sql.connect.client import SparkConnectClient

    from flows.errors import ConfigurationError

    client = SparkConnectClient(remote)
    client.set_retry_policies([])
    try:
        client.get_configs("spark.sql.session.timeZone")
    except Exception as exc:  # its text is not shown: it may quote the URL
        refused = "UNAUTHENTICATED" in str(exc).upper().replace(" ", "_")
        raise ConfigurationError(
            f"The Spark Connect server at {where} refused the token in VAMOSJUNTOS_SPARK_REMOTE: export "
            "the URL `vamosjuntos spark-server` printed when it last started (a new token each start)."
            if refused
            else f"The Spark Connect server at {where} did not answer a first call ({type(exc).__name__}): "
            "is it `vamosjuntos spark-server`, and is the URL the one it printed?"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            client.release_session()
        with contextlib.suppress(Exception):
            client.close()
