"""The MongoDB-protocol server SecantusDB as a process of ours: the embedded MongoDB of runs with no
`VAMOSJUNTOS_MONGO_URI` (flows/sources/embedded_mongo.py), and the tests' and benchmarks' server.

It runs as its own process (a server thread inside ours would compete with extraction for the GIL).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import psutil

from flows.errors import ConfigurationError, SourceUnavailable
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
    """Whether this interpreter can run the stand-in (SecantusDB's daemon, started from it).

    Found, not imported: the daemon imports it in its own process, and importing it here (~0.3 s of CPU)
    was on the command's path while Prefect's server and the daemon start beside it. A copy that is
    installed but fails to import makes the daemon exit on start, with its error in the message."""
    try:
        return importlib.util.find_spec("secantus") is not None
    except (ImportError, ValueError):
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SecantusProcess:
    """SecantusDB's daemon (flows/sources/secantus_daemon.py) on a loopback port; stop() frees the port,
    start() brings it back."""

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
        self._output: tuple[IO[bytes], int] | None = None  # where a launch's output goes, from where

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    @property
    def running(self) -> bool:
        """Its process was started and has not ended."""
        return self.proc is not None and self.proc.poll() is None

    # SecantusDB opens its data folder before it listens: SecantusDB's own daemon in a time that grows with
    # it (13 s for 2,000,000 documents from the page cache, 58 s from disk), ours in about half a second
    # (flows/sources/secantus_daemon.py). A server that exits on start is seen at once: this only bounds a
    # start that hangs, as SecantusDB's own would on a large folder.
    START_TIMEOUT_S = 180.0
    STOP_TIMEOUT_S = 15.0  # then SIGKILL
    STOP_POLL_S = 0.05  # between connections to its port while it stops (`_wait_stopped`)

    def start(self, timeout_s: float = START_TIMEOUT_S) -> SecantusProcess:
        """Launch the server (unless `launch` did: then its outcome, a failure included, is this start's)
        and wait until it listens. Interrupted meanwhile (a signal, Ctrl-C), it stops the server first: a
        `with` block's exit does not run for a start that did not return, and the server, in a session of
        its own, would go on writing into its folder while the caller removed it."""
        try:
            if self._output is None and not self.running:  # not launched, or stopped since
                self.launch()
            return self.wait_listening(timeout_s)
        except BaseException:
            with contextlib.suppress(Exception):  # the interruption is what the caller must see
                self.stop()
            raise

    def launch(self) -> SecantusProcess:
        """Start its process, without waiting for it to listen (`wait_listening`)."""
        self.listening = False
        if self.storage_path != ":memory:":
            Path(self.storage_path).mkdir(parents=True, exist_ok=True)
            free_data_folder(Path(self.storage_path))
        # SecantusDB's daemon with a faster start (flows/sources/secantus_daemon.py says why).
        cmd = [sys.executable, "-m", "flows.sources.secantus_daemon", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port)]
        cmd += ["--storage-path", self.storage_path, "--log-level", "WARNING", "--standalone"]
        if self.auth:
            cmd.append("--auth")
        if self.test_commands:
            cmd.append("--enable-test-commands")
        # Its output goes to its log (or a nameless file): what it said when it failed is read back from
        # where this launch began.
        self._close_output()
        out: IO[bytes] = open(self.log_path, "a+b") if self.log_path else tempfile.TemporaryFile()  # noqa: SIM115
        self._output = (out, out.seek(0, os.SEEK_END))
        # The owner's mark lets the next start tell an orphan (its owner gone) from a server in use.
        env = {**os.environ, MARK: owner_mark()}
        try:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        except BaseException:
            self._close_output()
            raise
        return self

    def wait_listening(self, timeout_s: float = START_TIMEOUT_S) -> SecantusProcess:
        """Wait until the launched process listens on its port; its exit on start is an error at once."""
        if self.listening and self.running:
            return self
        assert self.proc is not None and self._output is not None, "launch() first"
        out, began = self._output
        try:
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
        finally:
            self._close_output()
        self.stop()
        raise SourceUnavailable(f"SecantusDB did not listen on port {self.port} within {timeout_s:.0f} s")

    def _close_output(self) -> None:
        if self._output is not None:
            self._output[0].close()
            self._output = None

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
        self._close_output()  # of a launch never waited for
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
