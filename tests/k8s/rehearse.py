"""The cloud topology rehearsed on this machine: `python -m tests.k8s.rehearse` (docs/kubernetes.md).

What runs where:
- this process: moto's S3/STS/Glue server (a subprocess), SecantusDB seeded with PNAD-like documents (a
  subprocess), the IBGE stand-in (a thread), the Kubernetes API stand-in that also plays Job controller,
  garbage collector, kubelet and EKS pod identity webhook (threads; pods are processes);
- a real `prefect server start`, and the real prefect-kubernetes worker (`prefect worker start --type
  kubernetes`) polling the `vamosjuntos-eks` pool created from k8s/work-pool-base-job-template.json,
  pointed at the stand-in through a kubeconfig;
- `prefect deploy --all` of prefect.yaml (its deployments, template and images; the environment gets the
  endpoints of this machine, see `rehearsal_env`), then `prefect deployment run lakehouse/lakehouse-daily`.
  The worker submits the flow-run Job; its pod runs the flows with the Kubernetes Spark runner; each Spark
  step is a Job whose driver (client mode) creates executor pods through the API; they start through
  images/spark/entrypoint.sh. The lake is S3 (moto), Glue tables go to moto, DuckDB answers over S3.
- then the same documents through a local run (`vamosjuntos run`: Spark local mode, a lake folder) for
  the reference answers; then a `transform` run cancelled mid-step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import yaml

from flows.answers import LATEST
from flows.sources.local_mongo import SecantusProcess, free_port
from flows.sources.local_mongo_seed import seed
from tests.k8s.conftest import background, prefect, prefect_env, prefect_server_process
from tests.k8s.kubelet_standin import Cluster
from tests.k8s.rehearsal_cluster import (
    FLOW_RUN_REPOSITORY,
    IMAGE_TAG,
    NAMESPACE,
    REPO,
    SPARK_REPOSITORY,
    WORKER_USER,
    Admin,
    boot,
)
from tests.support.ibge_server import IbgeServer

POOL = "vamosjuntos-eks"
DATE = "2026-11-25"
REGION = "us-east-1"
BUCKETS = {
    "raw": "vj-raw-rehearsal",
    "processing": "vj-processing-rehearsal",
    "consumer": "vj-consumer-rehearsal",
}
LABEL_SPARK = "vamosjuntos.io/spark"
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
FAKE_KEYS = {"AWS_ACCESS_KEY_ID": "rehearsal", "AWS_SECRET_ACCESS_KEY": "rehearsal"}


def say(message: str) -> None:
    print(f"[rehearsal {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _wait(what: str, ready: Callable[[], Any], timeout_s: float, proc: subprocess.Popen | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}")
        try:
            value = ready()
            if value:
                return value
        except (httpx.HTTPError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready in {timeout_s:.0f} s")
        time.sleep(0.5)


@contextmanager
def moto(log: Path) -> Iterator[str]:
    """moto's server (S3, STS, Glue) in its own process; yields its endpoint."""
    port = free_port()
    cmd = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with background(cmd, {**os.environ}, log) as proc:
        endpoint = f"http://127.0.0.1:{port}"
        _wait("moto", lambda: httpx.get(f"{endpoint}/moto-api/", timeout=2).status_code < 500, 60, proc)
        yield endpoint


def rehearsal_env(cluster: Cluster, aws: str, ibge: IbgeServer) -> dict[str, str]:
    """What the flow runs get besides prefect.yaml's environment: where this machine's stand-ins are, and
    small Spark pods. In EKS none of these is set: the API is in-cluster, AWS is AWS, Athena answers."""
    return {
        "VAMOSJUNTOS_K8S_API_URL": cluster.url,
        "VAMOSJUNTOS_S3_ENDPOINT_URL": aws,
        "VAMOSJUNTOS_GLUE_ENDPOINT_URL": aws,
        # Athena's engine cannot run here: DuckDB answers; Glue tables still go to moto (engine=athena)
        "VAMOSJUNTOS_ANSWER_ENGINE": "duckdb",
        "VAMOSJUNTOS_IBGE_BASE_URL": ibge.base_url,
        "VAMOSJUNTOS_IBGE_SOURCE": "api",
        "VAMOSJUNTOS_SPARK_DRIVER_MEMORY_K8S": "512m",
        "VAMOSJUNTOS_SPARK_EXECUTOR_MEMORY": "512m",
        "VAMOSJUNTOS_SPARK_MAX_EXECUTORS": "1",
        "VAMOSJUNTOS_SPARK_SHUFFLE_PARTITIONS": "2",
    }


def deploy_env() -> dict[str, str]:
    """What `prefect deploy` reads in CI (prefect.yaml's header), for the stand-in images and moto buckets."""
    return {
        "IMAGE_TAG": IMAGE_TAG,
        "FLOW_RUN_REPOSITORY": FLOW_RUN_REPOSITORY,
        "SPARK_REPOSITORY": SPARK_REPOSITORY,
        **{f"VAMOSJUNTOS_{zone.upper()}_ROOT": f"s3://{bucket}" for zone, bucket in BUCKETS.items()},
        "VAMOSJUNTOS_AWS_REGION": REGION,
        "VAMOSJUNTOS_GLUE_DATABASE": "vamosjuntos",
        "VAMOSJUNTOS_ATHENA_WORKGROUP": "vamosjuntos",
    }


def rehearsal_prefect_yaml(target: Path, extra_env: dict[str, str]) -> Path:
    """prefect.yaml as committed, each deployment's env extended with `extra_env` (nothing removed)."""
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    for deployment in config["deployments"]:
        env = deployment["work_pool"]["job_variables"]["env"]
        for key, value in extra_env.items():
            env[key] = value
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def prefect_cli(
    args: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    done = prefect(args, env, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"prefect {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


@dataclass
class Rehearsal:
    """Everything started for one rehearsal, and what it saw."""

    state: Path
    aws: str
    mongo_uri: str
    ibge: IbgeServer
    cluster: Cluster
    admin: Admin
    api_url: str
    home: Path
    timings: dict[str, float] = field(default_factory=dict)

    # --- Prefect API --------------------------------------------------------------------------
    def api(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(method, f"{self.api_url}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json() if response.content else None

    def run_deployment(self, name: str, **params: str) -> str:
        args = ["deployment", "run", name]
        for key, value in params.items():
            args += ["--param", f"{key}={value}"]
        done = prefect_cli(args, prefect_env(self.home, self.api_url))
        for line in done.stdout.splitlines():
            if "UUID:" in line:
                return line.split("UUID:", 1)[1].strip()
        raise RuntimeError(f"no flow run id in: {done.stdout}")

    def flow_run(self, run_id: str) -> dict[str, Any]:
        return self.api("GET", f"/flow_runs/{run_id}")

    def wait_flow_run(self, run_id: str, timeout_s: float, until: set[str] = TERMINAL) -> dict[str, Any]:
        last = None
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.flow_run(run_id)
            state = run["state"]["type"]
            pods = self.pods()
            seen = (state, tuple(sorted(pods)))
            if seen != last:
                listed = ", ".join(f"{n} {p}" for n, p in pods.items()) or "-"
                say(f"flow run {run['name']}: {state}; pods: {listed}")
                last = seen
            if state in until:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"flow run {run_id} still {state} after {timeout_s:.0f} s\n{self.diagnostics()}"
                )
            time.sleep(2)

    # --- cluster --------------------------------------------------------------------------------
    def pods(self, selector: str | None = None) -> dict[str, str]:
        return {
            p["metadata"]["name"]: p["status"].get("phase", "?")
            for p in self.cluster.list(("", "pods"), NAMESPACE, selector)
        }

    def diagnostics(self, lines: int = 40) -> str:
        """The stand-in's record and the last lines of each pod's log: printed when something fails."""
        out = ["--- Kubernetes API calls (count, caller, verb, resource) ---"]
        counts = Counter(
            (c.identity, c.verb, f"{c.group or 'core'}:{c.resource}", c.status) for c in self.cluster.record
        )
        out += [
            f"{n:5} {who} {verb} {what} -> {status}"
            for (who, verb, what, status), n in sorted(counts.items())
        ]
        for log in sorted((self.state / "cluster" / "pods").glob("*/container.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- pod {log.parent.name} (last {len(tail)} lines) ---")
            out += tail
        for name in ("worker.log", "server.log"):
            path = self.home / name
            if path.exists():
                out.append(f"--- {name} (last {lines} lines) ---")
                out += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(out)

    # --- lake ------------------------------------------------------------------------------------
    def answers(self) -> list[dict[str, Any]]:
        s3 = boto3.client("s3", endpoint_url=self.aws, region_name=REGION, **_keys())
        body = s3.get_object(Bucket=BUCKETS["consumer"], Key=LATEST)["Body"].read()
        return json.loads(body)["answers"]

    def glue_tables(self) -> dict[str, str]:
        """The Glue tables, seen as the flow runs' IRSA role sees them (moto keeps them per account, and the
        role's account is the one in its ARN)."""
        sa = self.cluster.get(("", "serviceaccounts"), NAMESPACE, "prefect-flows")
        role = sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        sts = boto3.client("sts", endpoint_url=self.aws, region_name=REGION, **_keys())
        creds = sts.assume_role_with_web_identity(
            RoleArn=role, RoleSessionName="rehearsal-check", WebIdentityToken="rehearsal"
        )["Credentials"]
        glue = boto3.client(
            "glue",
            endpoint_url=self.aws,
            region_name=REGION,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )
        tables = glue.get_tables(DatabaseName="vamosjuntos")["TableList"]
        return {t["Name"]: t["StorageDescriptor"]["Location"] for t in tables}


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": FAKE_KEYS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": FAKE_KEYS["AWS_SECRET_ACCESS_KEY"],
    }


@contextmanager
def rehearsal(state: Path, rows: int = 3000, seed_value: int = 20203) -> Iterator[Rehearsal]:
    """Start every part (see module doc), deploy, and start the worker; yields when the worker polls."""
    state.mkdir(parents=True, exist_ok=True)
    home = state / "prefect"
    home.mkdir(exist_ok=True)
    with ExitStack() as stack:
        t0 = time.monotonic()
        aws = stack.enter_context(moto(state / "moto.log"))
        s3 = boto3.client("s3", endpoint_url=aws, region_name=REGION, **_keys())
        for bucket in BUCKETS.values():
            s3.create_bucket(Bucket=bucket)
        mongo = stack.enter_context(SecantusProcess(state / "mongo"))
        seed(mongo.uri, "ibge", "pnadc20203", rows, seed_value)
        ibge = stack.enter_context(IbgeServer())
        cluster, admin = boot(state / "cluster", sts_endpoint=aws)
        stack.callback(cluster.stop)
        stack.callback(admin.close)
        # The operator's one-off: the MongoDB URI as the Secret the job template reads (docs/kubernetes.md).
        admin.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "vamosjuntos-mongo", "namespace": NAMESPACE},
                "stringData": {"uri": mongo.uri},
            }
        )
        say(
            f"stand-ins up: moto {aws}, SecantusDB {mongo.uri} ({rows} documents), "
            f"Kubernetes API {cluster.url}"
        )
        api_url = stack.enter_context(prefect_server_process(home))
        env = prefect_env(home, api_url)
        prefect_cli(
            ["work-pool", "create", "--type", "kubernetes", "--base-job-template",
             str(REPO / "k8s" / "work-pool-base-job-template.json"), POOL],
            env,
        )  # fmt: skip
        prefect_file = rehearsal_prefect_yaml(state / "prefect.yaml", rehearsal_env(cluster, aws, ibge))
        prefect_cli(
            ["deploy", "--all", "--no-prompt", "--prefect-file", str(prefect_file)], {**env, **deploy_env()}
        )
        say(f"prefect server {api_url}: pool {POOL} from the committed template; prefect deploy --all done")
        kubeconfig = state / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(cluster.kubeconfig(WORKER_USER, NAMESPACE)))
        worker_env = {
            **env,
            "KUBECONFIG": str(kubeconfig),
            # as k8s/prefect-worker-values.yaml sets them
            "PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES": NAMESPACE,
            "PREFECT_WORKER_QUERY_SECONDS": "2",
        }
        worker_cmd = [
            sys.executable,
            "-m",
            "prefect",
            "worker",
            "start",
            "--pool",
            POOL,
            "--type",
            "kubernetes",
        ]
        worker = stack.enter_context(background(worker_cmd, worker_env, home / "worker.log"))
        r = Rehearsal(state, aws, mongo.uri, ibge, cluster, admin, api_url, home)
        _wait(
            "worker",
            lambda: any(w["name"] for w in r.api("POST", f"/work_pools/{POOL}/workers/filter", {})),
            120,
            worker,
        )
        r.timings["start"] = time.monotonic() - t0
        say(f"worker polling {POOL} ({r.timings['start']:.0f} s to here)")
        yield r


def local_answers(r: Rehearsal, lake: Path) -> list[dict[str, Any]]:
    """The same documents and IBGE data through a local run (Spark local mode, a lake folder, DuckDB)."""
    env = prefect_env(
        r.home,
        r.api_url,
        VAMOSJUNTOS_LAKE_ROOT=str(lake),
        VAMOSJUNTOS_MONGO_URI=r.mongo_uri,
        VAMOSJUNTOS_IBGE_BASE_URL=r.ibge.base_url,
        VAMOSJUNTOS_IBGE_SOURCE="api",
        VAMOSJUNTOS_SPARK_MASTER="local[2]",
        VAMOSJUNTOS_SPARK_DRIVER_MEMORY="1g",
        VAMOSJUNTOS_SPARK_SHUFFLE_PARTITIONS="2",
        SPARK_LOCAL_IP="127.0.0.1",
    )
    cli = str(Path(sys.executable).parent / "vamosjuntos")
    done = subprocess.run(
        [cli, "run", "--ingestion-date", DATE],
        env=env,
        cwd=lake.parent,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"local run failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    shown = subprocess.run(
        [cli, "answers", "--format", "json"],
        env=env,
        cwd=lake.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return json.loads(shown.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.k8s.rehearse", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=3000, help="PNAD-like documents to seed (default 3,000)")
    parser.add_argument("--keep", action="store_true", help="keep the state folder (logs, lake copies)")
    args = parser.parse_args(argv)
    state = Path(tempfile.mkdtemp(prefix="vamosjuntos-rehearsal-"))
    t0 = time.monotonic()
    with rehearsal(state, rows=args.rows) as r:
        run_id = r.run_deployment("lakehouse/lakehouse-daily", ingestion_date=DATE)
        run = r.wait_flow_run(run_id, timeout_s=3600)
        if run["state"]["type"] != "COMPLETED":
            print(r.diagnostics())
            return 1
        say(
            f"lakehouse-daily {run['state']['type']} in {time.monotonic() - t0:.0f} s; "
            f"Glue tables: {r.glue_tables()}"
        )
        print(json.dumps(r.answers(), ensure_ascii=False, indent=1))
    say(f"state kept in {state}" if args.keep else "done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
