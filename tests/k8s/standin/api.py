"""The HTTP side: routing, CRUD, watch and log streams, discovery, and the record of every call."""

from __future__ import annotations

import contextlib
import json
import re
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

from tests.k8s.standin.identity import peer_pod
from tests.k8s.standin.objects import (
    RESOURCES,
    SUBRESOURCES,
    VERBS,
    ApiError,
    Call,
    api_version,
    json_patch,
    merge_patch,
    parse_time,
    service_account_user,
)

if TYPE_CHECKING:
    from tests.k8s.kubelet_standin import Cluster

# ------------------------------------------------------------------------------------------------
# HTTP
# ------------------------------------------------------------------------------------------------
_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[a-z0-9.]+)/v1)"
    r"(?:/namespaces/(?P<ns>[a-z0-9-]+))?"
    r"(?:/(?P<res>[a-z]+)(?:/(?P<name>[a-z0-9.-]+)(?:/(?P<sub>[a-z]+))?)?)?$"
)


class Handler(BaseHTTPRequestHandler):
    cluster: Cluster
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet: the record says what happened
        pass

    # identity of this connection, resolved once
    _identity: tuple[str, str | None] | None = None

    def identity(self) -> tuple[str, str | None]:
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            user = self.cluster.tokens.get(header[7:].strip())
            if user is not None and not user.endswith("(IRSA)"):
                pod = self._pod_of_connection()
                return user, pod[1] if pod else None
        if self._identity is None:
            pod = self._pod_of_connection()
            self._identity = (pod[0], pod[1]) if pod else ("anonymous", None)
        return self._identity

    def _pod_of_connection(self) -> tuple[str, str] | None:
        c = self.cluster
        name = peer_pod(self.client_address[1], c.port)
        if name is None:
            return None
        ns = next((p.key[0] for p in list(c.processes.values()) if p.key[1] == name), "default")
        pod = c.get(("", "pods"), ns, name)
        sa = (pod or {}).get("spec", {}).get("serviceAccountName", "default")
        return service_account_user(ns, sa), name

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # --- responses ------------------------------------------------------------------------------
    def _send(self, code: int, body: Any, close: bool = False) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        with contextlib.suppress(OSError):
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    def _body(self) -> Any:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raw = self._read_chunked()  # vert.x (fabric8) sends DELETE options this way
        else:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        if "yaml" in (self.headers.get("Content-Type") or ""):
            import yaml

            return yaml.safe_load(raw)
        return json.loads(raw)

    def _read_chunked(self) -> bytes:
        data = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return data
            data += self.rfile.read(size)
            self.rfile.readline()

    # --- routing --------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        body = self._body() if method in ("POST", "PUT", "PATCH", "DELETE") else None
        if url.path in ("/version", "/api", "/apis", "/api/v1", "/apis/batch/v1") or url.path.startswith(
            "/openapi"
        ):
            self._discovery(url.path)
            return
        match = _PATH.match(url.path)
        if not match or not match.group("res"):
            self._send(404, ApiError(404, "NotFound", f"the server could not find {url.path}").status())
            return
        group = match.group("group") or ""
        ns, resource, name, sub = (
            match.group("ns"),
            match.group("res"),
            match.group("name"),
            match.group("sub"),
        )
        if resource == "namespaces" and ns and not name and group == "":
            resource, name, ns = "namespaces", ns, None  # /api/v1/namespaces/<name>
        res = (group, resource)
        watch = query.get("watch") in ("true", "1")
        verb = {
            "GET": "watch" if watch else ("get" if name else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }[method]
        identity, pod = self.identity()
        status = 200
        try:
            if res not in RESOURCES or (sub and sub not in SUBRESOURCES.get(res, ())):
                raise ApiError(
                    404, "NotFound", f"the server could not find the requested resource {url.path}"
                )
            if watch and self.headers.get("Upgrade", "").lower() == "websocket":
                # No WebSockets here, like `kubectl proxy`: a complete 503 makes fabric8 fall back to a
                # plain HTTP watch (a streamed answer would leave its handshake waiting for the end).
                self._record(identity, pod, verb, res, sub, ns, name, 503)
                self._send(
                    503,
                    ApiError(503, "ServiceUnavailable", "websocket watches are not served").status(),
                    close=True,  # a refused upgrade's connection is not reused by the client's pool
                )
                return
            if watch:
                self._record(identity, pod, verb, res, sub, ns, name, 200)
                self._watch(res, ns, name, query)
                return
            if sub == "log":
                self._record(identity, pod, verb, res, sub, ns, name, 200)
                self._log(ns or "", name or "", query)
                return
            status, result = self._handle(method, res, ns, name, sub, query, body)
            self._record(identity, pod, verb, res, sub, ns, name, status)
            self._record_owner_checks(identity, pod, ns, body if method != "DELETE" else None)
            self._send(status, result)
        except ApiError as exc:
            self._record(identity, pod, verb, res, sub, ns, name, exc.code)
            self._send(exc.code, exc.status())
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _record(self, identity, pod, verb, res, sub, ns, name, status) -> None:
        resource = f"{res[1]}/{sub}" if sub else res[1]
        with self.cluster.lock:
            self.cluster.record.append(Call(identity, pod, verb, res[0], resource, ns, name, status))

    def _record_owner_checks(self, identity: str, pod: str | None, ns: str | None, body: Any) -> None:
        """The OwnerReferencesPermissionEnforcement admission plugin: an owner reference that blocks the
        owner's deletion needs `update` on the owner's finalizers subresource; recorded as a call."""
        refs = (
            ((body or {}).get("metadata") or {}).get("ownerReferences") or []
            if isinstance(body, dict)
            else []
        )
        for ref in refs:
            if ref.get("blockOwnerDeletion"):
                group = ref.get("apiVersion", "v1").rpartition("/")[0]
                plural = next(
                    (r for (g, r), (k, _) in RESOURCES.items() if g == group and k == ref.get("kind")), ""
                )
                self._record(identity, pod, "update", (group, plural), "finalizers", ns, ref.get("name"), 200)

    def _handle(self, method, res, ns, name, sub, query, body) -> tuple[int, Any]:
        c = self.cluster
        kind = RESOURCES[res][0]
        if method == "GET" and name:
            obj = c.get(res, ns, name)
            if obj is None:
                raise ApiError(404, "NotFound", f'{res[1]} "{name}" not found')
            return 200, obj
        if method == "GET":
            items = c.list(res, ns, query.get("labelSelector"), query.get("fieldSelector"))
            return 200, {
                "kind": f"{kind}List",
                "apiVersion": api_version(res[0]),
                "metadata": {"resourceVersion": str(c.rv)},
                "items": items,
            }
        if method == "POST":
            return 201, c.create(res, ns, body)
        if method in ("PUT", "PATCH"):
            current = c.get(res, ns, name or "")
            if current is None:
                raise ApiError(404, "NotFound", f'{res[1]} "{name}" not found')
            if method == "PUT":
                new = body
            elif "json-patch" in (self.headers.get("Content-Type") or ""):
                new = json_patch(current, body)
            else:
                new = merge_patch(current, body)
            new.setdefault("metadata", {}).update(name=name, namespace=current["metadata"].get("namespace"))
            return 200, c.replace(res, new, status_only=sub == "status")
        # DELETE
        options = body or {}
        propagation = query.get("propagationPolicy") or options.get("propagationPolicy")
        grace = query.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
        grace_s = int(grace) if grace is not None else None
        if name:
            return 200, c.delete(res, ns, name, propagation, grace_s)
        deleted = []
        for obj in c.list(res, ns, query.get("labelSelector"), query.get("fieldSelector")):
            with contextlib.suppress(ApiError):
                deleted.append(
                    c.delete(
                        res, obj["metadata"].get("namespace"), obj["metadata"]["name"], propagation, grace_s
                    )
                )
        return 200, {
            "kind": f"{kind}List",
            "apiVersion": api_version(res[0]),
            "metadata": {},
            "items": deleted,
        }

    def _watch(self, res, ns, name, query) -> None:
        fields = query.get("fieldSelector")
        if name:
            fields = ",".join(filter(None, [fields, f"metadata.name={name}"]))
        since = query.get("resourceVersion")
        since_rv = int(since) if since not in (None, "", "0") else None
        timeout = float(query.get("timeoutSeconds") or 3600)
        self._start_stream("application/json")
        until = time.monotonic() + timeout
        try:
            for event in self.cluster.watch(res, ns, query.get("labelSelector"), fields, since_rv, until):
                if not event:
                    continue  # no heartbeat on the wire: clients parse every line as an event
                self._chunk(json.dumps(event).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError, OSError):
            return
        self._end_stream()

    def _log(self, ns: str, name: str, query: dict[str, str]) -> None:
        since = query.get("sinceTime")
        tail = query.get("tailLines")
        lines = self.cluster.pod_log(
            ns,
            name,
            follow=query.get("follow") in ("true", "1"),
            tail=int(tail) if tail else None,
            since=parse_time(since) if since else None,
        )
        if lines is None:
            self._send(404, ApiError(404, "NotFound", f'pods "{name}" not found').status())
            return
        stamps = query.get("timestamps") in ("true", "1")
        self._start_stream("text/plain")
        try:
            for stamp, line in lines:
                if not stamp:
                    continue
                self._chunk(f"{stamp} {line}\n".encode() if stamps else f"{line}\n".encode())
        except (BrokenPipeError, ConnectionResetError, OSError):
            return
        self._end_stream()

    def _discovery(self, path: str) -> None:
        if path == "/version":
            self._send(
                200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0-standin", "platform": "linux/amd64"}
            )
        elif path == "/api":
            self._send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
        elif path == "/apis":
            self._send(
                200,
                {
                    "kind": "APIGroupList",
                    "apiVersion": "v1",
                    "groups": [
                        {
                            "name": "batch",
                            "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
                            "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"},
                        }
                    ],
                },
            )
        elif path in ("/api/v1", "/apis/batch/v1"):
            group = "" if path == "/api/v1" else "batch"
            resources = []
            for (g, name), (kind, namespaced) in RESOURCES.items():
                if g != group:
                    continue
                resources.append(
                    {
                        "name": name,
                        "singularName": kind.lower(),
                        "namespaced": namespaced,
                        "kind": kind,
                        "verbs": VERBS,
                    }
                )
                for sub in SUBRESOURCES.get((g, name), ()):
                    resources.append(
                        {
                            "name": f"{name}/{sub}",
                            "singularName": "",
                            "namespaced": True,
                            "kind": kind,
                            "verbs": ["get", "patch", "update"],
                        }
                    )
            self._send(
                200, {"kind": "APIResourceList", "groupVersion": api_version(group), "resources": resources}
            )
        else:
            self._send(404, ApiError(404, "NotFound", path).status())
