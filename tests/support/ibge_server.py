"""A local stand-in of the IBGE localidades API on a real socket, with injectable faults."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "flows" / "snapshot" / "ibge"


@dataclass
class Fault:
    """One response to serve instead of the real body (consumed in order, per path, by GETs only)."""

    status: int = 200
    body: bytes | None = None  # None: the real fixture body
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    truncate_to: int | None = None  # a complete response whose body is cut (Content-Length agrees)
    cut_after: int | None = None  # announce the whole body, send this many bytes, drop the connection
    hold: threading.Barrier | None = None  # answer once as many requests wait here (or it times out)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    at: float  # time.monotonic() when the request arrived


class IbgeServer:
    def __init__(self, fixtures: Path = FIXTURES) -> None:
        self.fixtures = fixtures
        self.faults: dict[str, deque[Fault]] = {}
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def _serve(self, with_body: bool) -> None:
                path = self.path.split("?", 1)[0].rstrip("/")
                with server._lock:
                    server.requests.append(Recorded(self.command, path, dict(self.headers), time.monotonic()))
                    queue = server.faults.get(path) if self.command == "GET" else None
                    fault = queue.popleft() if queue else Fault()
                if fault.delay_s:
                    time.sleep(fault.delay_s)
                if fault.hold is not None:
                    with contextlib.suppress(threading.BrokenBarrierError):
                        fault.hold.wait()
                body = fault.body
                if body is None:
                    file = server.fixtures / f"{path.rsplit('/', 1)[-1]}.json"
                    if not file.exists():
                        self.send_error(404)
                        return
                    body = file.read_bytes()
                if fault.truncate_to is not None:
                    body = body[: fault.truncate_to]
                self.send_response(fault.status)
                self.send_header("Content-Type", fault.headers.get("Content-Type", "application/json"))
                for k, v in fault.headers.items():
                    if k != "Content-Type":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body and fault.cut_after is not None:
                    self.wfile.write(body[: fault.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if with_body:
                    self.wfile.write(body)

            def do_GET(self) -> None:
                # The client may give up first (e.g. its read timeout during a delay): expected.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._serve(True)

            def do_HEAD(self) -> None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._serve(False)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(  # a short poll: shutdown() returns within 50 ms
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/api/v1/localidades"

    def inject(self, entity: str, *faults: Fault) -> None:
        with self._lock:
            self.faults.setdefault(f"/api/v1/localidades/{entity}", deque()).extend(faults)

    def reset(self) -> None:
        with self._lock:
            self.faults.clear()
            self.requests.clear()

    def pending(self, entity: str) -> int:
        """Faults injected for `entity` that no request has consumed yet."""
        with self._lock:
            return len(self.faults.get(f"/api/v1/localidades/{entity}", ()))

    def gets(self, entity: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == "GET" and r.path.endswith(f"/{entity}")]

    def __enter__(self) -> IbgeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
