"""A stand-in for the few Kubernetes API endpoints the Spark runner (and the Prefect worker) call.

A real threaded HTTP server on 127.0.0.1: it records every request, stores the Jobs it is sent, and moves
each Job's pod through a scripted life (pending -> running -> succeeded/failed/evicted, or stuck pulling
its image). A Job's clock is the number of times its status has been read (`GET .../jobs/<name>`), so
the tests are deterministic and independent of wall-clock time.

It plays the garbage collector for owner references: deleting a pod (e.g. a flow-run pod added with
`add_pod`) deletes the Jobs whose owners are then all gone, and those Jobs' pods.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

JOBS_PATH = "/apis/batch/v1/namespaces/{ns}/jobs"
SPARK_DRIVER_OBJECTS = ("configmaps", "services", "persistentvolumeclaims")
LIST_META = {"metadata": {"resourceVersion": "1"}}  # fabric8's informers read it from every list


@dataclass
class Scenario:
    """What happens to a Job's pod. Ticks are reads of the Job's status."""

    kind: str = "success"  # success | failure | evicted | image_pull | oom
    pending_ticks: int = 1
    running_ticks: int = 2
    log_lines: list[str] = field(default_factory=lambda: ["starting step", "wrote 3 tables", "done"])
    exit_code: int = 1
    # Close the first follow stream after this many lines while the pod still runs (API-server timeout).
    drop_log_stream_after: int | None = None


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]


def _stamp(i: int) -> str:
    # RFC3339Nano as the kubelet writes it: trailing zeros of the fraction trimmed (variable width)
    fraction = f"{(i % 7) * 125_000_000:09d}".rstrip("0")
    return f"2026-11-25T10:{i // 60:02d}:{i % 60:02d}{'.' + fraction if fraction else ''}Z"


def _parse_selector(selector: str) -> list[tuple[str, str | None, bool]]:
    terms = []
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if term.startswith("!"):
            terms.append((term[1:], None, False))
        elif "=" in term:
            key, value = term.split("=", 1)
            terms.append((key.rstrip("="), value, True))
        else:
            terms.append((term, None, True))
    return terms


def _matches(labels: dict[str, str], selector: str) -> bool:
    for key, value, positive in _parse_selector(selector):
        if not positive:
            if key in labels:
                return False
        elif value is None:
            if key not in labels:
                return False
        elif labels.get(key) != value:
            return False
    return True


class KubeStandIn:
    def __init__(self, namespace: str = "vamosjuntos") -> None:
        self.namespace = namespace
        self.requests: list[Recorded] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, list[str]] = {}
        self.scenarios: dict[str, Scenario] = {}
        self.ticks: dict[str, int] = {}
        self.next_scenario = Scenario()
        self.fail_with: int | None = None  # set: every request answers this status (an API outage)
        self.lock = threading.RLock()
        self._counter = itertools.count(1)
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection; streamed logs end at close

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    return json.loads(raw) if raw else None
                except ValueError:
                    return raw.decode()

            def _handle(self, method: str) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                body = self._body()
                with standin.lock:
                    standin.requests.append(Recorded(method, url.path, query, body, dict(self.headers)))
                standin.dispatch(self, method, url.path, query, body)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PATCH(self):
                self._handle("PATCH")

            def do_DELETE(self):
                self._handle("DELETE")

            def send_json(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- lifecycle ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> KubeStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- inspection -----------------------------------------------------------------------------
    def calls(self, method: str, path_part: str = "") -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == method and path_part in r.path]

    @property
    def job_posts(self) -> list[Recorded]:
        return self.calls("POST", "/jobs")

    # --- state machine --------------------------------------------------------------------------
    def add_pod(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        """A pod that is not a Job's (e.g. the flow-run pod), to own Jobs; it stays Running."""
        with self.lock:
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": self.namespace,
                    "uid": str(uuid.uuid4()),
                    "labels": dict(labels or {}),
                    "creationTimestamp": "2026-11-25T09:59:00Z",
                },
                "spec": {"containers": [{"name": "prefect-job", "image": "flow-run:test"}]},
                "status": {"phase": "Running"},
            }
            self.pods[name] = pod
            self.logs[name] = []
            return pod

    def delete_job(self, name: str) -> dict[str, Any]:
        """Delete a Job and its pods (propagation Background or Foreground: the end state is the same)."""
        with self.lock:
            job = self.jobs.pop(name)
            for pod_name in [
                p
                for p, pod in self.pods.items()
                if pod["metadata"]["labels"].get("batch.kubernetes.io/job-name") == name
            ]:
                self.pods.pop(pod_name)
            return job

    def delete_pod(self, name: str) -> dict[str, Any]:
        with self.lock:
            pod = self.pods.pop(name)
            self._collect_garbage()
            return pod

    def _collect_garbage(self) -> None:
        """Delete every Job whose owner references all point at objects that no longer exist."""
        with self.lock:
            alive = {o["metadata"].get("uid") for o in [*self.pods.values(), *self.jobs.values()]}
            for name, job in list(self.jobs.items()):
                owners = job["metadata"].get("ownerReferences") or []
                if owners and not any(ref.get("uid") in alive for ref in owners):
                    self.delete_job(name)

    def add_job(self, manifest: dict[str, Any], scenario: Scenario | None = None) -> dict[str, Any]:
        """Store a Job (as the API server would on POST) and give it a pod with a scripted life."""
        with self.lock:
            job = json.loads(json.dumps(manifest))
            meta = job.setdefault("metadata", {})
            n = next(self._counter)
            if not meta.get("name"):
                meta["name"] = f"{meta.get('generateName', 'job-')}{n:05d}"
            name = meta["name"]
            meta.update(
                namespace=self.namespace,
                uid=str(uuid.uuid4()),
                creationTimestamp=f"2026-11-25T10:{n:02d}:00Z",
                resourceVersion=str(n),
            )
            job["status"] = {"active": 1}
            self.jobs[name] = job
            self.scenarios[name] = scenario or self.next_scenario
            self.ticks[name] = 0
            pod_name = f"{name}-pod{n}"
            pod_labels = dict(job["spec"]["template"].get("metadata", {}).get("labels") or {})
            pod_labels.update({"batch.kubernetes.io/job-name": name, "job-name": name})
            self.pods[pod_name] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "namespace": self.namespace,
                    "labels": pod_labels,
                    "creationTimestamp": meta["creationTimestamp"],
                },
                "spec": job["spec"]["template"]["spec"],
                "status": {"phase": "Pending"},
            }
            self.logs[pod_name] = []
            self._advance(name)
            return job

    def pod_of(self, job_name: str) -> dict[str, Any] | None:
        for pod in self.pods.values():
            if pod["metadata"]["labels"].get("batch.kubernetes.io/job-name") == job_name:
                return pod
        return None

    def _advance(self, name: str) -> None:
        """Put Job `name` and its pod in the state of its current tick."""
        job, scenario, tick = self.jobs[name], self.scenarios[name], self.ticks[name]
        pod = self.pod_of(name)
        if pod is None:
            return
        container = pod["spec"]["containers"][0]["name"]
        status = pod["status"]
        if scenario.kind == "image_pull":
            status.update(
                phase="Pending",
                containerStatuses=[
                    {
                        "name": container,
                        "ready": False,
                        "state": {
                            "waiting": {
                                "reason": "ImagePullBackOff" if tick else "ErrImagePull",
                                "message": f'Back-off pulling image "{container_image(pod)}"',
                            }
                        },
                    }
                ],
            )
            return
        if tick < scenario.pending_ticks:
            status.update(
                phase="Pending",
                containerStatuses=[
                    {"name": container, "ready": False, "state": {"waiting": {"reason": "ContainerCreating"}}}
                ],
            )
            return
        shown = min(len(scenario.log_lines), 1 + (tick - scenario.pending_ticks) * 2)
        self.logs[pod["metadata"]["name"]] = [
            f"{_stamp(i)} {line}" for i, line in enumerate(scenario.log_lines[:shown])
        ]
        if tick < scenario.pending_ticks + scenario.running_ticks:
            status.update(
                phase="Running",
                podIP="10.0.0.7",
                containerStatuses=[
                    {"name": container, "ready": True, "state": {"running": {"startedAt": _stamp(0)}}}
                ],
            )
            return
        # finished: every log line is out
        self.logs[pod["metadata"]["name"]] = [
            f"{_stamp(i)} {line}" for i, line in enumerate(scenario.log_lines)
        ]
        if scenario.kind == "success":
            status.update(
                phase="Succeeded",
                containerStatuses=[
                    {
                        "name": container,
                        "ready": False,
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                    }
                ],
            )
            job["status"] = {
                "succeeded": 1,
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True"},
                    {"type": "Complete", "status": "True"},
                ],
            }
            return
        if scenario.kind == "evicted":
            status.clear()
            status.update(
                phase="Failed",
                reason="Evicted",
                message="The node was low on resource: memory. Threshold quantity: 100Mi, available: 0.",
                containerStatuses=[
                    {
                        "name": container,
                        "ready": False,
                        "state": {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown"}},
                    }
                ],
            )
        else:  # failure / oom
            reason = "OOMKilled" if scenario.kind == "oom" else "Error"
            status.update(
                phase="Failed",
                containerStatuses=[
                    {
                        "name": container,
                        "ready": False,
                        "state": {"terminated": {"exitCode": scenario.exit_code, "reason": reason}},
                    }
                ],
            )
        job["status"] = {
            "failed": 1,
            "conditions": [
                {
                    "type": "FailureTarget",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                },
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                },
            ],
        }

    def _pod_done(self, pod_name: str) -> bool:
        with self.lock:
            pod = self.pods.get(pod_name)
            return pod is None or pod["status"].get("phase") in ("Succeeded", "Failed")

    # --- HTTP dispatch --------------------------------------------------------------------------
    def dispatch(self, h, method: str, path: str, query: dict[str, list[str]], body: Any) -> None:
        ns = self.namespace
        jobs = JOBS_PATH.format(ns=ns)
        pods = f"/api/v1/namespaces/{ns}/pods"
        selector = (query.get("labelSelector") or [""])[0]
        with self.lock:
            if self.fail_with is not None:
                return h.send_json(self.fail_with, {"kind": "Status", "code": self.fail_with})
            if path == jobs and method == "GET":
                items = [j for j in self.jobs.values() if _matches(j["metadata"].get("labels", {}), selector)]
                return h.send_json(
                    200, {"kind": "JobList", "apiVersion": "batch/v1", **LIST_META, "items": items}
                )
            if path == jobs and method == "POST":
                return h.send_json(201, self.add_job(body))
            if path.startswith(jobs + "/"):
                name = path[len(jobs) + 1 :]
                if name not in self.jobs:
                    return h.send_json(404, {"kind": "Status", "reason": "NotFound", "code": 404})
                if method == "GET":
                    self.ticks[name] += 1
                    self._advance(name)
                    return h.send_json(200, self.jobs[name])
                if method == "PATCH":
                    labels = ((body or {}).get("metadata") or {}).get("labels") or {}
                    self.jobs[name]["metadata"].setdefault("labels", {}).update(labels)
                    return h.send_json(200, self.jobs[name])
                if method == "DELETE":
                    return h.send_json(200, self.delete_job(name))
            if path.startswith(pods + "/") and "/" not in path[len(pods) + 1 :] and method == "DELETE":
                if path[len(pods) + 1 :] not in self.pods:
                    return h.send_json(404, {"kind": "Status", "reason": "NotFound", "code": 404})
                return h.send_json(200, self.delete_pod(path[len(pods) + 1 :]))
            if path.startswith(pods + "/") and "/" not in path[len(pods) + 1 :] and method == "GET":
                pod = self.pods.get(path[len(pods) + 1 :])
                if pod is None:
                    return h.send_json(404, {"kind": "Status", "reason": "NotFound", "code": 404})
                return h.send_json(200, pod)
            if path == pods and method == "GET":
                items = [p for p in self.pods.values() if _matches(p["metadata"].get("labels", {}), selector)]
                return h.send_json(200, {"kind": "PodList", "apiVersion": "v1", **LIST_META, "items": items})
            if path.startswith(pods + "/") and path.endswith("/log") and method == "GET":
                pod_name = path[len(pods) + 1 : -len("/log")]
                if pod_name not in self.pods:
                    return h.send_json(404, {"kind": "Status", "reason": "NotFound", "code": 404})
                follow = (query.get("follow") or ["false"])[0] == "true"
            elif path.startswith("/api/v1/namespaces/") and "/secrets" in path and method == "POST":
                return h.send_json(201, body)
            elif path in (f"/api/v1/namespaces/{ns}/{kind}" for kind in SPARK_DRIVER_OBJECTS):
                # What a Spark driver creates before its executors, and deletes by label when it stops:
                # accepted, not kept (this stand-in plays no kubelet).
                if method == "POST":
                    return h.send_json(201, body)
                if method == "DELETE":
                    return h.send_json(200, {"kind": "Status", "status": "Success"})
                return h.send_json(200, {"kind": "List", "apiVersion": "v1", **LIST_META, "items": []})
            else:
                return h.send_json(404, {"kind": "Status", "reason": "NotFound", "code": 404})
        # logs: outside the lock, as a follow stream may last
        self._serve_log(h, pod_name, query, follow)

    def _log_lines(self, pod_name: str, query: dict[str, list[str]]) -> list[str]:
        """All lines from sinceTime on (tailLines is applied once, at the start of a stream)."""
        with self.lock:
            lines = list(self.logs.get(pod_name, []))
        if since := (query.get("sinceTime") or [None])[0]:
            # sinceTime has second precision: every line of that second comes again
            lines = [line for line in lines if line[:19] >= since[:19]]
        return lines

    @staticmethod
    def _render(line: str, query: dict[str, list[str]]) -> bytes:
        if (query.get("timestamps") or ["false"])[0] != "true":
            line = line.split(" ", 1)[1]
        return line.encode() + b"\n"

    def _serve_log(self, h, pod_name: str, query: dict[str, list[str]], follow: bool) -> None:
        # the client may go away mid-stream (e.g. a killed runner)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._write_log(h, pod_name, query, follow)

    def _write_log(self, h, pod_name: str, query: dict[str, list[str]], follow: bool) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/plain")
        h.end_headers()
        lines = self._log_lines(pod_name, query)
        tail = (query.get("tailLines") or [None])[0]
        sent = max(0, len(lines) - int(tail)) if tail else 0
        deadline = time.monotonic() + 30
        drop_after = None
        if follow:
            with self.lock:
                job_name = self.pods[pod_name]["metadata"]["labels"].get("batch.kubernetes.io/job-name")
                scenario = self.scenarios.get(job_name)
                if scenario is not None and scenario.drop_log_stream_after is not None:
                    drop_after, scenario.drop_log_stream_after = scenario.drop_log_stream_after, None
        while True:
            if drop_after is not None and sent >= drop_after:
                return  # a clean close in the middle of a running container's log
            done = not follow or self._pod_done(pod_name) or time.monotonic() > deadline
            lines = self._log_lines(pod_name, query)  # read after `done`: nothing written at the end is lost
            for line in lines[sent : None if drop_after is None else drop_after]:
                h.wfile.write(self._render(line, query))
                sent += 1
            h.wfile.flush()
            if done:
                return
            time.sleep(0.02)


def container_image(pod: dict[str, Any]) -> str:
    return pod["spec"]["containers"][0].get("image", "")
