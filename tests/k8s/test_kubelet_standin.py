"""The Kubernetes stand-in itself (tests/k8s/kubelet_standin.py): what the rehearsal relies on, proven on
small shell pods over real HTTP with real processes."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.k8s.kubelet_standin import Cluster, LocalImage, label_match

NS = "apps"
SHELL = LocalImage(entrypoint=[], env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"})


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path / "state", {"shell": SHELL}.get, tick_s=0.05) as c:
        c.create(("", "namespaces"), None, {"metadata": {"name": NS}})
        c.create(("", "serviceaccounts"), NS, {"metadata": {"name": "runner"}})
        yield c


def job(script: str, **spec: Any) -> dict[str, Any]:
    pod_spec = {
        "restartPolicy": "Never",
        "serviceAccountName": "runner",
        "containers": [
            {
                "name": "main",
                "image": "shell",
                "command": ["python", "-u", "-c", script],
                "env": [
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {
                        "name": "URI",
                        "valueFrom": {"secretKeyRef": {"name": "db", "key": "uri", "optional": True}},
                    },
                ],
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    pod_spec.update(spec.pop("pod", {}))
    return {
        "metadata": {"generateName": "j-"},
        "spec": {"backoffLimit": 0, "template": {"spec": pod_spec}, **spec},
    }


def wait_for(what: str, check, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def condition(c: Cluster, name: str) -> str | None:
    found = c.get(("batch", "jobs"), NS, name)
    types = [x["type"] for x in ((found or {}).get("status") or {}).get("conditions") or []]
    return "Complete" if "Complete" in types else "Failed" if "Failed" in types else None


def pod_of(c: Cluster, job_name: str) -> dict[str, Any]:
    return wait_for("pod", lambda: c.list(("", "pods"), NS, f"batch.kubernetes.io/job-name={job_name}"))[0]


def test_a_job_runs_its_pod_as_a_process_with_the_manifests_env_and_a_token(cluster: Cluster) -> None:
    http = httpx.Client(base_url=cluster.url, timeout=10)
    http.post(
        f"/api/v1/namespaces/{NS}/secrets",
        json={"metadata": {"name": "db"}, "stringData": {"uri": "mongodb://x"}},
    )
    script = (
        "import json, os, urllib.request\n"
        "token = open('/var/run/secrets/kubernetes.io/serviceaccount/token').read()\n"
        "url = f\"http://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}\"\n"
        "urllib.request.urlopen(url + '/api/v1/namespaces/apps/pods').read()\n"
        "print(json.dumps({k: os.environ[k] for k in ('POD', 'UID', 'IP', 'URI')}))\n"
        "print('tmp empty:', os.listdir('/tmp') == [])\n"
        "raise SystemExit(3)\n"
    )
    # A TTL of a few seconds: the stand-in stores completionTime in whole seconds, so with 1 s the Job could
    # go at once after its end, before the first look at it (it did once, on a loaded machine).
    created = http.post(
        f"/apis/batch/v1/namespaces/{NS}/jobs", json=job(script, ttlSecondsAfterFinished=5)
    ).json()
    name = created["metadata"]["name"]
    assert wait_for("job end", lambda: condition(cluster, name)) == "Failed"
    pod = pod_of(cluster, name)
    assert pod["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (pod["status"]["phase"], terminated["exitCode"]) == ("Failed", 3)
    log = http.get(f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}/log").text.splitlines()
    env = json.loads(log[0])
    assert env == {
        "POD": pod["metadata"]["name"],
        "UID": pod["metadata"]["uid"],
        "IP": pod["status"]["podIP"],
        "URI": "mongodb://x",
    }
    assert pod["status"]["podIP"].startswith("127.") and pod["status"]["podIP"] != "127.0.0.1"
    assert log[1] == "tmp empty: True"  # its own emptyDir, not this machine's /tmp
    # the pod's own call is recorded under its service account
    calls = [c for c in cluster.record if c.pod == pod["metadata"]["name"]]
    assert [(c.identity, c.verb, c.resource) for c in calls] == [
        ("system:serviceaccount:apps:runner", "list", "pods")
    ]
    # ttlSecondsAfterFinished: the Job goes, and its pod with it (garbage collection by owner)
    wait_for(
        "ttl", lambda: cluster.get(("batch", "jobs"), NS, name) is None and not cluster.list(("", "pods"), NS)
    )


def test_deleting_an_owner_pod_stops_the_job_it_owns_sigterm_first_then_sigkill(cluster: Cluster) -> None:
    http = httpx.Client(base_url=cluster.url, timeout=10)
    sleeper = job("import time; time.sleep(600)")
    owner = http.post(f"/apis/batch/v1/namespaces/{NS}/jobs", json=sleeper).json()
    owner_pod = pod_of(cluster, owner["metadata"]["name"])
    wait_for(
        "owner running",
        lambda: cluster.get(("", "pods"), NS, owner_pod["metadata"]["name"])["status"]["phase"] == "Running",
    )
    stubborn = job(
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: print('got SIGTERM, ignoring it', flush=True))\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n",
        pod={"terminationGracePeriodSeconds": 2},
    )
    meta = owner_pod["metadata"]
    stubborn["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]}
    ]
    dependent = http.post(f"/apis/batch/v1/namespaces/{NS}/jobs", json=stubborn).json()
    dependent_pod = pod_of(cluster, dependent["metadata"]["name"])["metadata"]["name"]
    log_path = f"/api/v1/namespaces/{NS}/pods/{dependent_pod}/log"
    wait_for("ready", lambda: "ready" in http.get(log_path).text)

    with http.stream("GET", log_path, params={"follow": "true"}) as follow:
        assert http.delete(f"/api/v1/namespaces/{NS}/pods/{meta['name']}").status_code == 200
        lines = [line for line in follow.iter_lines() if line]  # ends when the container ends
    assert lines == ["ready", "got SIGTERM, ignoring it"]
    wait_for(
        "all gone",
        lambda: not cluster.list(("", "pods"), NS) and not cluster.list(("batch", "jobs"), NS, "job-name"),
    )
    assert cluster.get(("batch", "jobs"), NS, dependent["metadata"]["name"]) is None
    assert not cluster.processes


def test_active_deadline_fails_the_job_and_stops_its_pod(cluster: Cluster) -> None:
    http = httpx.Client(base_url=cluster.url, timeout=10)
    created = http.post(
        f"/apis/batch/v1/namespaces/{NS}/jobs",
        json=job("import time; time.sleep(600)", activeDeadlineSeconds=1),
    ).json()
    name = created["metadata"]["name"]
    assert wait_for("deadline", lambda: condition(cluster, name)) == "Failed"
    reasons = {c.get("reason") for c in cluster.get(("batch", "jobs"), NS, name)["status"]["conditions"]}
    assert reasons == {"DeadlineExceeded"}
    wait_for("pod stopped", lambda: not cluster.processes)


def test_watch_streams_events_after_a_resource_version(cluster: Cluster) -> None:
    http = httpx.Client(base_url=cluster.url, timeout=10)
    listed = http.get(f"/api/v1/namespaces/{NS}/configmaps").json()
    http.post(f"/api/v1/namespaces/{NS}/configmaps", json={"metadata": {"name": "a", "labels": {"x": "1"}}})
    http.post(f"/api/v1/namespaces/{NS}/configmaps", json={"metadata": {"name": "b"}})
    http.delete(f"/api/v1/namespaces/{NS}/configmaps", params={"labelSelector": "x"})
    params = {
        "watch": "true",
        "resourceVersion": listed["metadata"]["resourceVersion"],
        "timeoutSeconds": "1",
    }
    events = [
        json.loads(line)
        for line in http.get(f"/api/v1/namespaces/{NS}/configmaps", params=params).text.splitlines()
    ]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("DELETED", "a"),
    ]
    # fabric8 asks for a WebSocket first; a 503 makes it fall back to this HTTP stream (as kubectl proxy)
    upgraded = http.get(
        f"/api/v1/namespaces/{NS}/configmaps", params=params, headers={"Upgrade": "websocket"}
    )
    assert upgraded.status_code == 503


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("a=1", True),
        ("a!=1", False),
        ("a", True),
        ("!a", False),
        ("b in (2, 3)", True),
        ("b notin (2)", False),
        ("a=1,!c", True),
    ],
)
def test_label_selectors(selector: str, expected: bool) -> None:
    assert label_match({"a": "1", "b": "2"}, selector) is expected


def test_a_call_from_a_child_in_its_own_session_is_the_pods_and_the_child_dies_with_the_pod(
    cluster: Cluster,
) -> None:
    """Prefect's runner starts the flow run in a new session; its calls are still the pod's, and when the
    pod's main process ends the child goes too (as a container's PID namespace would)."""
    http = httpx.Client(base_url=cluster.url, timeout=10)
    child = (
        "import os, time, urllib.request\n"
        "port = os.environ['KUBERNETES_SERVICE_PORT']\n"
        "urllib.request.urlopen(f'http://127.0.0.1:{port}/api/v1/namespaces/apps/pods').read()\n"
        "print(os.getpid(), flush=True)\n"
        "time.sleep(600)\n"
    )
    script = (
        "import subprocess, sys\n"
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}],\n"
        "                     start_new_session=True, stdout=subprocess.PIPE)\n"
        "print('child', p.stdout.readline().decode().strip(), flush=True)\n"
    )
    created = http.post(f"/apis/batch/v1/namespaces/{NS}/jobs", json=job(script)).json()
    name = created["metadata"]["name"]
    assert wait_for("job end", lambda: condition(cluster, name)) == "Complete"
    pod = pod_of(cluster, name)["metadata"]["name"]
    calls = [c for c in cluster.record if c.resource == "pods" and c.verb == "list"]
    assert [(c.identity, c.pod) for c in calls] == [("system:serviceaccount:apps:runner", pod)]
    pid = int(http.get(f"/api/v1/namespaces/{NS}/pods/{pod}/log").text.split()[-1])
    wait_for(
        "child killed",
        lambda: not Path(f"/proc/{pid}").exists() or " Z " in Path(f"/proc/{pid}/stat").read_text(),
    )
