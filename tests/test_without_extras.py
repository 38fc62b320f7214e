"""The package without its extras, as the flow-run image installs it: no PySpark (the `spark` extra), no
embedded MongoDB stand-in (the `local` extra).

Each check runs in a fresh interpreter whose import system refuses the missing package (a meta-path finder
raising ModuleNotFoundError, exactly what Python raises for a package that is not installed), then runs the
code path a pod or a person would take.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from tests.k8s.kube_standin import KubeStandIn, Scenario

REPO = Path(__file__).resolve().parents[1]


def _blocked(package: str) -> str:
    return textwrap.dedent(
        f"""
        import sys

        class _NotInstalled:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == {package!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None

        sys.meta_path.insert(0, _NotInstalled())
        """
    )


def _run(script: str, tmp_path: Path, timeout: int = 240, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VAMOSJUNTOS_", "PREFECT_"))}
    clean.update(
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        VAMOSJUNTOS_LAKE_ROOT=str(tmp_path / "lake"),
        PYTHONPATH=str(REPO),
        **env,
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- packaging --------------------------------------------------------------------------------
def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()


def test_pyspark_is_an_extra_and_local_setups_install_it():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = {_name(r) for r in project["dependencies"]}
    assert "pyspark" not in core, "the flow-run image would carry ~450 MB it never runs"
    assert "secantusdb" not in core, "GPL-2.0 stand-in: only the local extra"
    extras = project["optional-dependencies"]
    assert {_name(r) for r in extras["spark"]} == {"pyspark"}
    # .ci/setup: both profiles run Spark locally
    setup = (REPO / ".ci" / "setup").read_text()
    profiles = re.findall(r'extras="([^"]+)"', setup)
    assert len(profiles) == 2 and all("spark" in p.split(",") and "local" in p.split(",") for p in profiles)
    assert "dev" in profiles[1].split(",")
    # Spark Connect's client is its own extra, which both profiles install; the Spark image goes without.
    assert {_name(r) for r in extras["connect"]} == {"pyspark"} and "[connect]" in extras["connect"][0]
    assert all("connect" in p.split(",") for p in profiles)


# --- the flow-run pod: no PySpark ---------------------------------------------------------------
def test_flow_run_pod_imports_its_flows_and_starts_a_spark_job_without_pyspark(tmp_path):
    """What the flow-run pod runs: Prefect loads the deployment entrypoints from flows/pipeline.py (the CLI
    module too), and a Spark step goes to the Kubernetes runner, which creates the driver Job."""
    script = _blocked("pyspark") + textwrap.dedent(
        f"""
        import logging
        from prefect.flows import load_flow_from_entrypoint

        import flows.cli
        from flows import catalog
        from flows.settings import Settings
        from flows.spark.runner import run_step

        for name in ("lakehouse", "ingest_ibge", "ingest_pnadc", "transform", "publish", "answer"):
            load_flow_from_entrypoint({str(REPO / "flows" / "pipeline.py")!r} + ":" + name)
        assert set(catalog.CONSUMER) >= {{"publico_alvo", "ufs"}}
        logging.basicConfig(level=logging.INFO)
        run_step("ibge_to_processing", Settings(), "2026-11-25", logger=logging.getLogger("step"),
                 flow_run_id="f-1")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "pyspark")
        print("PYSPARK_MODULES", loaded)
        """
    )
    with KubeStandIn() as kube:
        kube.next_scenario = Scenario("success")
        result = _run(
            script,
            tmp_path,
            VAMOSJUNTOS_SPARK_RUNNER="kubernetes",
            VAMOSJUNTOS_K8S_API_URL=kube.url,
            VAMOSJUNTOS_SPARK_IMAGE="registry.example/spark:0123456789ab",
        )
        posts = kube.job_posts
    assert result.returncode == 0, result.stderr[-3000:]
    assert "PYSPARK_MODULES []" in result.stdout
    assert len(posts) == 1
    container = posts[0].body["spec"]["template"]["spec"]["containers"][0]
    assert "flows.spark.jobs.ibge_to_processing" in " ".join(container.get("command", []) + container["args"])


def test_a_local_run_without_pyspark_says_how_to_install_it(tmp_path):
    script = _blocked("pyspark") + textwrap.dedent(
        """
        import logging
        from flows.errors import ConfigurationError
        from flows.settings import Settings
        from flows.spark.runner import run_step

        try:
            run_step("ibge_to_processing", Settings(), "2026-11-25", logger=logging.getLogger("step"))
        except ConfigurationError as exc:
            print("RUNNER:", exc)
        from flows.cli import main
        main(["run", "--rows", "10"])
        """
    )
    result = _run(script, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    runner_says = next(line for line in result.stdout.splitlines() if line.startswith("RUNNER:"))
    for said in (runner_says, result.stderr):
        assert "PySpark is not installed" in said, said
        assert "pip install 'vamosjuntos-lakehouse[spark]'" in said, said
        assert "VAMOSJUNTOS_SPARK_RUNNER=kubernetes" in said, said
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "lake" / "raw").exists(), "the CLI says so before ingesting anything"


# --- no MongoDB URI and no stand-in -------------------------------------------------------------
def test_no_mongo_uri_without_the_stand_in_says_what_to_do(tmp_path):
    """The lakehouse flow's body with VAMOSJUNTOS_MONGO_URI unset, where SecantusDB is not installed (the
    flow-run image): it fails naming the variable, the missing extra and the cloud's secret, before
    anything runs. (`.fn`: the body without Prefect's engine, which adds nothing to this path.)"""
    script = _blocked("secantus") + textwrap.dedent(
        """
        import datetime as dt
        from flows.pipeline import lakehouse

        try:
            lakehouse.fn(rows=10, ingestion_date=dt.date(2026, 11, 25))
        except Exception as exc:
            print("ERROR", type(exc).__name__, exc)
        """
    )
    result = _run(script, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    error = next((line for line in result.stdout.splitlines() if line.startswith("ERROR")), result.stdout)
    assert error.startswith("ERROR ConfigurationError VAMOSJUNTOS_MONGO_URI is unset"), error
    assert "the `local` extra" in error and "`vamosjuntos-mongo` secret" in error, error
    assert "docs/kubernetes.md" in error
    assert not (tmp_path / "lake" / "raw").exists(), "nothing ran before the check"


# --- a local run on a Spark Connect server without the `connect` extra --------------------------------
def test_a_spark_remote_without_the_connect_extra_names_the_extra_before_anything_runs(tmp_path):
    script = _blocked("grpc") + textwrap.dedent(
        """
        import flows.cli
        sys.exit(flows.cli.main(["run", "--rows", "100"]))
        """
    )
    result = _run(script, tmp_path, VAMOSJUNTOS_SPARK_REMOTE="sc://localhost:15002/;token=s3cr3t")
    assert result.returncode != 0
    assert "`connect` extra" in result.stderr
    assert "pip install 'vamosjuntos-lakehouse[connect]'" in result.stderr
    assert "s3cr3t" not in result.stderr + result.stdout
    assert not (tmp_path / "lake" / "raw").exists()
