"""The invariants of issue 7, checked on the real terraform/ (the checkers themselves are shown to fail on
broken input in test_terraform_checkers_fail.py)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import hcl_eval
import pytest
import tf_invariants as tfi

TF_FILES = sorted(tfi.TERRAFORM.rglob("*.tf"))
DOCS = tfi.REPO / "docs" / "terraform.md"


@pytest.fixture(scope="module")
def stack() -> dict[str, tfi.Module]:
    return tfi.load_stack()


@pytest.fixture(scope="module")
def root(stack: dict[str, tfi.Module]) -> tfi.Module:
    return stack["root"]


def _rel(path: Path) -> str:
    return str(path.relative_to(tfi.REPO))


def test_there_is_terraform_to_check() -> None:
    names = {p.name for p in TF_FILES}
    assert {"versions.tf", "variables.tf", "s3.tf", "iam.tf", "eks.tf", "outputs.tf"} <= names


@pytest.mark.parametrize("path", TF_FILES, ids=_rel)
def test_every_tf_file_parses(path: Path) -> None:
    parsed = tfi.parse_hcl(path.read_text(encoding="utf-8"))
    assert isinstance(parsed, dict) and parsed, f"{path} parsed to nothing"


@pytest.mark.parametrize("path", TF_FILES, ids=_rel)
def test_every_tf_file_is_fmt_formatted(path: Path) -> None:
    assert tfi.fmt_problems(path.read_text(encoding="utf-8"), _rel(path)) == []


def test_modules_load_without_duplicates(stack: dict[str, tfi.Module]) -> None:
    assert set(stack) == {"root", "lake_bucket"}


# --- S3 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("label", ["root", "lake_bucket"])
def test_every_bucket_is_kms_encrypted_private_versioned_tls_only(stack, label: str) -> None:
    assert tfi.bucket_problems(stack[label]) == []


def test_every_bucket_is_checked(stack) -> None:
    """No bucket hides from the bucket checker: the root has only the log bucket, the rest come from the
    one module the checker covers, called for each lake zone."""
    assert set(stack["root"].of_type("aws_s3_bucket")) == {"logs"}
    assert set(stack["lake_bucket"].of_type("aws_s3_bucket")) == {"this"}
    sources = {c.get("source") for c in stack["root"].modules.values()}
    assert sources == {"./modules/lake_bucket"}


def test_lake_buckets_come_from_the_hardened_module(root) -> None:
    assert tfi.lake_bucket_call_problems(root) == []


def test_bucket_allow_lists_are_in_use(root) -> None:
    buckets = {f"root:{n}" for n in root.of_type("aws_s3_bucket")}
    assert set(tfi.SSE_S3_BUCKETS_ALLOWED) <= buckets
    assert set(tfi.ACCESS_LOGGING_EXEMPT) <= buckets


# --- Glue / Athena ----------------------------------------------------------------------------


def test_workgroup_enforces_cutoff_metrics_and_encryption(root) -> None:
    assert tfi.workgroup_problems(root) == []


def test_cutoff_is_a_variable_with_a_sane_default(root) -> None:
    conf = tfi.first(root.of_type("aws_athena_workgroup")["this"]["configuration"])
    assert conf["bytes_scanned_cutoff_per_query"] == "${var.athena_bytes_scanned_cutoff_per_query}"
    assert root.variables["athena_bytes_scanned_cutoff_per_query"]["default"] == 10 * 1024**3


def test_glue_database_matches_the_settings_default(root) -> None:
    assert root.variables["glue_database_name"]["default"] == "vamosjuntos"
    assert root.variables["athena_workgroup_name"]["default"] == "vamosjuntos"
    assert "aws_glue_catalog_database" in root.resources


# --- IAM --------------------------------------------------------------------------------------


def test_no_wildcard_iam_statement_outside_the_allow_list(stack) -> None:
    assert tfi.iam_problems(stack) == []


def test_allow_list_has_no_stale_entries(stack) -> None:
    assert tfi.allow_list_usage(stack) == set()


def test_allow_listed_statements_carry_a_comment_at_the_statement() -> None:
    """The reason for a '*' is written in the .tf right at the statement, not only in this test."""
    sources = {p: p.read_text(encoding="utf-8") for p in TF_FILES}
    for key in tfi.IAM_WILDCARD_ALLOWED:
        module, doc, sid = key.split(":")
        assert module == "root"
        header = f'data "aws_iam_policy_document" "{doc}" {{'
        path, text = next((p, t) for p, t in sources.items() if header in t)
        block = text[text.index(header) :]
        lines = block.split("\n")
        sid_line = next(i for i, line in enumerate(lines) if re.search(rf'sid\s*=\s*"{sid}"', line))
        start = max(i for i in range(sid_line) if lines[i].strip() == "statement {")
        comments = [line for line in lines[start:sid_line] if line.strip().startswith("#")]
        assert any("*" in c for c in comments), (
            f"{_rel(path)} {doc}/{sid}: no comment giving the reason for '*'"
        )


def test_irsa_trusts_are_pinned_to_one_service_account(root) -> None:
    assert tfi.irsa_trust_problems(root) == []


def test_irsa_roles_exist_for_the_expected_service_accounts(root) -> None:
    accounts = root.locals["irsa_service_accounts"]
    assert accounts["prefect_flows"] == {
        "namespace": "${var.k8s_namespace}",
        "service_account": "${var.flows_service_account}",
    }
    assert accounts["spark"] == {
        "namespace": "${var.k8s_namespace}",
        "service_account": "${var.spark_service_account}",
    }
    assert root.variables["k8s_namespace"]["default"] == "vamosjuntos"
    assert root.variables["flows_service_account"]["default"] == "prefect-flows"
    assert root.variables["spark_service_account"]["default"] == "spark-driver"
    assert root.of_type("aws_iam_role")["irsa"]["for_each"] == "${local.irsa_service_accounts}"


def _actions_and_resources(root: tfi.Module, doc: str) -> tuple[set[str], list[str]]:
    actions: set[str] = set()
    resources: list[str] = []
    for stmt in tfi.statements(root.policy_documents()[doc]):
        actions |= set(tfi.as_list(stmt.get("actions")))
        resources += [str(r) for r in tfi.as_list(stmt.get("resources"))]
    return actions, resources


def test_spark_role_is_limited_to_the_zones_and_the_lake_key(root) -> None:
    actions, resources = _actions_and_resources(root, "spark")
    assert {a.split(":")[0] for a in actions} == {"s3", "kms"}, "Spark needs neither Glue nor Athena"
    for r in resources:
        assert re.search(r"module\.(raw|processing|consumer)_bucket\.arn|aws_kms_key\.lake\.arn", r), r
    # Spark reads raw but never writes it.
    for stmt in tfi.statements(root.policy_documents()["spark"]):
        if any("raw_bucket" in str(r) for r in tfi.as_list(stmt.get("resources"))):
            assert not {"s3:PutObject", "s3:DeleteObject"} & set(tfi.as_list(stmt.get("actions"))), stmt


def test_flows_role_is_limited_to_lake_catalog_workgroup_and_key(root) -> None:
    actions, resources = _actions_and_resources(root, "prefect_flows")
    assert {a.split(":")[0] for a in actions} == {"s3", "glue", "athena", "kms"}
    allowed = (
        r"module\.(raw|processing|consumer|athena_results)_bucket\.arn",
        r"local\.glue_(catalog|database|tables)_arn",
        r"aws_athena_workgroup\.this\.arn",
        r"aws_kms_key\.lake\.arn",
    )
    for r in resources:
        assert any(re.search(p, r) for p in allowed), r
    # flows write the raw zone, Athena's results prefix and their own records (gate, answers, report):
    # never the processing or consumer tables, which only Spark writes
    records = (
        "processing_bucket.arn}/_quality/*",
        "consumer_bucket.arn}/_answers/*",
        "consumer_bucket.arn}/_reports/*",
    )
    for stmt in tfi.statements(root.policy_documents()["prefect_flows"]):
        if "s3:PutObject" in tfi.as_list(stmt.get("actions")):
            for r in tfi.as_list(stmt.get("resources")):
                assert "raw_bucket" in r or "athena_results_prefix" in r or r.endswith(records), r


def test_kms_use_is_only_through_s3_or_athena(root) -> None:
    for doc in ("prefect_flows", "spark"):
        for stmt in tfi.statements(root.policy_documents()[doc]):
            if any(str(a).startswith("kms:") for a in tfi.as_list(stmt.get("actions"))):
                variables = {c.get("variable") for c in tfi.as_list(stmt.get("condition"))}
                assert "kms:ViaService" in variables, f"{doc}/{stmt.get('sid')}"


# --- ECR, EKS, pins ---------------------------------------------------------------------------


def test_ecr_repositories_immutable_scanned_encrypted_expiring(root) -> None:
    assert tfi.ecr_problems(root) == []
    assert set(root.locals["ecr_repositories"]) == {"flow_run", "spark"}


def test_eks_cluster_nodes_and_irsa(root) -> None:
    assert tfi.eks_problems(root) == []


def test_spark_executor_nodes_are_tainted(root) -> None:
    spark = root.of_type("aws_eks_node_group")["spark"]
    taint = tfi.first(spark["taint"])
    assert taint["effect"] == "NO_SCHEDULE"
    assert "taint" not in root.of_type("aws_eks_node_group")["flows"]


@pytest.mark.parametrize("label", ["root", "lake_bucket"])
def test_providers_and_modules_are_pinned(stack, label: str) -> None:
    assert tfi.pin_problems(stack[label]) == []


# --- outputs and docs -------------------------------------------------------------------------


def test_app_env_has_exactly_the_settings_keys(root) -> None:
    assert tfi.app_env_problems(root) == []


def test_app_env_keys_are_real_settings() -> None:
    """Each VAMOSJUNTOS_* key names a field of flows/settings.py (env_prefix VAMOSJUNTOS_)."""
    settings = (tfi.REPO / "flows" / "settings.py").read_text(encoding="utf-8")
    for key in tfi.APP_ENV_KEYS:
        field = key.removeprefix("VAMOSJUNTOS_").lower()
        assert re.search(rf"^\s+{field}\s*:", settings, re.M), f"{key}: no field {field} in flows/settings.py"


def test_outputs_the_consumers_need(root) -> None:
    wanted = {
        "region",
        "raw_bucket",
        "processing_bucket",
        "consumer_bucket",
        "athena_results_bucket",
        "glue_database",
        "athena_workgroup",
        "ecr_flow_run_repository_url",
        "ecr_spark_repository_url",
        "cluster_name",
        "prefect_flows_role_arn",
        "spark_role_arn",
        "app_env",
    }
    assert wanted <= set(root.outputs)
    for name, body in root.outputs.items():
        assert body.get("description"), f"output {name} has no description"


def test_every_variable_is_typed_and_described(stack) -> None:
    for label, mod in stack.items():
        for name, body in mod.variables.items():
            assert body.get("type"), f"{label}: variable {name} has no type"
            assert body.get("description"), f"{label}: variable {name} has no description"


CHECKOV_SKIP = re.compile(r"#\s*checkov:skip=(CKV2?_[A-Z0-9_]+)(?::(.*))?")


def test_checkov_skips_are_few_justified_and_documented() -> None:
    skips = []
    for path in TF_FILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            m = CHECKOV_SKIP.search(line)
            if m:
                skips.append((path, m.group(1), (m.group(2) or "").strip()))
    assert skips, "expected the documented inline skips"
    docs = DOCS.read_text(encoding="utf-8")
    for path, check_id, reason in skips:
        assert len(reason) >= 30, f"{_rel(path)}: {check_id} skipped without a real reason"
        assert check_id in docs, f"{check_id} skipped in {_rel(path)} but not listed in docs/terraform.md"
    assert len({c for _, c, _ in skips}) <= 8, "the skip list is meant to stay short"
    assert not (tfi.TERRAFORM / ".checkov.yaml").exists() or "skip-check" not in (
        tfi.TERRAFORM / ".checkov.yaml"
    ).read_text(encoding="utf-8"), "skips belong inline, at the resource"


def test_docs_cover_first_run_and_link_the_kubernetes_part() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    for needle in (
        "terraform init",
        "terraform apply",
        "app_env",
        "docker push",
        "kubernetes.md",
        "checkov.sh",
    ):
        assert needle in docs, needle


# --- what `terraform plan` would say about the example variables --------------------------------


def _git_sha() -> str:
    """The tag CI gives the images: the commit's 12-character SHA."""
    out = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=tfi.REPO, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def _plan_values(root: tfi.Module, given: dict[str, Any]) -> dict[str, Any]:
    values = {name: body.get("default") for name, body in root.variables.items()}
    values.update(given)
    missing = [name for name, body in root.variables.items() if "default" not in body and name not in given]
    assert not missing, f"terraform would ask for {missing}"
    return values


def _failed(root: tfi.Module, values: dict[str, Any]) -> list[str]:
    problems = []
    for name, body in root.variables.items():
        problems += hcl_eval.failed_validations(body, name, values)
    return problems


def test_tfvars_example_passes_every_variable_validation(root) -> None:
    """The example, with the image tag CI passes (TF_VAR_image_tag), is what `terraform plan` accepts:
    every validation block of every variable, evaluated."""
    example = tfi.parse_hcl((tfi.TERRAFORM / "terraform.tfvars.example").read_text(encoding="utf-8"))
    assert set(example) <= set(root.variables), set(example) - set(root.variables)
    values = _plan_values(root, {**example, "image_tag": _git_sha()})
    assert _failed(root, values) == []
    # kubectl/helm from a workstation: the example's CIDRs come with the public endpoint they are for
    assert example["cluster_endpoint_public_access_cidrs"]
    assert example["cluster_endpoint_public_access"] is True


@pytest.mark.parametrize(
    ("public", "cidrs", "ok"),
    [
        (True, ["203.0.113.0/24"], True),
        (False, [], True),
        (False, ["203.0.113.0/24"], False),  # CIDRs for an endpoint that is off: kubectl times out
        (True, [], False),  # a public endpoint with no CIDR is open to 0.0.0.0/0
        (True, ["0.0.0.0/0"], False),
        (True, ["203.0.113.0/33"], False),
    ],
)
def test_public_endpoint_and_its_cidrs_are_validated_together(root, public, cidrs, ok) -> None:
    values = _plan_values(
        root,
        {
            "cluster_endpoint_public_access": public,
            "cluster_endpoint_public_access_cidrs": cidrs,
            "image_tag": _git_sha(),
        },
    )
    assert (_failed(root, values) == []) is ok, _failed(root, values)


def test_docs_say_how_to_reach_the_cluster() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    assert "cluster_endpoint_public_access = true" in docs
    assert "cluster_endpoint_public_access_cidrs" in docs
    assert "aws eks update-kubeconfig" in docs


def test_vpc_cni_enforces_network_policies(root) -> None:
    """Without the add-on's network policy agent, k8s/network-policy.yaml applies and does nothing."""
    addons = {b["addon_name"]: b for b in root.of_type("aws_eks_addon").values()}
    config = json.loads(hcl_eval.evaluate(addons["vpc-cni"]["configuration_values"]))
    assert config["enableNetworkPolicy"] == "true"  # the add-on's schema: a string


def test_nat_public_ips_are_output_and_documented(root) -> None:
    """Flow-run pods reach MongoDB Atlas from the NAT gateways' Elastic IPs: Atlas must allow them."""
    output = root.outputs["nat_public_ips"]
    assert output["value"] == "${aws_eip.nat[*].public_ip}"
    assert set(root.of_type("aws_eip")) == {"nat"}
    nat = root.of_type("aws_nat_gateway")["this"]
    assert nat["allocation_id"] == "${aws_eip.nat[count.index].id}"
    docs = DOCS.read_text(encoding="utf-8")
    assert "terraform output -json nat_public_ips" in docs
    assert "IP access list" in docs and "Atlas" in docs


# --- images: one tag scheme ---------------------------------------------------------------------


def test_one_image_tag_the_git_sha(root) -> None:
    """Both images carry one tag, the commit's git SHA, as CI, prefect.yaml and docs/kubernetes.md tag
    them: terraform takes it as image_tag, validated, and every image reference uses it."""
    tag_vars = {n for n in root.variables if n.endswith("image_tag")}
    assert tag_vars == {"image_tag"}
    image_tag = root.variables["image_tag"]
    assert "default" not in image_tag, "a default tag would name a build that does not exist"
    assert hcl_eval.failed_validations(image_tag, "image_tag", {"image_tag": _git_sha()}) == []
    for wrong in ("0.1.0", "latest", _git_sha()[:7], _git_sha().upper()):
        assert hcl_eval.failed_validations(image_tag, "image_tag", {"image_tag": wrong}), wrong
    images = {
        "flow_run_image": root.outputs["flow_run_image"]["value"],
        "spark_image": root.outputs["spark_image"]["value"],
        "app_env.VAMOSJUNTOS_SPARK_IMAGE": root.outputs["app_env"]["value"]["VAMOSJUNTOS_SPARK_IMAGE"],
    }
    for where, value in images.items():
        assert value.endswith(":${var.image_tag}"), where
    prefect = (tfi.REPO / "prefect.yaml").read_text(encoding="utf-8")
    assert "export IMAGE_TAG=$(git rev-parse --short=12 HEAD)" in prefect
    for path in (DOCS, tfi.REPO / "docs" / "kubernetes.md"):
        text = path.read_text(encoding="utf-8")
        assert "IMAGE_TAG=$(git rev-parse --short=12 HEAD)" in text, path
        assert "0.1.0" not in text, path
    assert "TF_VAR_image_tag" in DOCS.read_text(encoding="utf-8")
