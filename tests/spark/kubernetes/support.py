"""What the Spark-on-Kubernetes tests share: the cloud's settings, one step, a fast timing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from flows.settings import Settings
from flows.spark.kubernetes.names import OWNER_POD_ENV
from flows.spark.kubernetes.step_runner import run_step_on_kubernetes
from flows.spark.kubernetes.timing import JobTiming
from tests.k8s.kube_standin import KubeStandIn

FAST = JobTiming(poll_interval_s=0.01, fatal_waiting_grace_s=0.0, deadline_slack_s=5.0, log_tail_lines=5)
FLOW_RUN = "0b5e7c9a-1f0e-4d3b-9a51-3c1d2e4f5a6b"
STEP = "pnadc_to_processing"
ARGS = ["--ingestion-date", "2026-11-25"]


def cloud_settings(api_url: str | None = None, **overrides) -> Settings:
    values = dict(
        spark_runner="kubernetes",
        spark_image="123456789012.dkr.ecr.us-east-1.amazonaws.com/vamosjuntos-spark:3f2a9c1",
        k8s_namespace="vamosjuntos",
        k8s_api_url=api_url,
        raw_root="s3://vj-raw",
        processing_root="s3://vj-processing",
        consumer_root="s3://vj-consumer",
        spark_job_deadline_s=600,
        mongo_uri="mongodb://user:s3cr3t-pass@mongo.example:27017",
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


def run(kube: KubeStandIn, logger, step=STEP, args=ARGS, **kw):
    run_step_on_kubernetes(
        step,
        list(args),
        cloud_settings(kube.url),
        flow_run_id=FLOW_RUN,
        task_run_id="task-1",
        logger=logger,
        timing=FAST,
        **kw,
    )


FLOW_RUN_POD = "transform-7f9c2-x4k8q"


def in_flow_run_pod(kube: KubeStandIn, namespace: str = "vamosjuntos") -> dict[str, str]:
    """The environment the work pool's job template gives the flow-run container (downward API)."""
    pod = kube.add_pod(FLOW_RUN_POD, {"app.kubernetes.io/component": "flow-run"})
    return {
        OWNER_POD_ENV["name"]: pod["metadata"]["name"],
        OWNER_POD_ENV["uid"]: pod["metadata"]["uid"],
        OWNER_POD_ENV["namespace"]: namespace,
    }


class _Forbidden(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b'{"kind":"Status","reason":"Forbidden","code":403}'
        self.send_response(403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def forbidding_api() -> Iterator[str]:
    """An API server that answers every call 403, as one would to a service account without the Role;
    yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Forbidden)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
