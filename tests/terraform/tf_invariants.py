"""Static invariants of the Terraform in terraform/, checked on python-hcl2's parse.

Every checker takes parsed configuration (a `Module`) and returns a list of human-readable problems;
an empty list means the invariant holds. The tests feed them both the real stack and deliberately broken
snippets, so each invariant is shown to be able to fail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"

# python-hcl2 8 keeps the quotes of strings unless told otherwise; blocks become lists of dicts.
HCL_OPTIONS = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)

# ----------------------------------------------------------------------------------------------
# Allow-lists: every exception to an invariant, with the reason. Keys are "<module>:<doc>:<sid>" for
# IAM statements and "<module>:<resource name>" for buckets. A stale entry fails a test too.
# ----------------------------------------------------------------------------------------------

KEY_POLICY_ROOT = (
    "KMS key policy, account-root statement (AWS's default key policy): it only lets IAM policies in "
    "this account grant use of the key; without it the key could never be administered again. In a key "
    "policy the resource can only be '*', which means this key."
)

IAM_WILDCARD_ALLOWED: dict[str, str] = {
    "root:kms_lake:EnableIamPolicies": KEY_POLICY_ROOT,
    "root:kms_eks:EnableIamPolicies": KEY_POLICY_ROOT,
    "root:kms_ecr:EnableIamPolicies": KEY_POLICY_ROOT,
    "root:kms_eks:CloudWatchLogsForTheClusterLogGroup": (
        "KMS key policy: the resource can only be '*' (this key); the CloudWatch Logs principal is limited "
        "by the kms:EncryptionContext:aws:logs:arn condition to the cluster's own log group."
    ),
}

# AWS-managed policies attached to roles. They are AWS's own minimum for the job and AWS keeps them up to
# date as EKS evolves; their "*" resources are on Describe*/EC2 network actions that have no resource ARNs.
MANAGED_POLICIES_ALLOWED: dict[str, str] = {
    "AmazonEKSClusterPolicy": "required by the EKS control plane role",
    "AmazonEKSWorkerNodePolicy": "required for nodes to join the cluster",
    "AmazonEC2ContainerRegistryPullOnly": "nodes pull images from ECR (pull only, no list/describe)",
    "AmazonEKS_CNI_Policy": "the VPC CNI's ENI/IP management, on the aws-node IRSA role only",
}

SSE_S3_BUCKETS_ALLOWED: dict[str, str] = {
    "root:logs": (
        "S3 server access log delivery supports only SSE-S3 (AES256) default encryption on the target "
        "bucket; SSE-KMS would silently stop the lake buckets' access logs."
    ),
}

ACCESS_LOGGING_EXEMPT: dict[str, str] = {
    "root:logs": "the access-log target itself; logging it into itself would log its own log writes",
}

LAKE_ZONES = ("raw_bucket", "processing_bucket", "consumer_bucket", "athena_results_bucket")

APP_ENV_KEYS = frozenset(
    {
        "VAMOSJUNTOS_RAW_ROOT",
        "VAMOSJUNTOS_PROCESSING_ROOT",
        "VAMOSJUNTOS_CONSUMER_ROOT",
        "VAMOSJUNTOS_AWS_REGION",
        "VAMOSJUNTOS_GLUE_DATABASE",
        "VAMOSJUNTOS_ATHENA_WORKGROUP",
        "VAMOSJUNTOS_SPARK_IMAGE",
        "VAMOSJUNTOS_K8S_NAMESPACE",
        "VAMOSJUNTOS_SPARK_SERVICE_ACCOUNT",
    }
)

ATHENA_MIN_CUTOFF = 10 * 1024 * 1024  # Athena refuses less than 10 MB
ATHENA_MAX_SANE_CUTOFF = 1024**4  # 1 TiB: past that the guard-rail guards nothing


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------


@dataclass
class Module:
    """The merged top-level blocks of one Terraform module (a directory of .tf files)."""

    label: str
    resources: dict[str, dict[str, dict]] = field(default_factory=dict)
    data: dict[str, dict[str, dict]] = field(default_factory=dict)
    modules: dict[str, dict] = field(default_factory=dict)
    variables: dict[str, dict] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    terraform: list[dict] = field(default_factory=list)

    def of_type(self, rtype: str) -> dict[str, dict]:
        return self.resources.get(rtype, {})

    def policy_documents(self) -> dict[str, dict]:
        return self.data.get("aws_iam_policy_document", {})


def parse_hcl(text: str) -> dict:
    return hcl2.loads(text, serialization_options=HCL_OPTIONS)


def _merge_named(target: dict, blocks: list[dict], kind: str, label: str) -> None:
    for block in blocks:
        for name, body in block.items():
            if name in target:
                raise ValueError(f"{label}: duplicate {kind} {name!r}")
            target[name] = body


def module_from_parsed(parsed_files: list[dict], label: str) -> Module:
    mod = Module(label=label)
    for parsed in parsed_files:
        for block in parsed.get("resource", []):
            for rtype, named in block.items():
                _merge_named(mod.resources.setdefault(rtype, {}), [named], f"resource {rtype}", label)
        for block in parsed.get("data", []):
            for dtype, named in block.items():
                _merge_named(mod.data.setdefault(dtype, {}), [named], f"data {dtype}", label)
        _merge_named(mod.modules, parsed.get("module", []), "module", label)
        _merge_named(mod.variables, parsed.get("variable", []), "variable", label)
        _merge_named(mod.outputs, parsed.get("output", []), "output", label)
        _merge_named(mod.locals, parsed.get("locals", []), "local", label)
        mod.terraform.extend(parsed.get("terraform", []))
    return mod


def module_from_text(text: str, label: str = "snippet") -> Module:
    return module_from_parsed([parse_hcl(text)], label)


def load_module(directory: Path, label: str) -> Module:
    files = sorted(directory.glob("*.tf"))
    if not files:
        raise FileNotFoundError(f"no .tf files in {directory}")
    return module_from_parsed([parse_hcl(f.read_text(encoding="utf-8")) for f in files], label)


def load_stack() -> dict[str, Module]:
    """The root module and every local module under terraform/modules/, by label."""
    mods = {"root": load_module(TERRAFORM, "root")}
    for sub in sorted((TERRAFORM / "modules").glob("*/")):
        mods[sub.name] = load_module(sub, sub.name)
    return mods


# ----------------------------------------------------------------------------------------------
# Small helpers over the parsed structure
# ----------------------------------------------------------------------------------------------


def first(block: Any) -> dict:
    """A nested block parses as a list of dicts; most appear once."""
    if isinstance(block, list) and block and isinstance(block[0], dict):
        return block[0]
    if isinstance(block, dict):
        return block
    return {}


def as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def refers_to(value: Any, address: str) -> bool:
    """Whether an expression string references `address` (e.g. aws_s3_bucket.logs) as a whole word."""
    return isinstance(value, str) and re.search(rf"(?<![\w.]){re.escape(address)}(?![\w])", value) is not None


def doc_name_of(policy_expr: Any) -> str | None:
    """`${data.aws_iam_policy_document.NAME.json}` (optionally indexed) -> NAME."""
    if not isinstance(policy_expr, str):
        return None
    m = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.([\w-]+)(\[[^\]]+\])?\.json\}", policy_expr)
    return m.group(1) if m else None


def statements(doc: dict) -> list[dict]:
    """Static statements plus the content of `dynamic "statement"` blocks."""
    out = [s for s in as_list(doc.get("statement")) if isinstance(s, dict)]
    for dyn in as_list(doc.get("dynamic")):
        if isinstance(dyn, dict) and "statement" in dyn:
            out.extend(as_list(first(dyn["statement"]).get("content")))
    return out


def companions(mod: Module, rtype: str, bucket_address: str) -> list[tuple[str, dict]]:
    """Resources of `rtype` whose `bucket` argument points at the given aws_s3_bucket."""
    return [
        (name, body)
        for name, body in mod.of_type(rtype).items()
        if refers_to(body.get("bucket"), f"{bucket_address}.id")
        or refers_to(body.get("bucket"), f"{bucket_address}.bucket")
    ]


def variable_default(mod: Module, expr: Any) -> Any:
    """`${var.X}` -> default of X (None if absent); a literal is returned as is."""
    if isinstance(expr, str):
        m = re.fullmatch(r"\$\{var\.([\w-]+)\}", expr)
        if m:
            return mod.variables.get(m.group(1), {}).get("default")
    return expr


# ----------------------------------------------------------------------------------------------
# S3 buckets
# ----------------------------------------------------------------------------------------------


def _is_tls_deny(stmt: dict, bucket_address: str) -> bool:
    if stmt.get("effect") != "Deny":
        return False
    if not set(as_list(stmt.get("actions"))) & {"s3:*", "*"}:
        return False
    principals = as_list(stmt.get("principals"))
    if not any(p.get("type") in ("*", "AWS") and "*" in as_list(p.get("identifiers")) for p in principals):
        return False
    resources = as_list(stmt.get("resources"))
    covers_bucket = any(refers_to(r, f"{bucket_address}.arn") and not r.endswith("/*}") for r in resources)
    covers_objects = any(refers_to(r, f"{bucket_address}.arn") and r.endswith("/*") for r in resources)
    if not (covers_bucket and covers_objects):
        return False
    return any(
        c.get("test") == "Bool"
        and c.get("variable") == "aws:SecureTransport"
        and as_list(c.get("values")) == ["false"]
        for c in as_list(stmt.get("condition"))
    )


def bucket_problems(
    mod: Module,
    sse_s3_allowed: dict[str, str] = SSE_S3_BUCKETS_ALLOWED,
    logging_exempt: dict[str, str] = ACCESS_LOGGING_EXEMPT,
) -> list[str]:
    """Every aws_s3_bucket: SSE-KMS + bucket key, public access blocked, ACLs off, versioning, TLS-only
    policy, lifecycle rules, access logging (exceptions only from the allow-lists)."""
    problems: list[str] = []
    for name in mod.of_type("aws_s3_bucket"):
        key = f"{mod.label}:{name}"
        addr = f"aws_s3_bucket.{name}"
        where = f"{key} ({addr})"

        sse = companions(mod, "aws_s3_bucket_server_side_encryption_configuration", addr)
        if len(sse) != 1:
            problems.append(f"{where}: expected one server-side encryption configuration, found {len(sse)}")
        for _, body in sse:
            rule = first(body.get("rule"))
            default = first(rule.get("apply_server_side_encryption_by_default"))
            if key in sse_s3_allowed:
                if default.get("sse_algorithm") != "AES256":
                    problems.append(
                        f"{where}: allow-listed for SSE-S3 but uses {default.get('sse_algorithm')}"
                    )
                continue
            if default.get("sse_algorithm") != "aws:kms":
                problems.append(
                    f"{where}: default encryption is {default.get('sse_algorithm')!r}, not aws:kms"
                )
            if not default.get("kms_master_key_id"):
                problems.append(f"{where}: no kms_master_key_id (would fall back to the AWS-managed key)")
            if rule.get("bucket_key_enabled") is not True:
                problems.append(f"{where}: bucket_key_enabled is not true")

        pab = companions(mod, "aws_s3_bucket_public_access_block", addr)
        if len(pab) != 1:
            problems.append(f"{where}: expected one public access block, found {len(pab)}")
        for _, body in pab:
            for flag in (
                "block_public_acls",
                "block_public_policy",
                "ignore_public_acls",
                "restrict_public_buckets",
            ):
                if body.get(flag) is not True:
                    problems.append(f"{where}: public access block {flag} is not true")

        own = companions(mod, "aws_s3_bucket_ownership_controls", addr)
        if not any(first(b.get("rule")).get("object_ownership") == "BucketOwnerEnforced" for _, b in own):
            problems.append(f"{where}: ACLs not disabled (ownership controls BucketOwnerEnforced missing)")

        ver = companions(mod, "aws_s3_bucket_versioning", addr)
        if not any(first(b.get("versioning_configuration")).get("status") == "Enabled" for _, b in ver):
            problems.append(f"{where}: versioning not Enabled")

        pols = companions(mod, "aws_s3_bucket_policy", addr)
        tls_only = False
        for _, body in pols:
            doc = mod.policy_documents().get(doc_name_of(body.get("policy")) or "")
            if doc and any(_is_tls_deny(s, addr) for s in statements(doc)):
                tls_only = True
        if not tls_only:
            problems.append(f"{where}: no bucket policy denying non-TLS (aws:SecureTransport=false) requests")

        life = companions(mod, "aws_s3_bucket_lifecycle_configuration", addr)
        if not any(r.get("status") == "Enabled" for _, b in life for r in as_list(b.get("rule"))):
            problems.append(f"{where}: no enabled lifecycle rule")

        logging = companions(mod, "aws_s3_bucket_logging", addr)
        if key not in logging_exempt and not any(b.get("target_bucket") for _, b in logging):
            problems.append(f"{where}: no access logging")
    return problems


def lake_bucket_call_problems(root: Module) -> list[str]:
    """The four lake buckets come from modules/lake_bucket, under a customer-managed KMS key, with the
    zone-specific lifecycle (raw to cheaper storage, Athena results expiring)."""
    problems: list[str] = []
    for zone in LAKE_ZONES:
        call = root.modules.get(zone)
        if call is None:
            problems.append(f"module {zone}: missing")
            continue
        if call.get("source") != "./modules/lake_bucket":
            problems.append(f"module {zone}: source is {call.get('source')!r}, not ./modules/lake_bucket")
        if not refers_to(call.get("kms_key_arn"), "aws_kms_key.lake.arn"):
            problems.append(f"module {zone}: kms_key_arn is not the lake's customer-managed key")
    raw = root.modules.get("raw_bucket", {})
    classes = {t.get("storage_class") for t in as_list(raw.get("transitions")) if isinstance(t, dict)}
    if not classes & {"STANDARD_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"}:
        problems.append("module raw_bucket: no transition of raw objects to a cheaper storage class")
    results = root.modules.get("athena_results_bucket", {})
    if results.get("expiration_days") is None:
        problems.append("module athena_results_bucket: Athena results never expire (expiration_days unset)")
    return problems


# ----------------------------------------------------------------------------------------------
# Athena workgroup
# ----------------------------------------------------------------------------------------------


def workgroup_problems(mod: Module) -> list[str]:
    problems: list[str] = []
    groups = mod.of_type("aws_athena_workgroup")
    if not groups:
        problems.append("no aws_athena_workgroup")
    for name, body in groups.items():
        where = f"aws_athena_workgroup.{name}"
        conf = first(body.get("configuration"))
        if conf.get("enforce_workgroup_configuration") is not True:
            problems.append(f"{where}: enforce_workgroup_configuration is not true")
        if conf.get("publish_cloudwatch_metrics_enabled") is not True:
            problems.append(f"{where}: publish_cloudwatch_metrics_enabled is not true")
        cutoff_expr = conf.get("bytes_scanned_cutoff_per_query")
        cutoff = variable_default(mod, cutoff_expr)
        if cutoff_expr is None:
            problems.append(f"{where}: no bytes_scanned_cutoff_per_query")
        elif not isinstance(cutoff, int) or not ATHENA_MIN_CUTOFF <= cutoff <= ATHENA_MAX_SANE_CUTOFF:
            problems.append(f"{where}: bytes_scanned_cutoff_per_query default {cutoff!r} is not a sane limit")
        result = first(conf.get("result_configuration"))
        if not str(result.get("output_location", "")).startswith("s3://"):
            problems.append(f"{where}: no s3:// results location")
        enc = first(result.get("encryption_configuration"))
        if enc.get("encryption_option") not in ("SSE_KMS", "CSE_KMS"):
            problems.append(f"{where}: results not encrypted with KMS ({enc.get('encryption_option')!r})")
        elif not enc.get("kms_key_arn"):
            problems.append(f"{where}: KMS results encryption without kms_key_arn")
    return problems


# ----------------------------------------------------------------------------------------------
# IAM
# ----------------------------------------------------------------------------------------------

POLICY_ATTRIBUTES = {
    "aws_iam_role": ("assume_role_policy",),
    "aws_iam_role_policy": ("policy",),
    "aws_iam_policy": ("policy",),
    "aws_iam_user_policy": ("policy",),
    "aws_iam_group_policy": ("policy",),
    "aws_s3_bucket_policy": ("policy",),
    "aws_kms_key": ("policy",),
}


def _only_assume_role(actions: list[str]) -> bool:
    return bool(actions) and all(a.startswith("sts:AssumeRole") for a in actions)


def iam_problems(mods: dict[str, Module], allowed: dict[str, str] = IAM_WILDCARD_ALLOWED) -> list[str]:
    """No Allow statement with action "*"; wildcard actions and "*" resources only where allow-listed;
    no NotAction/NotResource allows; every policy comes from an aws_iam_policy_document (so nothing
    escapes these checks); managed policy attachments only from the allow-list."""
    problems: list[str] = []
    for label, mod in mods.items():
        for doc_name, doc in mod.policy_documents().items():
            for i, stmt in enumerate(statements(doc)):
                effect = stmt.get("effect", "Allow")
                sid = stmt.get("sid") or f"#{i}"
                key = f"{label}:{doc_name}:{sid}"
                if effect != "Allow":
                    continue  # a Deny narrows access: wildcards there are the point (TLS-only, etc.)
                if "not_actions" in stmt or "not_resources" in stmt:
                    problems.append(f"{key}: Allow with not_actions/not_resources")
                actions = [str(a) for a in as_list(stmt.get("actions"))]
                if "*" in actions:
                    problems.append(f"{key}: action '*' (never allowed)")
                wild_actions = [a for a in actions if "*" in a and a != "*"]
                if wild_actions and key not in allowed:
                    problems.append(f"{key}: wildcard action(s) {wild_actions} without an allow-list reason")
                resources = [str(r) for r in as_list(stmt.get("resources"))]
                if "*" in resources and key not in allowed:
                    problems.append(f"{key}: resource '*' without an allow-list reason")
                if not resources and not _only_assume_role(actions):
                    problems.append(f"{key}: Allow statement without resources")
        for rtype, attrs in POLICY_ATTRIBUTES.items():
            for name, body in mod.of_type(rtype).items():
                for attr in attrs:
                    if attr in body and doc_name_of(body[attr]) is None:
                        problems.append(
                            f"{label}:{rtype}.{name}.{attr}: not from an aws_iam_policy_document "
                            f"(inline JSON escapes the least-privilege checks)"
                        )
        for name, body in mod.of_type("aws_iam_role").items():
            for attr in ("inline_policy", "managed_policy_arns"):
                if attr in body:
                    problems.append(f"{label}:aws_iam_role.{name}: {attr} bypasses the policy checks")
        for name in mod.of_type("aws_iam_policy_attachment"):
            problems.append(
                f"{label}:aws_iam_policy_attachment.{name}: exclusive attachment, use role attachments"
            )
        for name, body in mod.of_type("aws_iam_role_policy_attachment").items():
            where = f"{label}:aws_iam_role_policy_attachment.{name}"
            arn = str(body.get("policy_arn", ""))
            if ":iam::aws:policy/" not in arn and "${local.aws_managed_policy_prefix}/" not in arn:
                problems.append(f"{where}: {arn!r} is not an AWS-managed policy")
                continue
            if "${each.value}" in arn:
                names = re.findall(r'"([^"]+)"', str(body.get("for_each", "")))
            else:
                names = [arn.rsplit("/", 1)[-1]]
            if not names:
                problems.append(f"{where}: cannot tell which managed policies it attaches")
            for policy in names:
                if policy not in MANAGED_POLICIES_ALLOWED:
                    problems.append(f"{where}: managed policy {policy} is not allow-listed")
    return problems


def allow_list_usage(mods: dict[str, Module], allowed: dict[str, str] = IAM_WILDCARD_ALLOWED) -> set[str]:
    """Allow-list keys that match no wildcard statement (stale entries)."""
    used: set[str] = set()
    for label, mod in mods.items():
        for doc_name, doc in mod.policy_documents().items():
            for i, stmt in enumerate(statements(doc)):
                key = f"{label}:{doc_name}:{stmt.get('sid') or f'#{i}'}"
                wild = any("*" in str(a) for a in as_list(stmt.get("actions"))) or "*" in as_list(
                    stmt.get("resources")
                )
                if key in allowed and wild:
                    used.add(key)
    return set(allowed) - used


def irsa_trust_problems(mod: Module) -> list[str]:
    """Every web-identity trust is pinned to one service account (StringEquals on :sub, no wildcard)
    and to the STS audience."""
    problems: list[str] = []
    found = False
    for doc_name, doc in mod.policy_documents().items():
        for stmt in statements(doc):
            if "sts:AssumeRoleWithWebIdentity" not in as_list(stmt.get("actions")):
                continue
            found = True
            where = f"{doc_name}:{stmt.get('sid')}"
            conds = as_list(stmt.get("condition"))
            subs = [c for c in conds if str(c.get("variable", "")).endswith(":sub")]
            auds = [c for c in conds if str(c.get("variable", "")).endswith(":aud")]
            if not subs:
                problems.append(f"{where}: web-identity trust not limited to a service account (:sub)")
            for c in subs:
                values = [str(v) for v in as_list(c.get("values"))]
                if c.get("test") != "StringEquals":
                    problems.append(f"{where}: :sub condition uses {c.get('test')}, not StringEquals")
                if not values or any("*" in v or not v.startswith("system:serviceaccount:") for v in values):
                    problems.append(f"{where}: :sub values {values} are not exact service accounts")
            if not any(
                c.get("test") == "StringEquals" and as_list(c.get("values")) == ["sts.amazonaws.com"]
                for c in auds
            ):
                problems.append(f"{where}: no StringEquals :aud = sts.amazonaws.com")
            principals = as_list(stmt.get("principals"))
            if not any(p.get("type") == "Federated" for p in principals):
                problems.append(f"{where}: web-identity trust without a Federated (OIDC) principal")
    if not found:
        problems.append("no IRSA (sts:AssumeRoleWithWebIdentity) trust policy")
    return problems


# ----------------------------------------------------------------------------------------------
# ECR, EKS, outputs, pins
# ----------------------------------------------------------------------------------------------


def ecr_problems(mod: Module) -> list[str]:
    problems: list[str] = []
    repos = mod.of_type("aws_ecr_repository")
    if not repos:
        problems.append("no aws_ecr_repository")
    for name, body in repos.items():
        where = f"aws_ecr_repository.{name}"
        if body.get("image_tag_mutability") != "IMMUTABLE":
            problems.append(f"{where}: tags are not IMMUTABLE")
        if first(body.get("image_scanning_configuration")).get("scan_on_push") is not True:
            problems.append(f"{where}: scan_on_push is not true")
        if first(body.get("encryption_configuration")).get("encryption_type") != "KMS":
            problems.append(f"{where}: not KMS-encrypted")
        lifecycle = [
            b
            for b in mod.of_type("aws_ecr_lifecycle_policy").values()
            if refers_to(b.get("repository"), f"aws_ecr_repository.{name}")
            or refers_to(b.get("for_each"), f"aws_ecr_repository.{name}")
        ]
        if not lifecycle:
            problems.append(f"{where}: no lifecycle policy")
    return problems


def eks_problems(mod: Module) -> list[str]:
    problems: list[str] = []
    clusters = mod.of_type("aws_eks_cluster")
    if len(clusters) != 1:
        problems.append(f"expected one aws_eks_cluster, found {len(clusters)}")
    for name, body in clusters.items():
        enc = first(body.get("encryption_config"))
        if "secrets" not in as_list(enc.get("resources")) or not first(enc.get("provider")).get("key_arn"):
            problems.append(f"aws_eks_cluster.{name}: secrets not envelope-encrypted with a KMS key")
        if len(as_list(body.get("enabled_cluster_log_types"))) < 5:
            problems.append(f"aws_eks_cluster.{name}: not every control-plane log type enabled")
        vpc = first(body.get("vpc_config"))
        if variable_default(mod, vpc.get("endpoint_public_access", True)) is not False:
            cidrs_expr = vpc.get("public_access_cidrs")
            cidrs = variable_default(mod, cidrs_expr)
            if cidrs_expr is None or (isinstance(cidrs, list) and (not cidrs or "0.0.0.0/0" in cidrs)):
                problems.append(f"aws_eks_cluster.{name}: public endpoint open to the world")
    if not mod.of_type("aws_iam_openid_connect_provider"):
        problems.append("no aws_iam_openid_connect_provider (IRSA)")
    groups = mod.of_type("aws_eks_node_group")
    capacity = {variable_default(mod, g.get("capacity_type", "ON_DEMAND")) for g in groups.values()}
    if "ON_DEMAND" not in capacity:
        problems.append("no ON_DEMAND node group for the Prefect worker and flow runs")
    if "SPOT" not in capacity:
        problems.append("no Spot node group (by default) for the Spark executors")
    for name, lt in mod.of_type("aws_launch_template").items():
        meta = first(lt.get("metadata_options"))
        if meta.get("http_tokens") != "required":
            problems.append(f"aws_launch_template.{name}: IMDSv1 allowed")
        if meta.get("http_put_response_hop_limit") != 1:
            problems.append(f"aws_launch_template.{name}: pods can reach IMDS (hop limit != 1)")
        for bdm in as_list(lt.get("block_device_mappings")):
            if first(bdm.get("ebs")).get("encrypted") is not True:
                problems.append(f"aws_launch_template.{name}: unencrypted EBS volume")
    return problems


def app_env_problems(mod: Module) -> list[str]:
    app_env = mod.outputs.get("app_env")
    if app_env is None:
        return ["no output app_env"]
    value = app_env.get("value")
    if not isinstance(value, dict):
        return ["output app_env is not a map"]
    problems = []
    missing = APP_ENV_KEYS - set(value)
    extra = set(value) - APP_ENV_KEYS
    if missing:
        problems.append(f"app_env misses {sorted(missing)}")
    if extra:
        problems.append(f"app_env has unexpected keys {sorted(extra)}")
    for zone in ("RAW", "PROCESSING", "CONSUMER"):
        v = str(value.get(f"VAMOSJUNTOS_{zone}_ROOT", ""))
        if not (v.startswith("s3://") or v.endswith(".uri}")):
            problems.append(f"app_env VAMOSJUNTOS_{zone}_ROOT is not an s3:// URI: {v!r}")
    return problems


def pin_problems(mod: Module) -> list[str]:
    """Providers pinned with a pessimistic constraint; remote modules pinned to a version or ref."""
    problems: list[str] = []
    providers: dict[str, Any] = {}
    for tf in mod.terraform:
        for rp in as_list(tf.get("required_providers")):
            providers.update(rp)
    if "aws" not in providers:
        problems.append(f"{mod.label}: aws provider not in required_providers")
    for pname, spec in providers.items():
        version = spec.get("version") if isinstance(spec, dict) else None
        if not version or not re.search(r"~>\s*\d+\.\d+", str(version)):
            problems.append(f"{mod.label}: provider {pname} not pinned with ~> MAJOR.MINOR ({version!r})")
    for name, call in mod.modules.items():
        source = str(call.get("source", ""))
        if source.startswith("./") or source.startswith("../"):
            continue
        if not call.get("version") and "?ref=" not in source:
            problems.append(f"{mod.label}: module {name} source {source!r} is not pinned")
    return problems


# ----------------------------------------------------------------------------------------------
# terraform fmt style (a subset: indentation by nesting, '=' alignment within attribute runs)
# ----------------------------------------------------------------------------------------------

_OPEN, _CLOSE = "([{", ")]}"


def _scan_line(line: str, stack: list[str]) -> int:
    """Run the lexer `stack` over one line (strings, ${...} interpolations, brackets, comments).

    Returns the net bracket change of the line. Brackets inside a string's ${...} count too, as in
    `terraform fmt`: they balance within the string."""
    net = 0
    i = 0
    while i < len(line):
        ch = line[i]
        top = stack[-1] if stack else "code"
        if top == '"':
            if ch == "\\":
                i += 2
                continue
            if line.startswith("${", i) or line.startswith("%{", i):
                stack.append("${")
                net += 1
                i += 2
                continue
            if ch == '"':
                stack.pop()
            i += 1
            continue
        if ch == "#" or line.startswith("//", i):
            break
        if ch == '"':
            stack.append('"')
        elif ch in _OPEN:
            stack.append(ch)
            net += 1
        elif ch in _CLOSE:
            if stack:
                stack.pop()
            net -= 1
        i += 1
    return net


# An attribute line: key (identifier, quoted string or parenthesised expression), spaces, '='.
_ATTR = re.compile(r'^(\s*)((?:"[^"]*"|\([^)]*\)|[\w\-.]+))(\s*)=(?![=>])\s*(.*)$')


def fmt_problems(text: str, filename: str = "<text>") -> list[str]:
    """The parts of `terraform fmt` that matter for review, mirroring hclwrite's rules: one indent level
    (2 spaces) per line that opens brackets, and within a run of consecutive single-line attributes the
    '=' signs aligned one space after the longest key. A blank line, a comment line, a block header or an
    attribute whose value continues on the next lines ends a run."""
    problems: list[str] = []
    stack: list[str] = []
    indents: list[int] = []
    heredoc_end: str | None = None
    chain: list[tuple[int, int, int]] = []  # (lineno, key end column, '=' column)

    def close_chain() -> None:
        if chain:
            want = max(lead for _, lead, _ in chain) + 1
            for lineno, _, col in chain:
                if col != want:
                    problems.append(
                        f"{filename}:{lineno}: '=' at column {col + 1}, fmt aligns it at {want + 1}"
                    )
            chain.clear()

    for lineno, line in enumerate(text.split("\n"), 1):
        if heredoc_end is not None:
            if line.strip() == heredoc_end:
                heredoc_end = None
            continue
        if "\t" in line:
            problems.append(f"{filename}:{lineno}: tab character")
        if line != line.rstrip():
            problems.append(f"{filename}:{lineno}: trailing whitespace")
        stripped = line.strip()
        if not stripped:
            close_chain()
            continue
        net = _scan_line(line, stack)
        if net < 0:
            closed = -net
            while closed > 0 and indents:
                if closed >= indents[-1]:
                    closed -= indents.pop()
                else:
                    indents[-1] -= closed
                    closed = 0
        indent = len(line) - len(line.lstrip(" "))
        if indent != 2 * len(indents):
            problems.append(f"{filename}:{lineno}: indented {indent}, fmt indents {2 * len(indents)}")
        if net > 0:
            indents.append(net)
        heredoc = re.search(r"<<-?([A-Za-z_]+)\s*$", line)
        m = _ATTR.match(line)
        if m and not stripped.startswith(("#", "//")) and (net == 0 or heredoc):
            lead = len(m.group(1)) + len(m.group(2))
            chain.append((lineno, lead, lead + len(m.group(3))))
        else:
            close_chain()
        if heredoc:
            heredoc_end = heredoc.group(1)
    close_chain()
    if indents or stack:
        problems.append(f"{filename}: unbalanced brackets or strings at end of file")
    if not text.endswith("\n") or text.endswith("\n\n"):
        problems.append(f"{filename}: must end with exactly one newline")
    return problems
