"""`vamosjuntos spark-server`, the command: its arguments and what it does before and after serving
(flows/spark/connect_server.py serves). Kept light to import: the CLI builds its parser on every call."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from flows.arguments import rows_argument
from flows.spark.server_warm_up import WARM_UP_ROWS

DEFAULT_PORT = 15002  # Spark Connect's own default


def add_spark_server(sub: Any, common: argparse.ArgumentParser) -> None:
    """The command's parser."""
    srv = sub.add_parser(
        "spark-server",
        parents=[common],
        help="run a Spark Connect server that local runs use instead of starting Spark (Ctrl-C stops it)",
    )
    port_help = f"port on 127.0.0.1 to listen on (default {DEFAULT_PORT})"
    srv.add_argument("--port", type=int, default=DEFAULT_PORT, help=port_help)
    srv.add_argument(
        "--warm-up-rows",
        type=rows_argument,
        default=WARM_UP_ROWS,
        metavar="N",
        help="before it is ready, run the steps on N generated documents so that the first run finds Spark "
        f"warmer (default {WARM_UP_ROWS:,}, 20-30 s here; 0 skips it)",
    )
    srv.set_defaults(func=cmd_spark_server)


def cmd_spark_server(args: argparse.Namespace) -> int:
    from flows.cli import _check_java, _check_spark
    from flows.orphans import start_guarded
    from flows.settings import Settings
    from flows.spark.connect_server import serve

    settings = Settings(spark_remote=None)  # the server is the remote: its own setting does not apply
    _check_spark(settings)
    _check_java()
    start_guarded()  # its JVM and its warm-up's processes end with it, even killed

    # Ctrl-C or SIGTERM is how a server is stopped, not a failure: both raise KeyboardInterrupt here (main
    # leaves this command out of terminated_on_signals), and serve stops the JVM on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return serve(settings, args.port, args.warm_up_rows)
    except KeyboardInterrupt:
        print("Spark Connect server stopped.", file=sys.stderr)
        return 0
