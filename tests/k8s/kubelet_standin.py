"""A Kubernetes API stand-in that also plays the Job controller, the garbage collector and the kubelet.

A real HTTP server on 127.0.0.1 speaks the parts of the Kubernetes REST API that the Prefect worker
(kubernetes_asyncio + kopf), the flow-run pod (flows/spark/kubernetes/, httpx) and Spark's driver
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
opened the connection (found through /proc: socket inode -> process -> its environment's HOSTNAME), or
the owner of the bearer token (kubeconfig users outside the cluster, e.g. the worker): `Cluster.record`.

Linux only, as root (mount namespaces). Nothing here knows about the project: images are given.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import subprocess
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.k8s.standin.api import Handler
from tests.k8s.standin.controllers import Controllers
from tests.k8s.standin.kubelet import Kubelet, PodProcess
from tests.k8s.standin.objects import RESOURCES, Call, LocalImage, label_match, service_account_user
from tests.k8s.standin.store import Store

__all__ = ["Call", "Cluster", "LocalImage", "label_match", "service_account_user"]


class Cluster(Store, Controllers, Kubelet):
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
        self.created: list[dict[str, Any]] = []  # every object as it was created (deleted ones included)
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
        handler = type("BoundHandler", (Handler,), {"cluster": self})
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
            self._kill_pod(p)
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
