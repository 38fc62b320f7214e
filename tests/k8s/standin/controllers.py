"""The Job controller and the garbage collector, run by the control loop."""

from __future__ import annotations

import copy
import time
from typing import Any

from tests.k8s.standin.objects import (
    last_transition,
    now,
    owned_by,
    parse_time,
    pod_ready,
)


class Controllers:
    """Jobs get pods, end, expire; dependents follow their owners."""

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
            own = [p for p in pods.values() if owned_by(p, meta["uid"])]
            finished = any(c["type"] in ("Complete", "Failed") for c in status.get("conditions") or [])
            if finished:
                ttl = spec.get("ttlSecondsAfterFinished")
                done_at = status.get("completionTime") or last_transition(status)
                if ttl is not None and done_at and time.time() >= parse_time(done_at) + ttl:
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
                and time.time() > parse_time(status["startTime"]) + deadline
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
                ready = sum(1 for p in own if pod_ready(p))
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
                    if not any(owned_by(o, uid) for os_ in self.objects.values() for o in os_.values()):
                        meta["finalizers"] = [f for f in meta["finalizers"] if f != "foregroundDeletion"]
                        if res == ("", "pods") and uid in self.processes:
                            self.delete(res, key[0], key[1])
                        else:
                            self._remove(res, key)
