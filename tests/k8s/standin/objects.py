"""What the stand-in stores and answers with: resources, selectors, patches, statuses, calls."""

from __future__ import annotations

import copy
import datetime as dt
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def nano_now() -> str:
    t = time.time_ns()
    base = dt.datetime.fromtimestamp(t // 1_000_000_000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{t % 1_000_000_000:09d}Z"


def parse_time(text: str) -> float:
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


def split_selector(selector: str) -> list[str]:
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
    for term in split_selector(selector or ""):
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


def field_value(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = (value or {}).get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def field_match(obj: dict[str, Any], selector: str | None) -> bool:
    for term in filter(None, (t.strip() for t in (selector or "").split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if field_value(obj, key) == value:
                return False
        else:
            key, value = term.split("==", 1) if "==" in term else term.split("=", 1)
            if field_value(obj, key) != value:
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


def pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 add/replace/remove/test (what fabric8's `edit` sends)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = pointer(op["path"])
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


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or [])


def pod_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in pod["status"].get("conditions") or []
    )


def last_transition(status: dict[str, Any]) -> str | None:
    stamps = [
        c.get("lastTransitionTime") for c in status.get("conditions") or [] if c.get("lastTransitionTime")
    ]
    return max(stamps) if stamps else None


def pod_conditions(ready: bool) -> list[dict[str, Any]]:
    stamp = now()
    flag = "True" if ready else "False"
    return [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
        {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
        {"type": "ContainersReady", "status": flag, "lastTransitionTime": stamp},
        {"type": "Ready", "status": flag, "lastTransitionTime": stamp},
    ]


def container_status(container: dict[str, Any], state: dict[str, Any], ready: bool) -> dict[str, Any]:
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": ready,
        "started": "running" in state,
        "restartCount": 0,
        "state": state,
    }
