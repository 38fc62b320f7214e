"""Write the Jobs this project creates at run time as YAML, for static scanners (.ci/checkov-k8s.sh).

    python tests/k8s/render_examples.py OUT_DIR

- `spark-step-job.yaml`: a Spark step's driver Job as flows/spark/kubernetes/manifest.py renders it;
- `flow-run-job.yaml`: a flow run's Job as the Prefect Kubernetes worker renders it from
  k8s/work-pool-base-job-template.json (its own code, offline);
- `executor-pod-template.yaml` is the Spark executor pod template of images/spark, copied as is.
Names are fixed (the API server would generate them) so scanners can name the resources.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/vamosjuntos-{}:3f2a9c1d0e4b"


def spark_step_job() -> dict:
    from flows.settings import Settings
    from flows.spark.kubernetes.manifest import build_job_manifest

    settings = Settings(_env_file=None, spark_image=IMAGE.format("spark"), raw_root="s3://vj-raw")
    job = build_job_manifest(
        "pnadc_to_processing", ["--ingestion-date", "2026-11-25"], settings, flow_run_id=str(uuid.uuid4())
    )
    job["metadata"]["name"] = "vj-pnadc-to-processing-example"
    return job


def flow_run_job() -> dict:
    from prefect.client.schemas.objects import Flow, FlowRun
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    template = json.loads((REPO / "k8s" / "work-pool-base-job-template.json").read_text())
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        config = asyncio.run(
            KubernetesWorkerJobConfiguration.from_template_and_values(
                template, {"image": IMAGE.format("flow-run")}
            )
        )
        flow = Flow(id=uuid.uuid4(), name="lakehouse")
        config.prepare_for_flow_run(FlowRun(id=uuid.uuid4(), name="example", flow_id=flow.id), flow=flow)
    job = config.job_manifest
    job["metadata"]["name"] = "flow-run-example"
    return job


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "spark-step-job.yaml").write_text(yaml.safe_dump(spark_step_job(), sort_keys=False))
    (out / "flow-run-job.yaml").write_text(yaml.safe_dump(flow_run_job(), sort_keys=False))
    shutil.copy(REPO / "images" / "spark" / "executor-pod-template.yaml", out / "executor-pod-template.yaml")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
