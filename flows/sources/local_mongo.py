"""The embedded MongoDB-protocol server (SecantusDB) for runs with no `VAMOSJUNTOS_MONGO_URI`.

It runs as its own process (a server thread inside ours would compete with extraction for the GIL), keeps
its data under the lake root, and is seeded once with generated PNAD-like documents.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import psutil
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from flows.errors import ConfigurationError, SourceUnavailable
from flows.generator import generate
from flows.orphans import MARK, owner_mark
from flows.sources.local_mongo_folder import free_data_folder

log = logging.getLogger(__name__)


EMBEDDED_MONGO_MISSING = (
    "VAMOSJUNTOS_MONGO_URI is unset and the embedded MongoDB stand-in (SecantusDB) is not installed: it is "
    "the `local` extra, `pip install 'vamosjuntos-lakehouse[local]'`. Locally, install it or set "
    "VAMOSJUNTOS_MONGO_URI to a real MongoDB. In the cloud, create the `vamosjuntos-mongo` secret with the "
    "MongoDB URI (docs/kubernetes.md, step 2): the flow-run image has no stand-in."
)


def secantus_installed() -> bool:
    """Whether this interpreter can run the stand-in (`python -m secantus`, started from it)."""
    try:
        import secantus  # noqa: F401
    except ImportError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SecantusProcess:
    """A `secantusd-py` daemon on a loopback port; stop() frees the port, start() brings it back."""

    def __init__(
        self,
        storage_path: str | Path,
        port: int | None = None,
        *,
        auth: bool = False,
        test_commands: bool = False,
        log_path: Path | None = None,
    ) -> None:
        if not secantus_installed():
            raise ConfigurationError(EMBEDDED_MONGO_MISSING)
        self.storage_path = str(storage_path)
        self.port = port or free_port()
        self.auth = auth
        self.test_commands = test_commands
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.listening = False  # this start saw its own process listen on the port

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    @property
    def running(self) -> bool:
        """Its process was started and has not ended."""
        return self.proc is not None and self.proc.poll() is None

    # SecantusDB opens its data folder before it listens, in a time that grows with it: 13 s for
    # 2,000,000 documents from the page cache, over 30 s from disk (a benchmark run failed so, after its
    # 1,000,000-document runs had evicted it). A server that exits on start is seen at once: this only
    # bounds a start that hangs.
    START_TIMEOUT_S = 180.0
    STOP_TIMEOUT_S = 15.0  # then SIGKILL
    STOP_POLL_S = 0.05  # between connections to its port while it stops (`_wait_stopped`)

    def start(self, timeout_s: float = START_TIMEOUT_S) -> SecantusProcess:
        self.listening = False
        if self.storage_path != ":memory:":
            Path(self.storage_path).mkdir(parents=True, exist_ok=True)
            free_data_folder(Path(self.storage_path))
        cmd = [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--storage-path", self.storage_path, "--log-level", "WARNING", "--standalone"]
        if self.auth:
            cmd.append("--auth")
        if self.test_commands:
            cmd.append("--enable-test-commands")
        # Its output goes to its log (or a nameless file): what it said when it failed is read back from
        # where this start began.
        out: IO[bytes] = open(self.log_path, "a+b") if self.log_path else tempfile.TemporaryFile()  # noqa: SIM115
        began = out.seek(0, os.SEEK_END)
        # The owner's mark lets the next start tell an orphan (its owner gone) from a server in use.
        env = {**os.environ, MARK: owner_mark()}
        with out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    out.seek(began)
                    said = last_relevant_line(out.read().decode("utf-8", "replace"))
                    where = f"; its log: {self.log_path}" if self.log_path else ""
                    raise SourceUnavailable(
                        f"SecantusDB exited with code {self.proc.returncode} on start, on "
                        f"{self.storage_path} port {self.port}: {said}{where}"
                    )
                if self._listens():
                    self.listening = True
                    return self
                time.sleep(0.1)
        self.stop()
        raise SourceUnavailable(f"SecantusDB did not listen on port {self.port} within {timeout_s:.0f} s")

    def _listens(self) -> bool:
        """Its own process listens on the port: a connection alone could reach another process that took
        the port between free_port() and this start (SecantusDB then exits, unable to bind)."""
        assert self.proc is not None
        try:
            sockets = psutil.Process(self.proc.pid).net_connections(kind="tcp")
        except psutil.Error:
            return False
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == self.port for c in sockets)

    def stop(self, kill: bool = False) -> None:
        if not self.running:
            return
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            # Woken only if it listened: else the port may be another process's (`_listens`).
            self._wait_stopped(self.STOP_TIMEOUT_S, wake=self.listening and not kill)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        # The port lingers a moment after exit; wait until it is free again so a restart can bind it.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    time.sleep(0.1)
            except OSError:
                return

    def resident_mb(self) -> float | None:
        """Its process's resident memory now, in MB; None when it is not running."""
        if not self.running:
            return None
        assert self.proc is not None
        try:
            return psutil.Process(self.proc.pid).memory_info().rss / 2**20
        except psutil.Error:
            return None

    def _wait_stopped(self, timeout_s: float, wake: bool) -> None:
        """Wait for the process to end, connecting to its port meanwhile if `wake`.

        On SIGTERM SecantusDB closes its listening socket, then waits up to 2 s for its accept thread to
        end. On Linux closing a socket does not wake a thread blocked in accept() on it, so every stop took
        those 2 s; a connection does wake it, and the thread, seeing the server stopping, ends. The rest of
        its shutdown (connections drained, storage closed) is unchanged."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.proc.wait(timeout=self.STOP_POLL_S)
                return
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    raise
            if wake:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                    pass

    def __enter__(self) -> SecantusProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def last_relevant_line(output: str) -> str:
    """What a failed start said last (a Python exception's line), with WiredTiger's last error, which says
    why when the storage engine refused (a locked or damaged data folder)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if not lines:
        return "it printed nothing"
    said = lines[-1][:300]
    errors = [line for line in lines if "[ERROR]" in line]
    if errors:  # "[time][pid:thread], wiredtiger_open: [WT_VERB_DEFAULT][ERROR]: __conn_single, 1853: why"
        why = re.sub(r"^.*\[ERROR\]: (?:\w+, \d+: )?", "", errors[-1])
        said += f" (WiredTiger: {why[:300]})"
    return said


def seed(uri: str, database: str, collection: str, rows: int, seed_value: int) -> int:
    """Fill an empty collection with `rows` generated documents; an already seeded one is left alone."""
    client: MongoClient[Any] = MongoClient(uri, serverSelectionTimeoutMS=10_000)
    try:
        coll = client[database][collection]
        existing = coll.estimated_document_count()
        if existing:
            log.info("%s.%s already holds %d documents: not seeding", database, collection, existing)
            return 0
        inserted = 0
        for chunk in generate(rows, seed_value):
            coll.insert_many(chunk, ordered=False)
            inserted += len(chunk)
        return inserted
    except PyMongoError as exc:
        raise SourceUnavailable(f"Seeding the embedded MongoDB at {uri} failed: {exc}") from exc
    finally:
        client.close()


@contextmanager
def embedded_mongo(
    storage_path: Path,
    database: str,
    collection: str,
    rows: int,
    seed_value: int,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
) -> Iterator[SecantusProcess]:
    """Start the embedded server on its data folder, seed it if empty, and yield it (its `uri`); it stops
    on leaving, or sooner with `stop_after_stream`. A collection that holds another number of documents
    than `rows` is kept, and `logger` says so (a run's `--rows` would otherwise be ignored silently)."""
    logger = logger or log
    with SecantusProcess(storage_path, log_path=storage_path.parent / "secantusd.log") as server:
        inserted = seed(server.uri, database, collection, rows, seed_value)
        if inserted:
            logger.info(
                "Seeded the embedded MongoDB (%s) with %s generated documents", storage_path, f"{inserted:,}"
            )
        elif (held := _held(server.uri, database, collection)) != rows:
            logger.warning(
                "The embedded MongoDB (%s) already holds %s documents, so it was not seeded with %s: it "
                "seeds an empty collection only. For a run on %s generated documents, use another lake "
                "folder (VAMOSJUNTOS_LAKE_ROOT).",
                storage_path,
                f"{held:,}",
                f"{rows:,}",
                f"{rows:,}",
            )
        yield server


def _held(uri: str, database: str, collection: str) -> int:
    with MongoClient(uri, serverSelectionTimeoutMS=10_000) as client:
        return client[database][collection].estimated_document_count()


def stop_after_stream(server: SecantusProcess, logger: logging.Logger | logging.LoggerAdapter[Any]) -> None:
    """Stop the embedded server once the run has streamed its documents, and log what that freed.

    Nothing after the stream reads MongoDB, and SecantusDB still holds memory after it (its peak, while it
    builds the stream's answer, is earlier): 170 and 210 MB in two runs at 368,210 documents, 269 and 630 MB
    after a full drain of 368,210 and 2,000,000 (docs/operations.md), which the Spark steps can use instead.
    Its data stays in its folder for the next run. A stop that fails only keeps that memory: a warning, not
    the run's failure (its data is committed), and leaving `embedded_mongo` stops it again."""
    if not server.running:
        logger.info("The embedded MongoDB had already stopped before the Spark steps.")
        return
    held = server.resident_mb()
    try:
        server.stop()
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning(
            "The embedded MongoDB did not stop after the stream (%s): it stops at the run's end.", exc
        )
        return
    freed = f"the {held:,.0f} MB it held are free" if held is not None else "its memory is free"
    logger.info("The embedded MongoDB stopped after the stream: %s for the Spark steps.", freed)
