"""A Kubernetes API stand-in that also plays the Job controller, the garbage collector and the kubelet.

A real HTTP server on 127.0.0.1 speaks the parts of the Kubernetes REST API that the Prefect worker
(kubernetes_asyncio + kopf), the flow-run pod (flows/spark/kubernetes.py, httpx) and Spark's driver
(fabric8) call: discovery, CRUD on pods, jobs, secrets, configmaps, services, PVCs, service accounts,
events and namespaces, `deletecollection`, label/field selectors, merge/strategic/JSON patches, pod logs
(`follow`, `timestamps`, `tailLines`, `sinceTime`) and `?watch=true` streams (newline-delimited JSON
events; fabric8's WebSocket upgrade is answered with a plain 200 stream, which it falls back to).

Behind it, one control loop:
- the **Job controller** gives each Job a pod from its template (`batch.kubernetes.io/job-name` labels,
  controller owner reference), mirrors the pod's end in the Job's status and conditions
  (SuccessCriteriaMet/Complete, FailureTarget/Failed), enforces `activeDeadlineSeconds` and deletes
  finished Jobs after `ttlSecondsAfterFinished`;
- the **garbage collector** deletes objects whose owners (by uid) are gone, and the dependents of an owner
  deleted in the foreground before the owner itself;
- the **kubelet** starts each pod as a local process: the image's ENTRYPOINT/ENV/WORKDIR come from a map
  of images to local equivalents (`LocalImage`), the container's command/args/env from the manifest, with
  downward-API fields (each pod its own 127.x.y.z address), `secretKeyRef`/`configMapKeyRef`, and the
  variables a kubelet injects (KUBERNETES_SERVICE_HOST/PORT). Each pod runs in its own mount namespace
  (`unshare`): its emptyDir/configMap/secret volumes, its service-account token (when automounted) and
  the image's files (e.g. /opt/spark/conf) are bind-mounted where the manifest and the image put them.
  It reports phase, container state (running; terminated with exit code) and logs; a deleted pod's
  process gets SIGTERM, then SIGKILL after terminationGracePeriodSeconds; when a container's main process
  ends, whatever it left running is killed (as its PID namespace would be).
- For pods whose service account has an IRSA annotation it also plays EKS's pod identity webhook:
  AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE (a token file mounted where EKS mounts it), AWS_REGION and
  AWS_DEFAULT_REGION, with STS at the endpoint the test gives (moto).

Every request is recorded with the identity that made it: the service account of the pod whose process
opened the connection (found through /proc: socket inode -> process -> session -> pod), or the owner of
the bearer token (kubeconfig users outside the cluster, e.g. the worker). `Cluster.record` is the list.

Linux only, as root (mount namespaces). Nothing here knows about the project: images are given.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime as dt
import json
import os
import random
import re
import shlex
import signal
import string
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
IRSA_MOUNT = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
HOST_IP = "127.0.0.1"

# (group, resource) -> (kind, namespaced)
RESOURCES: dict[tuple[str, str], tuple[str, bool]] = {
    ("", "namespaces"): ("Namespace", False),
    ("", "pods"): ("Pod", True),
    ("", "secrets"): ("Secret", True),
    ("", "configmaps"): ("ConfigMap", True),
    ("", "services"): ("Service", True),
    ("", "persistentvolumeclaims"): ("PersistentVolumeClaim", True),
    ("", "serviceaccounts"): ("ServiceAccount", True),
    ("", "events"): ("Event", True),
    ("batch", "jobs"): ("Job", True),
}
SUBRESOURCES = {("", "pods"): ("log", "status"), ("batch", "jobs"): ("status",)}
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _nano_now() -> str:
    t = time.time_ns()
    base = dt.datetime.fromtimestamp(t // 1_000_000_000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{t % 1_000_000_000:09d}Z"


def _parse_time(text: str) -> float:
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", text)
    if not match:
        raise ValueError(text)
    base = dt.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC).timestamp()
    return base + float(f"0.{match.group(2) or '0'}")


def api_version(group: str) -> str:
    return "v1" if not group else f"{group}/v1"


# ------------------------------------------------------------------------------------------------
# Selectors and patches
# ------------------------------------------------------------------------------------------------
_SET_TERM = re.compile(r"^\s*(!?)([\w./-]+)\s*(?:(==|=|!=)\s*([\w./-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$")


def _split_selector(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        terms.append(current)
    return terms


def label_match(labels: dict[str, str], selector: str | None) -> bool:
    """Equality (=, ==, !=), existence (key, !key) and set-based (in, notin) terms, ANDed."""
    for term in _split_selector(selector or ""):
        match = _SET_TERM.match(term)
        if not match:
            raise ValueError(f"unsupported label selector term {term!r}")
        negate, key, op, value, set_op, values = match.groups()
        present = key in labels
        if set_op:
            options = {v.strip() for v in values.split(",")}
            ok = (present and labels[key] in options) if set_op == "in" else labels.get(key) not in options
        elif op in ("=", "=="):
            ok = labels.get(key) == value
        elif op == "!=":
            ok = labels.get(key) != value
        else:
            ok = not present if negate else present
        if not ok:
            return False
    return True


def _field_value(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = (value or {}).get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def field_match(obj: dict[str, Any], selector: str | None) -> bool:
    for term in filter(None, (t.strip() for t in (selector or "").split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if _field_value(obj, key) == value:
                return False
        else:
            key, value = term.split("==", 1) if "==" in term else term.split("=", 1)
            if _field_value(obj, key) != value:
                return False
    return True


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 (also used for strategic merge patches: ours only touch maps)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 add/replace/remove/test (what fabric8's `edit` sends)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = _pointer(op["path"])
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = parts[-1]
        kind = op["op"]
        if kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op["value"]:
                raise ValueError(f"test failed at {op['path']}")
        elif kind == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(index, op["value"])
                else:
                    parent[index] = op["value"]
            else:
                parent[last] = op["value"]
        else:
            raise ValueError(f"unsupported JSON patch op {kind!r}")
    return doc


# ------------------------------------------------------------------------------------------------
# What was asked, by whom
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    identity: str  # system:serviceaccount:<ns>:<name>, or a kubeconfig user
    pod: str | None  # the pod whose process made the call, if any
    verb: str
    group: str
    resource: str  # with subresource, e.g. pods/log
    namespace: str | None
    name: str | None
    status: int

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        target = f"{self.group or 'core'}:{self.resource} {where}{self.name or '*'}"
        return f"{self.identity} ({self.pod or 'no pod'}) {self.verb} {target} -> {self.status}"


def service_account_user(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


# ------------------------------------------------------------------------------------------------
# Images: what an image name means on this machine
# ------------------------------------------------------------------------------------------------
@dataclass
class LocalImage:
    """The local equivalent of a container image: its ENTRYPOINT, ENV and WORKDIR, and the files the image
    holds at fixed paths (target path in the pod -> a local folder bind-mounted there)."""

    entrypoint: list[str]
    env: dict[str, str]
    workdir: str = "/"
    files: dict[str, Path] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# Running pods
# ------------------------------------------------------------------------------------------------
@dataclass
class PodProcess:
    uid: str
    key: tuple[str, str]
    proc: subprocess.Popen[bytes]
    log: list[tuple[str, str]]  # (RFC3339Nano stamp, line)
    log_file: Path
    started_at: str
    reader: threading.Thread | None = None
    term_sent_at: float | None = None
    kill_at: float | None = None
    exit_code: int | None = None


class Cluster:
    """The API server, controllers and kubelet of a one-node stand-in cluster (see module doc)."""

    def __init__(
        self,
        state_dir: Path,
        images: Callable[[str], LocalImage | None],
        *,
        sts_endpoint: str | None = None,
        aws_region: str = "us-east-1",
        tick_s: float = 0.2,
    ) -> None:
        self.state_dir = state_dir
        self.images = images
        self.sts_endpoint = sts_endpoint
        self.aws_region = aws_region
        self.tick_s = tick_s
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.objects: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {
            k: {} for k in RESOURCES
        }
        self.events: list[tuple[int, tuple[str, str], str, dict[str, Any]]] = []
        self.rv = 0
        self.record: list[Call] = []
        self.tokens: dict[str, str] = {}  # bearer token -> user
        self.processes: dict[str, PodProcess] = {}  # pod uid -> process
        # Each pod its own loopback address (127.x.y.z all reach this host), as pods have their own IPs:
        # a driver and its executors must not look like one host to Spark.
        self._ip_prefix = f"127.{random.randint(16, 250)}"
        self._ips = 0
        self.stopping = threading.Event()
        self.server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        for ns in ("default", "kube-system", "kube-public"):
            self.create(("", "namespaces"), None, {"metadata": {"name": ns}})

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Cluster:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        handler = type("Handler", (_Handler,), {"cluster": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        for target, name in ((self.server.serve_forever, "api"), (self._control_loop, "control")):
            thread = threading.Thread(target=target, name=f"standin-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Kill every pod process (SIGKILL to each process group) and stop serving."""
        self.stopping.set()
        with self.lock:
            procs = list(self.processes.values())
            self.changed.notify_all()
        for p in procs:
            _kill_group(p.proc.pid, signal.SIGKILL)
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.proc.wait(10)
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- identities -----------------------------------------------------------------------------
    def issue_token(self, user: str) -> str:
        token = base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
        self.tokens[token] = user
        return token

    def kubeconfig(self, user: str, namespace: str = "default") -> dict[str, Any]:
        """A kubeconfig for a client outside the cluster, with a token that records it as `user`."""
        token = self.issue_token(user)
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "standin", "cluster": {"server": self.url}}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {"name": "standin", "context": {"cluster": "standin", "user": user, "namespace": namespace}}
            ],
            "current-context": "standin",
        }

    # --- store ----------------------------------------------------------------------------------
    def _emit(self, res: tuple[str, str], kind: str, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.events.append((self.rv, res, kind, copy.deepcopy(obj)))
        self.changed.notify_all()

    def create(self, res: tuple[str, str], namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        kind, namespaced = RESOURCES[res]
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        with self.lock:
            if namespaced:
                meta["namespace"] = namespace = meta.get("namespace") or namespace
                if ("", namespace) not in self.objects[("", "namespaces")]:
                    raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found')
            if not meta.get("name"):
                if not meta.get("generateName"):
                    raise ApiError(422, "Invalid", "metadata.name or generateName is required")
                suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
                meta["name"] = meta["generateName"] + suffix
            key = (namespace or "", meta["name"])
            if key in self.objects[res]:
                raise ApiError(409, "AlreadyExists", f'{res[1]} "{meta["name"]}" already exists')
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
            if res == ("", "secrets") and "stringData" in obj:  # write-only convenience, as the API does
                encoded = {k: base64.b64encode(v.encode()).decode() for k, v in obj.pop("stringData").items()}
                obj["data"] = {**(obj.get("data") or {}), **encoded}
            obj["apiVersion"], obj["kind"] = api_version(res[0]), kind
            if res == ("", "pods"):
                obj["status"] = {"phase": "Pending", "conditions": []}
                obj["spec"].setdefault("terminationGracePeriodSeconds", 30)
                obj["spec"].setdefault("serviceAccountName", "default")
            elif res == ("batch", "jobs"):
                obj["status"] = {}
            elif res == ("", "namespaces"):
                obj["status"] = {"phase": "Active"}
            self.objects[res][key] = obj
            self._emit(res, "ADDED", obj)
            if res == ("", "namespaces"):
                self._ensure_sa(meta["name"], "default")
            return copy.deepcopy(obj)

    def _ensure_sa(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        if key not in self.objects[("", "serviceaccounts")]:
            self.create(("", "serviceaccounts"), namespace, {"metadata": {"name": name}})

    def get(self, res: tuple[str, str], namespace: str | None, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects[res].get((namespace or "", name))
            return copy.deepcopy(obj) if obj else None

    def list(
        self,
        res: tuple[str, str],
        namespace: str | None,
        labels: str | None = None,
        fields: str | None = None,
    ) -> list[dict[str, Any]]:
        with self.lock:
            return [
                copy.deepcopy(o)
                for (ns, _), o in sorted(self.objects[res].items())
                if (namespace is None or ns == namespace)
                and label_match(o["metadata"].get("labels") or {}, labels)
                and field_match(o, fields)
            ]

    def replace(self, res: tuple[str, str], obj: dict[str, Any], status_only: bool = False) -> dict[str, Any]:
        with self.lock:
            meta = obj["metadata"]
            key = (meta.get("namespace") or "", meta["name"])
            current = self.objects[res].get(key)
            if current is None:
                raise ApiError(404, "NotFound", f'{res[1]} "{meta["name"]}" not found')
            if status_only:
                new = copy.deepcopy(current)
                new["status"] = copy.deepcopy(obj.get("status") or {})
            else:
                new = copy.deepcopy(obj)
                for k in ("uid", "creationTimestamp", "deletionTimestamp", "namespace"):
                    if k in current["metadata"]:
                        new["metadata"][k] = current["metadata"][k]
                new.setdefault("status", current.get("status"))
                new["apiVersion"], new["kind"] = current["apiVersion"], current["kind"]
            self.objects[res][key] = new
            self._emit(res, "MODIFIED", new)
            ended = new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers")
            if ended and (res != ("", "pods") or new["metadata"]["uid"] not in self.processes):
                self._remove(res, key)
            return copy.deepcopy(new)

    def update_status(self, res: tuple[str, str], namespace: str, name: str, status: dict[str, Any]) -> None:
        with self.lock:
            obj = self.objects[res].get((namespace, name))
            if obj is not None and obj.get("status") != status:
                obj["status"] = status
                self._emit(res, "MODIFIED", obj)

    def _remove(self, res: tuple[str, str], key: tuple[str, str]) -> None:
        obj = self.objects[res].pop(key, None)
        if obj is not None:
            self._emit(res, "DELETED", obj)

    def delete(
        self,
        res: tuple[str, str],
        namespace: str | None,
        name: str,
        propagation: str | None = None,
        grace_s: int | None = None,
    ) -> dict[str, Any]:
        """Graceful for running pods (SIGTERM, later SIGKILL); Foreground keeps the owner until its
        dependents are gone; Background/Orphan remove it now (the GC then deletes or orphans dependents).
        Jobs default to Orphan, as the API does (kubectl and our clients ask for Background)."""
        with self.lock:
            key = (namespace or "", name)
            obj = self.objects[res].get(key)
            if obj is None:
                raise ApiError(404, "NotFound", f'{res[1]} "{name}" not found')
            meta = obj["metadata"]
            propagation = propagation or ("Orphan" if res == ("batch", "jobs") else "Background")
            if propagation == "Orphan":
                self._orphan(meta["uid"])
            if meta.get("deletionTimestamp"):
                return copy.deepcopy(obj)
            if propagation == "Foreground":
                meta["deletionTimestamp"] = now()
                meta["finalizers"] = sorted({*(meta.get("finalizers") or []), "foregroundDeletion"})
                self._emit(res, "MODIFIED", obj)
                return copy.deepcopy(obj)
            if res == ("", "pods") and meta["uid"] in self.processes:
                meta["deletionTimestamp"] = now()
                grace = obj["spec"]["terminationGracePeriodSeconds"] if grace_s is None else grace_s
                meta["deletionGracePeriodSeconds"] = grace
                self._emit(res, "MODIFIED", obj)
                return copy.deepcopy(obj)
            self._remove(res, key)
            return copy.deepcopy(obj)

    def _orphan(self, owner_uid: str) -> None:
        for res, objs in self.objects.items():
            for obj in objs.values():
                refs = obj["metadata"].get("ownerReferences") or []
                kept = [r for r in refs if r.get("uid") != owner_uid]
                if len(kept) != len(refs):
                    obj["metadata"]["ownerReferences"] = kept
                    self._emit(res, "MODIFIED", obj)

    # --- control loop ---------------------------------------------------------------------------
    def _control_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                with self.lock:
                    self._job_controller()
                    self._garbage_collector()
                    self._kubelet()
            except Exception as exc:  # keep serving; the record and logs say what went wrong
                print(f"[standin] control loop error: {exc!r}", flush=True)
            self.stopping.wait(self.tick_s)

    def _job_controller(self) -> None:
        jobs, pods = self.objects[("batch", "jobs")], self.objects[("", "pods")]
        for (ns, name), job in list(jobs.items()):
            meta, spec, status = job["metadata"], job["spec"], dict(job.get("status") or {})
            if meta.get("deletionTimestamp"):
                continue
            own = [p for p in pods.values() if _owned_by(p, meta["uid"])]
            finished = any(c["type"] in ("Complete", "Failed") for c in status.get("conditions") or [])
            if finished:
                ttl = spec.get("ttlSecondsAfterFinished")
                done_at = status.get("completionTime") or _last_transition(status)
                if ttl is not None and done_at and time.time() >= _parse_time(done_at) + ttl:
                    self.delete(("batch", "jobs"), ns, name, "Background")
                continue
            if not own and not status.get("startTime"):
                self._create_job_pod(job)
                status["startTime"] = now()
                status["active"] = 1
                self.update_status(("batch", "jobs"), ns, name, status)
                continue
            deadline = spec.get("activeDeadlineSeconds")
            if (
                deadline
                and status.get("startTime")
                and time.time() > _parse_time(status["startTime"]) + deadline
            ):
                for pod in own:
                    if not pod["metadata"].get("deletionTimestamp"):
                        self.delete(("", "pods"), ns, pod["metadata"]["name"])
                self._finish_job(
                    job, status, "Failed", "DeadlineExceeded", "Job was active longer than specified deadline"
                )
                continue
            phases = [p["status"].get("phase") for p in own]
            if "Succeeded" in phases:
                status.update(active=0, succeeded=1, ready=0)
                self._finish_job(job, status, "Complete", None, None)
            elif "Failed" in phases:
                status.update(active=0, failed=1, ready=0)
                self._finish_job(
                    job,
                    status,
                    "Failed",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                )
            else:
                ready = sum(1 for p in own if _pod_ready(p))
                status.update(active=len(own), ready=ready)
                self.update_status(("batch", "jobs"), ns, name, status)

    def _finish_job(self, job: dict[str, Any], status: dict[str, Any], kind: str, reason, message) -> None:
        stamp = now()
        first = "SuccessCriteriaMet" if kind == "Complete" else "FailureTarget"
        conditions = []
        for ctype in (first, kind):
            cond = {"type": ctype, "status": "True", "lastProbeTime": stamp, "lastTransitionTime": stamp}
            if reason:
                cond.update(reason=reason, message=message)
            conditions.append(cond)
        status["conditions"] = conditions
        status["active"] = 0
        if kind == "Complete":
            status["completionTime"] = stamp
        meta = job["metadata"]
        self.update_status(("batch", "jobs"), meta["namespace"], meta["name"], status)

    def _create_job_pod(self, job: dict[str, Any]) -> None:
        meta = job["metadata"]
        template = copy.deepcopy(job["spec"]["template"])
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels.update(
            {
                "batch.kubernetes.io/job-name": meta["name"],
                "job-name": meta["name"],
                "batch.kubernetes.io/controller-uid": meta["uid"],
                "controller-uid": meta["uid"],
            }
        )
        pod = {
            "metadata": {
                "generateName": f"{meta['name']}-",
                "labels": labels,
                "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": template["spec"],
        }
        self.create(("", "pods"), meta["namespace"], pod)

    def _garbage_collector(self) -> None:
        alive = {o["metadata"]["uid"]: o for objs in self.objects.values() for o in objs.values()}
        for res, objs in self.objects.items():
            for (ns, name), obj in list(objs.items()):
                meta = obj["metadata"]
                refs = meta.get("ownerReferences") or []
                if refs and not any(r.get("uid") in alive for r in refs):
                    if not meta.get("deletionTimestamp"):
                        self.delete(res, ns, name, "Background")
                    continue
                owners_in_foreground = [
                    alive[r["uid"]]
                    for r in refs
                    if r.get("uid") in alive
                    and "foregroundDeletion" in (alive[r["uid"]]["metadata"].get("finalizers") or [])
                ]
                if owners_in_foreground and not meta.get("deletionTimestamp"):
                    self.delete(res, ns, name, "Background")
        for res, objs in self.objects.items():
            for key, obj in list(objs.items()):
                meta = obj["metadata"]
                if "foregroundDeletion" in (meta.get("finalizers") or []):
                    uid = meta["uid"]
                    if not any(_owned_by(o, uid) for os_ in self.objects.values() for o in os_.values()):
                        meta["finalizers"] = [f for f in meta["finalizers"] if f != "foregroundDeletion"]
                        if res == ("", "pods") and uid in self.processes:
                            self.delete(res, key[0], key[1])
                        else:
                            self._remove(res, key)

    # --- kubelet --------------------------------------------------------------------------------
    def _kubelet(self) -> None:
        pods = self.objects[("", "pods")]
        for key, pod in list(pods.items()):
            uid = pod["metadata"]["uid"]
            running = self.processes.get(uid)
            if running is None:
                if pod["metadata"].get("deletionTimestamp"):
                    self._remove(("", "pods"), key)
                elif pod["status"].get("phase") == "Pending":
                    self._start(pod)
                continue
            if running.proc.poll() is not None and running.exit_code is None:
                if running.reader is not None:
                    running.reader.join(5)
                running.exit_code = running.proc.returncode
                _kill_group(running.proc.pid, signal.SIGKILL)  # what the container left behind
                self._terminated(pod, running)
            if pod["metadata"].get("deletionTimestamp"):
                if running.exit_code is not None:
                    self.processes.pop(uid, None)
                    if not pod["metadata"].get("finalizers"):
                        self._remove(("", "pods"), key)
                elif running.term_sent_at is None:
                    running.term_sent_at = time.time()
                    grace = pod["metadata"].get("deletionGracePeriodSeconds", 30)
                    running.kill_at = running.term_sent_at + grace
                    _signal(running.proc.pid, signal.SIGTERM)  # the container's main process only
                elif running.kill_at is not None and time.time() >= running.kill_at:
                    _kill_group(running.proc.pid, signal.SIGKILL)

    def _terminated(self, pod: dict[str, Any], running: PodProcess) -> None:
        code = running.exit_code or 0
        if code < 0:
            code = 128 - code  # killed by a signal, as a container runtime reports it
        status = copy.deepcopy(pod["status"])
        container = pod["spec"]["containers"][0]
        status["phase"] = "Succeeded" if code == 0 else "Failed"
        status["containerStatuses"] = [
            _container_status(
                container,
                {
                    "terminated": {
                        "exitCode": code,
                        "reason": "Completed" if code == 0 else "Error",
                        "startedAt": running.started_at,
                        "finishedAt": now(),
                        "containerID": f"standin://{running.proc.pid}",
                    }
                },
                ready=False,
            )
        ]
        status["conditions"] = _pod_conditions(ready=False)
        meta = pod["metadata"]
        self.update_status(("", "pods"), meta["namespace"], meta["name"], status)

    def _waiting(self, pod: dict[str, Any], reason: str, message: str) -> None:
        status = copy.deepcopy(pod["status"])
        container = pod["spec"]["containers"][0]
        status["containerStatuses"] = [
            _container_status(container, {"waiting": {"reason": reason, "message": message}}, ready=False)
        ]
        meta = pod["metadata"]
        self.update_status(("", "pods"), meta["namespace"], meta["name"], status)

    def _start(self, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        if spec.get("initContainers") or len(spec["containers"]) != 1:
            self._waiting(
                pod, "CreateContainerError", "the stand-in kubelet runs exactly one container per pod"
            )
            return
        container = spec["containers"][0]
        image = self.images(container.get("image", ""))
        if image is None:
            self._waiting(pod, "ErrImagePull", f"no local equivalent of image {container.get('image')!r}")
            return
        if not pod["status"].get("podIP"):
            self._ips += 1
            pod["status"]["podIP"] = f"{self._ip_prefix}.{self._ips // 250}.{self._ips % 250 + 1}"
        try:
            env, mounts = self._pod_environment(pod, container, image)
        except ApiError as exc:
            self._waiting(pod, "CreateContainerConfigError", exc.message)
            return
        argv = _expand(list(container.get("command") or image.entrypoint), env)
        argv += _expand(list(container.get("args") or []), env)
        if not argv:
            self._waiting(pod, "CreateContainerError", "no command")
            return
        workdir = container.get("workingDir") or image.workdir
        pod_dir = self.state_dir / "pods" / meta["name"]
        log_file = pod_dir / "container.log"
        script = _mount_script(mounts, workdir)
        # What the container got, for diagnostics (as `kubectl describe` would show; values of secrets too,
        # but only in the test's own temporary folder).
        (pod_dir / "container.json").write_text(
            json.dumps({"argv": argv, "env": env, "mounts": mounts}, indent=1)
        )
        cmd = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh", *argv]
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd="/",
        )
        running = PodProcess(meta["uid"], (meta["namespace"], meta["name"]), proc, [], log_file, now())
        running.reader = threading.Thread(target=self._read_log, args=(running,), daemon=True)
        running.reader.start()
        self.processes[meta["uid"]] = running
        status = copy.deepcopy(pod["status"])
        ip = status["podIP"]
        status.update(phase="Running", podIPs=[{"ip": ip}], hostIP=HOST_IP, startTime=now())
        status["containerStatuses"] = [
            _container_status(container, {"running": {"startedAt": running.started_at}}, ready=True)
        ]
        status["conditions"] = _pod_conditions(ready=True)
        self.update_status(("", "pods"), meta["namespace"], meta["name"], status)
        spec_node = self.objects[("", "pods")][(meta["namespace"], meta["name"])]["spec"]
        spec_node.setdefault("nodeName", "standin-node")

    def _read_log(self, running: PodProcess) -> None:
        running.log_file.parent.mkdir(parents=True, exist_ok=True)
        assert running.proc.stdout is not None
        with running.log_file.open("a", encoding="utf-8") as out:
            for raw in iter(running.proc.stdout.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                stamp = _nano_now()
                out.write(f"{stamp} {line}\n")
                out.flush()
                with self.lock:
                    running.log.append((stamp, line))
                    self.changed.notify_all()

    def _pod_environment(
        self, pod: dict[str, Any], container: dict[str, Any], image: LocalImage
    ) -> tuple[dict[str, str], dict[str, str]]:
        """(environment, mounts: pod path -> local path) as a kubelet would set them up."""
        meta, spec = pod["metadata"], pod["spec"]
        ns = meta["namespace"]
        pod_dir = self.state_dir / "pods" / meta["name"]
        pod_dir.mkdir(parents=True, exist_ok=True)
        env: dict[str, str] = {"HOSTNAME": meta["name"]}
        env.update(image.env)
        env.update(
            KUBERNETES_SERVICE_HOST="127.0.0.1",
            KUBERNETES_SERVICE_PORT=str(self.port),
            KUBERNETES_SERVICE_PORT_HTTPS=str(self.port),
            KUBERNETES_PORT=f"tcp://127.0.0.1:{self.port}",
        )
        mounts: dict[str, str] = {target: str(source) for target, source in image.files.items()}
        sa_name = spec.get("serviceAccountName") or "default"
        sa = self.objects[("", "serviceaccounts")].get((ns, sa_name))
        if sa is None:
            raise ApiError(404, "NotFound", f'serviceaccount "{sa_name}" not found')
        user = service_account_user(ns, sa_name)
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = sa.get("automountServiceAccountToken", True)
        if automount:
            sa_dir = pod_dir / "serviceaccount"
            sa_dir.mkdir(exist_ok=True)
            (sa_dir / "token").write_text(self.issue_token(user))
            (sa_dir / "namespace").write_text(ns)
            (sa_dir / "ca.crt").write_text("")
            mounts[SA_MOUNT] = str(sa_dir)
        role_arn = (sa["metadata"].get("annotations") or {}).get(IRSA_ANNOTATION)
        if role_arn:
            irsa_dir = pod_dir / "irsa"
            irsa_dir.mkdir(exist_ok=True)
            (irsa_dir / "token").write_text(self.issue_token(f"{user} (IRSA)"))
            mounts[IRSA_MOUNT] = str(irsa_dir)
            env.update(
                AWS_ROLE_ARN=role_arn,
                AWS_WEB_IDENTITY_TOKEN_FILE=f"{IRSA_MOUNT}/token",
                AWS_REGION=self.aws_region,
                AWS_DEFAULT_REGION=self.aws_region,
            )
            if (sa["metadata"].get("annotations") or {}).get(
                "eks.amazonaws.com/sts-regional-endpoints"
            ) == "true":
                env["AWS_STS_REGIONAL_ENDPOINTS"] = "regional"
            if self.sts_endpoint:
                env["AWS_ENDPOINT_URL_STS"] = self.sts_endpoint
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        for vm in container.get("volumeMounts") or []:
            volume = volumes.get(vm["name"])
            if volume is None:
                raise ApiError(422, "Invalid", f"volumeMount {vm['name']!r} names no volume")
            local = pod_dir / "volumes" / vm["name"]
            local.mkdir(parents=True, exist_ok=True)
            if "configMap" in volume or "secret" in volume:
                self._fill_volume(ns, volume, local)
            elif "emptyDir" not in volume:
                raise ApiError(422, "Invalid", f"volume {vm['name']!r}: only emptyDir, configMap, secret")
            mounts[vm["mountPath"]] = str(local)
        for item in container.get("env") or []:
            value = self._env_value(pod, item)
            if value is not None:
                env[item["name"]] = _expand([value], env)[0]
        return env, mounts

    def _fill_volume(self, ns: str, volume: dict[str, Any], local: Path) -> None:
        if "configMap" in volume:
            source = self.objects[("", "configmaps")].get((ns, volume["configMap"]["name"]))
            data = {k: v.encode() for k, v in ((source or {}).get("data") or {}).items()}
        else:
            source = self.objects[("", "secrets")].get((ns, volume["secret"]["secretName"]))
            data = {k: base64.b64decode(v) for k, v in ((source or {}).get("data") or {}).items()}
        spec = volume.get("configMap") or volume.get("secret") or {}
        if source is None and not spec.get("optional"):
            raise ApiError(404, "NotFound", f"volume source of {volume['name']!r} not found")
        items = spec.get("items")
        for key, content in data.items():
            paths = [i["path"] for i in items or [] if i["key"] == key] if items else [key]
            for path in paths:
                target = local / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)

    def _env_value(self, pod: dict[str, Any], item: dict[str, Any]) -> str | None:
        if "value" in item:
            return str(item["value"])
        source = item.get("valueFrom") or {}
        ns = pod["metadata"]["namespace"]
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            fields = {
                "metadata.name": pod["metadata"]["name"],
                "metadata.namespace": ns,
                "metadata.uid": pod["metadata"]["uid"],
                "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
                "spec.nodeName": "standin-node",
                "status.podIP": pod["status"]["podIP"],
                "status.hostIP": HOST_IP,
            }
            label = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
            if label:
                return (pod["metadata"].get(label.group(1)) or {}).get(label.group(2), "")
            if path not in fields:
                raise ApiError(422, "Invalid", f"unsupported fieldRef {path!r}")
            return fields[path]
        for ref_kind, res in (("secretKeyRef", ("", "secrets")), ("configMapKeyRef", ("", "configmaps"))):
            if ref_kind in source:
                ref = source[ref_kind]
                obj = self.objects[res].get((ns, ref["name"]))
                data = (obj or {}).get("data") or {}
                if ref["key"] not in data:
                    if ref.get("optional"):
                        return None
                    raise ApiError(404, "NotFound", f"{ref_kind} {ref['name']}/{ref['key']} not found")
                value = data[ref["key"]]
                return base64.b64decode(value).decode() if res[1] == "secrets" else value
        if "resourceFieldRef" in source:
            raise ApiError(422, "Invalid", "resourceFieldRef is not supported by the stand-in")
        return None

    # --- watch and logs (used by the handler) ---------------------------------------------------
    def watch(
        self,
        res: tuple[str, str],
        namespace: str | None,
        labels: str | None,
        fields: str | None,
        since: int | None,
        until: float,
    ) -> Iterator[dict[str, Any]]:
        def wanted(obj: dict[str, Any]) -> bool:
            ns = obj["metadata"].get("namespace", "")
            return (
                (namespace is None or ns == namespace)
                and label_match(obj["metadata"].get("labels") or {}, labels)
                and field_match(obj, fields)
            )

        with self.lock:
            if since is None:
                cursor = self.rv
                initial = [copy.deepcopy(o) for o in self.objects[res].values() if wanted(o)]
            else:
                cursor, initial = since, []
        for obj in initial:
            yield {"type": "ADDED", "object": obj}
        while not self.stopping.is_set() and time.monotonic() < until:
            with self.lock:
                pending = [e for e in self.events if e[0] > cursor]
                if not pending:
                    self.changed.wait(min(1.0, max(0.01, until - time.monotonic())))
                    pending = [e for e in self.events if e[0] > cursor]
            for rv, event_res, kind, obj in pending:
                cursor = rv
                if event_res == res and wanted(obj):
                    yield {"type": kind, "object": obj}
            if not pending:
                yield {}  # heartbeat: lets the handler notice a closed connection

    def pod_log(
        self, namespace: str, name: str, follow: bool, tail: int | None, since: float | None
    ) -> Iterator[tuple[str, str]] | None:
        pod = self.get(("", "pods"), namespace, name)
        if pod is None:
            return None
        running = self.processes.get(pod["metadata"]["uid"])
        if running is None:
            return iter(())

        def lines() -> Iterator[tuple[str, str]]:
            with self.lock:
                start = 0
                if since is not None:
                    start = next(
                        (i for i, (s, _) in enumerate(running.log) if _parse_time(s) >= since),
                        len(running.log),
                    )
                if tail is not None:
                    start = max(start, len(running.log) - tail)
            index = start
            while True:
                with self.lock:
                    batch = running.log[index:]
                    done = running.exit_code is not None or running.uid not in self.processes
                    if not batch and follow and not done and not self.stopping.is_set():
                        self.changed.wait(1.0)
                        batch = running.log[index:]
                index += len(batch)
                yield from batch
                if not follow or (done and not batch) or self.stopping.is_set():
                    return
                if not batch:
                    yield ("", "")  # heartbeat

        return lines()


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or [])


def _pod_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in pod["status"].get("conditions") or []
    )


def _last_transition(status: dict[str, Any]) -> str | None:
    stamps = [
        c.get("lastTransitionTime") for c in status.get("conditions") or [] if c.get("lastTransitionTime")
    ]
    return max(stamps) if stamps else None


def _pod_conditions(ready: bool) -> list[dict[str, Any]]:
    stamp = now()
    flag = "True" if ready else "False"
    return [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
        {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
        {"type": "ContainersReady", "status": flag, "lastTransitionTime": stamp},
        {"type": "Ready", "status": flag, "lastTransitionTime": stamp},
    ]


def _container_status(container: dict[str, Any], state: dict[str, Any], ready: bool) -> dict[str, Any]:
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": ready,
        "started": "running" in state,
        "restartCount": 0,
        "state": state,
    }


def _expand(values: list[str], env: dict[str, str]) -> list[str]:
    """Kubernetes' $(VAR) expansion in command, args and env values ($$ escapes)."""

    def one(text: str) -> str:
        return re.sub(
            r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
            lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
            text,
        )

    return [one(v) for v in values]


def _mount_script(mounts: dict[str, str], workdir: str) -> str:
    """Shell run inside the pod's private mount namespace before exec'ing the container's command.

    Sources may live under /tmp, which a pod can mount over: the state is first bind-mounted at
    /run/standin (a private tmpfs), and every source is reached through it."""
    lines = ["set -e", "mount -t tmpfs standin-run /run", "mkdir -p /run/standin-src"]
    sources: dict[str, str] = {}
    for i, source in enumerate(sorted(set(mounts.values()))):
        alias = f"/run/standin-src/{i}"
        lines += [f"mkdir -p {alias}", f"mount --bind {shlex.quote(source)} {alias}"]
        sources[source] = alias
    if any(t == "/opt" or t.startswith("/opt/") for t in mounts):
        lines.append("mount -t tmpfs standin-opt /opt")
    for target in sorted(mounts, key=lambda t: (t.count("/"), t)):
        q = shlex.quote(target)
        lines += [f"mkdir -p {q}", f"mount --bind {sources[mounts[target]]} {q}"]
    lines += [f"cd {shlex.quote(workdir)}", 'exec "$@"']
    return "\n".join(lines)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


# ------------------------------------------------------------------------------------------------
# Who is calling: the connection's process -> its session -> the pod started with that session
# ------------------------------------------------------------------------------------------------
def _socket_inode(client_port: int, server_port: int) -> str | None:
    want_local = f"0100007F:{client_port:04X}"
    want_remote = f"0100007F:{server_port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as fh:
            next(fh)
            for row in fh:
                cols = row.split()
                local, remote = cols[1], cols[2]
                if table.endswith("6"):
                    local, remote = _v6_to_v4(local), _v6_to_v4(remote)
                if local == want_local and remote == want_remote:
                    return cols[9]
    return None


def _v6_to_v4(text: str) -> str:
    address, port = text.split(":")
    return f"{address[-8:]}:{port}" if address[:24] == "0000000000000000FFFF0000" else text


def _session_of(pid: str) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[3])


def peer_session(client_port: int, server_port: int, sessions: set[int]) -> int | None:
    """The session id (= the pod's main process) of the process holding this client socket, if a pod's."""
    inode = _socket_inode(client_port, server_port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        session = _session_of(pid)
        if session not in sessions:
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return session
    return None


# ------------------------------------------------------------------------------------------------
# HTTP
# ------------------------------------------------------------------------------------------------
_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[a-z0-9.]+)/v1)"
    r"(?:/namespaces/(?P<ns>[a-z0-9-]+))?"
    r"(?:/(?P<res>[a-z]+)(?:/(?P<name>[a-z0-9.-]+)(?:/(?P<sub>[a-z]+))?)?)?$"
)


class _Handler(BaseHTTPRequestHandler):
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
        with c.lock:
            sessions = {p.proc.pid: p for p in c.processes.values()}
        session = peer_session(self.client_address[1], c.port, set(sessions))
        if session is None:
            return None
        ns, name = sessions[session].key
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
    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
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
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        if "yaml" in (self.headers.get("Content-Type") or ""):
            import yaml

            return yaml.safe_load(raw)
        return json.loads(raw)

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
                    503, ApiError(503, "ServiceUnavailable", "websocket watches are not served").status()
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
            since=_parse_time(since) if since else None,
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
