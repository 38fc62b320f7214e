"""The Spark conf inside the driver pod (flows/spark/kubernetes/spark_conf.py), and a real driver using it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from flows.errors import ConfigurationError
from flows.settings import Settings
from flows.spark.jvm import INLINING, LOCAL_JVM_OPTIONS
from flows.spark.kubernetes.manifest import build_job_manifest
from flows.spark.kubernetes.names import (
    LABEL_SPARK,
)
from flows.spark.kubernetes.spark_conf import S3A_COMMITTER_CONF, spark_conf_for_kubernetes
from tests.k8s.conftest import REPO
from tests.spark.kubernetes.support import (
    ARGS,
    FLOW_RUN,
    STEP,
    cloud_settings,
)


# --- the Spark conf inside the driver pod ----------------------------------------------------------
def test_spark_conf_for_kubernetes():
    settings = cloud_settings(spark_max_executors=7, spark_executor_cpu="1500m")
    conf = spark_conf_for_kubernetes(
        settings, {"SPARK_DRIVER_POD_NAME": "vj-pnadc-to-processing-x7k2p", "SPARK_DRIVER_POD_IP": "10.1.2.3"}
    )
    assert conf["spark.master"] == "k8s://https://kubernetes.default.svc:443"
    assert conf["spark.kubernetes.container.image"] == settings.spark_image
    assert conf["spark.kubernetes.namespace"] == "vamosjuntos"
    assert conf["spark.kubernetes.driver.pod.name"] == "vj-pnadc-to-processing-x7k2p"
    assert conf["spark.driver.host"] == "10.1.2.3"
    # Spark 4 gives executors the driver's bind address (useDriverPodIP): it must be the pod IP too
    assert conf["spark.driver.bindAddress"] == "10.1.2.3"
    assert conf["spark.dynamicAllocation.enabled"] == "true"
    assert conf["spark.dynamicAllocation.shuffleTracking.enabled"] == "true"
    assert conf["spark.dynamicAllocation.maxExecutors"] == "7"
    assert conf["spark.executor.cores"] == "1"
    assert conf["spark.kubernetes.executor.request.cores"] == "1500m"
    assert conf["spark.hadoop.fs.s3a.aws.credentials.provider"].endswith(
        "WebIdentityTokenFileCredentialsProvider"
    )
    assert conf["spark.kubernetes.executor.label." + LABEL_SPARK] == "true"
    for key, value in S3A_COMMITTER_CONF.items():
        assert conf[key] == value
    # Executors run the tasks here: their JIT, like the driver's, compiles Spark's huge generated methods
    assert conf["spark.executor.extraJavaOptions"] == conf["spark.driver.extraJavaOptions"]
    assert "-XX:-DontCompileHugeMethods" in conf["spark.executor.extraJavaOptions"].split()
    # The local JVM's fixed young generation (flows/spark/jvm.py) is not the pods' (they are sized by
    # requests), nor are its inlining limits (measured on local runs only)
    assert not set(LOCAL_JVM_OPTIONS.split()) & set(conf["spark.driver.extraJavaOptions"].split())
    assert not set(INLINING.split()) & set(conf["spark.executor.extraJavaOptions"].split())
    assert all(isinstance(v, str) for v in conf.values())


# What a kubelet gives the driver container: the downward API of the Job, and the API server's address.
IN_CLUSTER = {
    "SPARK_DRIVER_POD_NAME": "vj-pnadc-to-processing-x7k2p",
    "SPARK_DRIVER_POD_IP": "10.1.2.3",
    "KUBERNETES_SERVICE_HOST": "172.20.0.1",
    "KUBERNETES_SERVICE_PORT": "443",
}


def test_in_cluster_the_driver_leaves_its_credentials_to_the_kubernetes_client():
    """No token file read once into a fixed token: fabric8's in-cluster configuration reads, refreshes it."""
    conf = spark_conf_for_kubernetes(cloud_settings(), IN_CLUSTER)
    credentials = ("oauthToken", "oauthTokenFile", "caCertFile", "clientKeyFile", "clientCertFile")
    assert not [k for k in conf if k.startswith("spark.kubernetes.authenticate") and k.endswith(credentials)]
    assert conf["spark.master"] == "k8s://https://172.20.0.1:443"  # where fabric8's in-cluster config points
    assert conf["spark.kubernetes.executor.podTemplateFile"] == "/opt/spark/conf/executor-pod-template.yaml"


def test_with_an_api_url_the_driver_uses_it_as_master(monkeypatch):
    """`k8s_api_url` (a kubectl proxy, the rehearsal's API stand-in) reaches the driver through its Job's env
    and becomes its master; the executor pod template follows SPARK_CONF_DIR."""
    url = "http://127.0.0.1:18080/"
    job = build_job_manifest(STEP, ARGS, cloud_settings(url), flow_run_id=FLOW_RUN)
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "VAMOSJUNTOS_K8S_API_URL", "value": url} in env
    for entry in env:  # the driver reads its settings from that env, as in its pod
        if entry["name"].startswith("VAMOSJUNTOS_") and "value" in entry:
            monkeypatch.setenv(entry["name"], entry["value"])
    driver_settings = Settings(_env_file=None)
    conf = spark_conf_for_kubernetes(driver_settings, {**IN_CLUSTER, "SPARK_CONF_DIR": "/tmp/rehearsal/conf"})
    assert conf["spark.master"] == "k8s://http://127.0.0.1:18080"
    template = conf["spark.kubernetes.executor.podTemplateFile"]
    assert template == "/tmp/rehearsal/conf/executor-pod-template.yaml"


def test_spark_conf_outside_a_driver_pod_says_what_to_do():
    with pytest.raises(ConfigurationError, match="SPARK_DRIVER_POD_NAME"):
        spark_conf_for_kubernetes(cloud_settings(), {})


# What only the flow-run pod runs: a driver pod that imports none of it has no HTTP client to load.
FLOW_RUN_SIDE = (
    "flows.spark.kubernetes.api",
    "flows.spark.kubernetes.job_follower",
    "flows.spark.kubernetes.job_status",
    "flows.spark.kubernetes.log_follower",
    "flows.spark.kubernetes.manifest",
    "flows.spark.kubernetes.owner_pod",
    "flows.spark.kubernetes.step_runner",
    "flows.spark.kubernetes.timing",
    "httpx",
    "prefect",
)


def _loaded(modules: list[str]) -> list[str]:
    return sorted(m for m in FLOW_RUN_SIDE if m in modules)


IMPORTS = """
import importlib, json, sys
from flows.settings import Settings
from flows.spark.runner import STEPS
for step in STEPS:  # what `python -m flows.spark.jobs.<step>` loads
    importlib.import_module(f"flows.spark.jobs.{step}")
# what the session builder adds when the master is k8s:// (it imports the conf module lazily)
from flows.spark.kubernetes.spark_conf import spark_conf_for_kubernetes
downward_api = {"SPARK_DRIVER_POD_NAME": "d", "SPARK_DRIVER_POD_IP": "10.0.0.1"}
spark_conf_for_kubernetes(Settings(_env_file=None), downward_api)
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after(script: str) -> list[str]:
    """The modules a fresh interpreter has loaded after `script`, which prints them as its last line."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_the_driver_side_imports_no_api_client_follower_or_manifest():
    """A fresh interpreter, as in the driver pod: the step entrypoints and the Spark conf load none of the
    flow-run pod's modules (the API client, the followers, the manifest) nor httpx."""
    modules = _modules_after(IMPORTS)
    assert "flows.spark.kubernetes.spark_conf" in modules and "pyspark" in modules
    assert _loaded(modules) == []


DRIVER = """
from flows.settings import Settings
from flows.spark.session import spark_session
spark_session(Settings(_env_file=None))  # no kubelet here: its executors never start; the test stops it
"""


def test_a_real_spark_driver_uses_the_api_url_without_a_token_and_the_conf_dirs_pod_template(kube, tmp_path):
    """PySpark 4.3 as the driver, configured the way its Job's pod configures it (the Job's env, the
    downward API, SPARK_CONF_DIR): its Kubernetes client calls `k8s_api_url` with no bearer token, and the
    executor pods it asks for come from the pod template in SPARK_CONF_DIR, owned by the driver pod."""
    import yaml

    driver = kube.add_pod("vj-pnadc-to-processing-drv01")
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    template = yaml.safe_load((REPO / "images" / "spark" / "executor-pod-template.yaml").read_text())
    template["metadata"]["labels"]["vamosjuntos.io/template-from"] = "spark-conf-dir"
    (conf_dir / "executor-pod-template.yaml").write_text(yaml.safe_dump(template))
    settings = cloud_settings(kube.url, spark_driver_memory_k8s="512m", spark_executor_memory="512m")
    job = build_job_manifest(STEP, ARGS, settings, flow_run_id=FLOW_RUN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAMOSJUNTOS_")}
    env.update(
        {
            e["name"]: e["value"]
            for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
            if "value" in e
        }
    )
    env.update(
        PYTHONPATH=str(REPO),
        HOME=str(tmp_path),
        SPARK_LOCAL_DIRS=str(tmp_path / "spark-local"),
        SPARK_DRIVER_POD_NAME=driver["metadata"]["name"],
        SPARK_DRIVER_POD_IP="127.0.0.1",
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_CONF_DIR=str(conf_dir),
    )
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    log = (tmp_path / "driver.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not kube.calls("POST", f"/namespaces/{kube.namespace}/pods"):
            assert proc.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the driver never asked for an executor pod"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        log.close()
    first = kube.requests[0]
    assert (first.method, first.path) == (
        "GET",
        f"/api/v1/namespaces/vamosjuntos/pods/{driver['metadata']['name']}",
    )
    assert not [r for r in kube.requests if "authorization" in {h.lower() for h in r.headers}]
    executor = kube.calls("POST", f"/namespaces/{kube.namespace}/pods")[0].body
    assert executor["metadata"]["labels"]["vamosjuntos.io/template-from"] == "spark-conf-dir"
    assert executor["metadata"]["labels"][LABEL_SPARK] == "true"
    assert executor["spec"]["automountServiceAccountToken"] is False
    [owner] = executor["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "Pod",
        driver["metadata"]["name"],
        driver["metadata"]["uid"],
    )


def test_an_executor_cpu_that_is_no_quantity_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="VAMOSJUNTOS_SPARK_EXECUTOR_CPU"):
        spark_conf_for_kubernetes(cloud_settings(spark_executor_cpu="one"), IN_CLUSTER)


def test_the_spark_conf_module_loads_without_pyspark():
    """The conf (the Job manifest's side names it too) and the JVM options it passes load no PySpark."""
    modules = _modules_after(
        "import json, sys\nimport flows.spark.kubernetes.spark_conf\nprint(json.dumps(sorted(sys.modules)))"
    )
    assert "flows.spark.jvm" in modules and not [m for m in modules if m.split(".")[0] == "pyspark"]
