"""`vamosjuntos spark-server`: a Spark Connect server that local runs use instead of a cold JVM each.

A local `vamosjuntos run` starts Spark's JVM, and its first step spends more CPU compiling Spark's code
than doing the work (docs/spark-performance.md). A server started once keeps its JVM warm between runs,
as a running Prefect server spares each run Prefect's start (README). It runs Spark in local mode with the
project's JVM options, class archive and SQL settings, so a step computes what it computes in a run's own
JVM; runs reach it with the URL it prints, `VAMOSJUNTOS_SPARK_REMOTE=sc://localhost:port/;token=…`. It
reads the lake's paths itself: the same machine, for a local lake.

It listens on the loopback interface only, and only for clients that give its token (a new one each
start, handed to the JVM through its environment, never its command line): anyone who can reach a Spark
Connect server reads and writes files as its user and calls Java methods through SQL.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

from flows.errors import ConfigurationError
from flows.settings import Settings
from flows.spark.server_command import DEFAULT_PORT
from flows.spark.server_warm_up import WARM_UP_ROUNDS, WARM_UP_ROWS, warm_up
from flows.termination import stop_child

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
HOST = "127.0.0.1"  # loopback only
READY_TIMEOUT_S = 300.0
STOP_WAIT_S = 30.0


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def server_command(settings: Settings, port: int = DEFAULT_PORT) -> list[str]:
    """spark-submit's command line for the server, with what `spark_session` gives a run's own JVM."""
    from flows.spark.session import local_driver_java_options, s3_endpoint_conf, sql_conf

    if not settings.spark_master.startswith("local"):
        raise ConfigurationError(
            f"vamosjuntos spark-server runs Spark in local mode; VAMOSJUNTOS_SPARK_MASTER is "
            f"{settings.spark_master!r}. Unset it (local[*]) to start the server."
        )
    conf = {
        "spark.driver.extraJavaOptions": local_driver_java_options(settings),
        **sql_conf(settings),
        "spark.ui.enabled": "false",
        "spark.log.level": "WARN",  # this command says when the server is ready
        "spark.connect.grpc.binding.address": HOST,
        "spark.connect.grpc.binding.port": str(port),
        **s3_endpoint_conf(settings),
    }
    command = [str(spark_home() / "bin" / "spark-submit"), "--class", SERVER_CLASS]
    command += ["--name", "vamosjuntos Spark Connect server", "--master", settings.spark_master]
    command += ["--driver-memory", settings.spark_driver_memory]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    return [*command, "spark-internal"]  # spark-submit's name for "no application jar": a class of its own


def server_env(token: str) -> dict[str, str]:
    env = dict(os.environ, SPARK_HOME=str(spark_home()), SPARK_CONNECT_AUTHENTICATE_TOKEN=token)
    for name in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED"):  # this JVM is the server, not a client
        env.pop(name, None)
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return env


def wait_until_listening(proc: subprocess.Popen[bytes], host: str, port: int, within_s: float) -> None:
    """Until the server accepts connections; ConfigurationError if it exits or is late."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ConfigurationError(
                f"the Spark Connect server exited (code {proc.returncode}) before listening on "
                f"{host}:{port}; its log is above (is the port taken?)."
            )
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            return
        except OSError:
            time.sleep(0.5)
    raise ConfigurationError(
        f"the Spark Connect server did not listen on {host}:{port} within {within_s:.0f} s"
    )


def serve(settings: Settings, port: int = DEFAULT_PORT, warm_up_rows: int = WARM_UP_ROWS) -> int:
    """Run the server in the foreground until it exits or this process is stopped (Ctrl-C, SIGTERM: they
    raise KeyboardInterrupt here, `vamosjuntos spark-server`), stopping its JVM on every way out. Once it
    listens, it is warmed up on `warm_up_rows` generated documents (0: not), and only then said ready."""
    try:
        socket.create_connection((HOST, port), timeout=1.0).close()
    except OSError:
        pass
    else:
        raise ConfigurationError(f"{HOST}:{port} is already taken (a server running?): choose --port.")
    token = secrets.token_urlsafe(32)
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc = subprocess.Popen(server_command(settings, port), env=server_env(token))
        wait_until_listening(proc, HOST, port, READY_TIMEOUT_S)
        url = f"sc://localhost:{port}/;token={token}"
        if warm_up_rows > 0:
            _warm_up(url, warm_up_rows)
            if proc.poll() is not None:  # it ended meanwhile (out of memory, killed): never said ready
                raise ConfigurationError(
                    f"the Spark Connect server exited (code {proc.returncode}) during its warm-up; its log "
                    "is above."
                )
        print(
            f"Spark Connect server ready on {HOST}:{port}. Runs use it with\n"
            f"  {export_line(url)}\n"
            "Ctrl-C stops it.",
            file=sys.stderr,
            flush=True,
        )
        code = proc.wait()
        return code if code >= 0 else 128 - code  # a JVM ended by a signal: the shell's code for it
    finally:
        if proc is not None:
            stop_child(proc, STOP_WAIT_S)  # whatever arrives meanwhile


WARM_UP_FAILED = "The warm-up failed"


def _warm_up(url: str, rows: int) -> None:
    """The server's warm-up (flows/spark/server_warm_up.py), said as it goes; a failed one is said and
    the server serves anyway, cold."""
    print(
        f"Spark Connect server listening; warming it up: a run's steps, {WARM_UP_ROUNDS} rounds on {rows:,} "
        "generated documents (--warm-up-rows 0 skips this)...",
        file=sys.stderr,
        flush=True,
    )
    try:
        warmed = warm_up(url, rows)
    except Exception as exc:  # WarmUpFailed, or no temporary file or process to be had: the server goes on
        print(
            f"{WARM_UP_FAILED}, so the first runs will pay Spark's warm-up themselves: {exc}",
            file=sys.stderr,
            flush=True,
        )
    else:
        print(f"Warmed up in {warmed.seconds:.0f} s.", file=sys.stderr, flush=True)


REMOTE_VARIABLE = "VAMOSJUNTOS_SPARK_REMOTE"
EXPORT_LINE = re.compile(rf"export {REMOTE_VARIABLE}='([^']+)'")


def export_line(url: str) -> str:
    """The shell line `serve` prints for runs to use the server; `printed_url` reads it back."""
    return f"export {REMOTE_VARIABLE}='{url}'"


def printed_url(output: str) -> str | None:
    """The URL in the export line `serve` prints once the server is ready (None before), for a program
    that starts `vamosjuntos spark-server` and reads what it says: the benchmark harness, the tests."""
    found = EXPORT_LINE.search(output)
    return found.group(1) if found else None
