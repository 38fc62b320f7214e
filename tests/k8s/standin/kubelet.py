"""The kubelet: pods as local processes in their own mount namespaces; status, logs, termination."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.k8s.standin.identity import pod_processes
from tests.k8s.standin.objects import (
    HOST_IP,
    IRSA_ANNOTATION,
    IRSA_MOUNT,
    SA_MOUNT,
    ApiError,
    LocalImage,
    container_status,
    nano_now,
    now,
    parse_time,
    pod_conditions,
    service_account_user,
)


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


class Kubelet:
    """Starts, watches and stops each pod's process (see tests/k8s/kubelet_standin.py)."""

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
                self._kill_pod(running)  # what the container left behind, as its PID namespace would go
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
                    send_signal(running.proc.pid, signal.SIGTERM)  # the container's main process only
                elif running.kill_at is not None and time.time() >= running.kill_at:
                    self._kill_pod(running)

    def _kill_pod(self, running: PodProcess) -> None:
        """SIGKILL to every process of the pod: its process group, and any process that left it (a new
        session, another parent) but still carries the pod's environment."""
        kill_group(running.proc.pid, signal.SIGKILL)
        for pid in pod_processes(self.port, running.key[1]):
            send_signal(int(pid), signal.SIGKILL)

    def _terminated(self, pod: dict[str, Any], running: PodProcess) -> None:
        code = running.exit_code or 0
        if code < 0:
            code = 128 - code  # killed by a signal, as a container runtime reports it
        status = copy.deepcopy(pod["status"])
        container = pod["spec"]["containers"][0]
        status["phase"] = "Succeeded" if code == 0 else "Failed"
        status["containerStatuses"] = [
            container_status(
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
        status["conditions"] = pod_conditions(ready=False)
        meta = pod["metadata"]
        self.update_status(("", "pods"), meta["namespace"], meta["name"], status)

    def _waiting(self, pod: dict[str, Any], reason: str, message: str) -> None:
        status = copy.deepcopy(pod["status"])
        container = pod["spec"]["containers"][0]
        status["containerStatuses"] = [
            container_status(container, {"waiting": {"reason": reason, "message": message}}, ready=False)
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
        argv = expand(list(container.get("command") or image.entrypoint), env)
        argv += expand(list(container.get("args") or []), env)
        if not argv:
            self._waiting(pod, "CreateContainerError", "no command")
            return
        workdir = container.get("workingDir") or image.workdir
        pod_dir = self.state_dir / "pods" / meta["name"]
        log_file = pod_dir / "container.log"
        script = mount_script(mounts, workdir)
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
            container_status(container, {"running": {"startedAt": running.started_at}}, ready=True)
        ]
        status["conditions"] = pod_conditions(ready=True)
        self.update_status(("", "pods"), meta["namespace"], meta["name"], status)
        spec_node = self.objects[("", "pods")][(meta["namespace"], meta["name"])]["spec"]
        spec_node.setdefault("nodeName", "standin-node")

    def _read_log(self, running: PodProcess) -> None:
        running.log_file.parent.mkdir(parents=True, exist_ok=True)
        assert running.proc.stdout is not None
        with running.log_file.open("a", encoding="utf-8") as out:
            for raw in iter(running.proc.stdout.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                stamp = nano_now()
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
                env[item["name"]] = expand([value], env)[0]
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
                        (i for i, (s, _) in enumerate(running.log) if parse_time(s) >= since),
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


def expand(values: list[str], env: dict[str, str]) -> list[str]:
    """Kubernetes' $(VAR) expansion in command, args and env values ($$ escapes)."""

    def one(text: str) -> str:
        return re.sub(
            r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
            lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
            text,
        )

    return [one(v) for v in values]


def mount_script(mounts: dict[str, str], workdir: str) -> str:
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


def send_signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
