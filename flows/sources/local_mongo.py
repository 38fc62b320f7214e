"""The embedded MongoDB-protocol server (SecantusDB) for runs with no `VAMOSJUNTOS_MONGO_URI`.

It runs as its own process (a server thread inside ours would compete with extraction for the GIL), keeps
its data under the lake root, and is seeded once with generated PNAD-like documents.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from flows.errors import ConfigurationError, SourceUnavailable
from flows.generator import generate

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

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self, timeout_s: float = 30.0) -> SecantusProcess:
        if self.storage_path != ":memory:":
            Path(self.storage_path).mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--storage-path", self.storage_path, "--log-level", "WARNING", "--standalone"]
        if self.auth:
            cmd.append("--auth")
        if self.test_commands:
            cmd.append("--enable-test-commands")
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SourceUnavailable(f"SecantusDB exited with code {self.proc.returncode} on start: {cmd}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SourceUnavailable(f"SecantusDB did not listen on port {self.port} within {timeout_s} s")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
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

    def __enter__(self) -> SecantusProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
    storage_path: Path, database: str, collection: str, rows: int, seed_value: int
) -> Iterator[str]:
    """Start the embedded server on its data folder, seed it if empty, and yield its URI."""
    with SecantusProcess(storage_path, log_path=storage_path.parent / "secantusd.log") as server:
        inserted = seed(server.uri, database, collection, rows, seed_value)
        if inserted:
            log.info("Seeded %s.%s with %d generated documents", database, collection, inserted)
        yield server.uri
