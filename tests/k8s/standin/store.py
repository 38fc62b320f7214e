"""The object store: create/get/list/replace/delete with resource versions, and watch streams."""

from __future__ import annotations

import base64
import copy
import random
import string
import time
import uuid
from collections.abc import Iterator
from typing import Any

from tests.k8s.standin.objects import (
    RESOURCES,
    ApiError,
    api_version,
    field_match,
    label_match,
    now,
)


class Store:
    """Objects by resource and (namespace, name); every change is an event with a resource version."""

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
            self.created.append(copy.deepcopy(obj))
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
