"""Each invariant checker can fail: a compliant snippet passes, and every deliberate break of it is caught.

A mutation is (old text, new text, expected problem). The old text must occur in the snippet, so a
mutation that silently stops applying fails here instead of passing vacuously.
"""

from __future__ import annotations

import hcl_eval
import pytest
import tf_invariants as tfi

GOOD_BUCKET = """
resource "aws_s3_bucket" "b" {
  bucket = "lake-b"
}

resource "aws_s3_bucket_ownership_controls" "b" {
  bucket = aws_s3_bucket.b.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "b" {
  bucket = aws_s3_bucket.b.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "b" {
  bucket = aws_s3_bucket.b.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.k.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "b" {
  bucket = aws_s3_bucket.b.id

  versioning_configuration {
    status = "Enabled"
  }
}

data "aws_iam_policy_document" "b" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.b.arn, "${aws_s3_bucket.b.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "b" {
  bucket = aws_s3_bucket.b.id
  policy = data.aws_iam_policy_document.b.json
}

resource "aws_s3_bucket_lifecycle_configuration" "b" {
  bucket = aws_s3_bucket.b.id

  rule {
    id     = "all"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = 30
    }
  }
}

resource "aws_s3_bucket_logging" "b" {
  bucket        = aws_s3_bucket.b.id
  target_bucket = "logs"
  target_prefix = "s3-access/"
}
"""

BUCKET_BREAKS = [
    ('sse_algorithm     = "aws:kms"', 'sse_algorithm     = "AES256"', "not aws:kms"),
    ("      kms_master_key_id = aws_kms_key.k.arn\n", "", "no kms_master_key_id"),
    ("bucket_key_enabled = true", "bucket_key_enabled = false", "bucket_key_enabled is not true"),
    ("block_public_policy     = true", "block_public_policy     = false", "block_public_policy is not true"),
    ("restrict_public_buckets = true", "restrict_public_buckets = false", "restrict_public_buckets"),
    (
        'resource "aws_s3_bucket_public_access_block" "b"',
        'resource "aws_s3_account_public_access_block" "b"',
        "expected one public access block",
    ),
    ('object_ownership = "BucketOwnerEnforced"', 'object_ownership = "ObjectWriter"', "ACLs not disabled"),
    ('status = "Enabled"\n  }\n}', 'status = "Suspended"\n  }\n}', "versioning not Enabled"),
    ('values   = ["false"]', 'values   = ["true"]', "denying non-TLS"),
    ('effect    = "Deny"', 'effect    = "Allow"', "denying non-TLS"),
    ('"${aws_s3_bucket.b.arn}/*"', '"${aws_s3_bucket.other.arn}/*"', "denying non-TLS"),
    ("policy = data.aws_iam_policy_document.b.json", "policy = jsonencode({})", "denying non-TLS"),
    (
        'id     = "all"\n    status = "Enabled"',
        'id     = "all"\n    status = "Disabled"',
        "no enabled lifecycle rule",
    ),
    ('target_bucket = "logs"', "target_bucket = null", "no access logging"),
    (
        'resource "aws_s3_bucket_server_side_encryption_configuration" "b" {\n  bucket = aws_s3_bucket.b.id',
        'resource "aws_s3_bucket_server_side_encryption_configuration" "b" {\n  bucket = aws_s3_bucket.c.id',
        "expected one server-side encryption configuration",
    ),
]

GOOD_CALLS = """
module "raw_bucket" {
  source      = "./modules/lake_bucket"
  kms_key_arn = aws_kms_key.lake.arn
  transitions = [{ days = 30, storage_class = "STANDARD_IA" }]
}

module "processing_bucket" {
  source      = "./modules/lake_bucket"
  kms_key_arn = aws_kms_key.lake.arn
}

module "consumer_bucket" {
  source      = "./modules/lake_bucket"
  kms_key_arn = aws_kms_key.lake.arn
}

module "athena_results_bucket" {
  source          = "./modules/lake_bucket"
  kms_key_arn     = aws_kms_key.lake.arn
  expiration_days = 7
}
"""

CALL_BREAKS = [
    ("  expiration_days = 7\n", "", "never expire"),
    ('transitions = [{ days = 30, storage_class = "STANDARD_IA" }]', "transitions = []", "cheaper storage"),
    ('module "consumer_bucket"', 'module "consumer_zone"', "consumer_bucket: missing"),
    (
        'module "processing_bucket" {\n  source      = "./modules/lake_bucket"',
        'module "processing_bucket" {\n  source      = "git::https://example.com/bucket.git"',
        "not ./modules/lake_bucket",
    ),
    (
        'module "consumer_bucket" {\n  source      = "./modules/lake_bucket"\n'
        "  kms_key_arn = aws_kms_key.lake.arn",
        'module "consumer_bucket" {\n  source      = "./modules/lake_bucket"\n  kms_key_arn = null',
        "customer-managed key",
    ),
]

GOOD_WORKGROUP = """
variable "cutoff" {
  type    = number
  default = 10737418240
}

resource "aws_athena_workgroup" "w" {
  name = "w"

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.cutoff

    result_configuration {
      output_location = "s3://results/athena/"

      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = aws_kms_key.lake.arn
      }
    }
  }
}
"""

WORKGROUP_BREAKS = [
    (
        "enforce_workgroup_configuration    = true",
        "enforce_workgroup_configuration    = false",
        "enforce_workgroup_configuration is not true",
    ),
    (
        "publish_cloudwatch_metrics_enabled = true",
        "publish_cloudwatch_metrics_enabled = false",
        "publish_cloudwatch_metrics_enabled is not true",
    ),
    ("    bytes_scanned_cutoff_per_query     = var.cutoff\n", "", "no bytes_scanned_cutoff_per_query"),
    ("default = 10737418240", "default = 1000", "not a sane limit"),
    ("default = 10737418240", "default = 109951162777600", "not a sane limit"),
    ('encryption_option = "SSE_KMS"', 'encryption_option = "SSE_S3"', "not encrypted with KMS"),
    ("        kms_key_arn       = aws_kms_key.lake.arn\n", "", "without kms_key_arn"),
    ('output_location = "s3://results/athena/"', 'output_location = ""', "no s3:// results location"),
]

GOOD_IAM = """
data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "Ec2"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "app" {
  statement {
    sid       = "ReadRaw"
    actions   = ["s3:GetObject"]
    resources = ["${module.raw_bucket.arn}/*"]
  }
}

resource "aws_iam_role" "app" {
  name               = "app"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

resource "aws_iam_role_policy" "app" {
  role   = aws_iam_role.app.id
  policy = data.aws_iam_policy_document.app.json
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset(["AmazonEKSWorkerNodePolicy"])

  role       = aws_iam_role.app.name
  policy_arn = "arn:aws:iam::aws:policy/${each.value}"
}
"""

IAM_BREAKS = [
    ('actions   = ["s3:GetObject"]', 'actions   = ["*"]', "action '*' (never allowed)"),
    ('actions   = ["s3:GetObject"]', 'actions   = ["s3:*"]', "wildcard action"),
    ('actions   = ["s3:GetObject"]', 'actions   = ["s3:Get*"]', "wildcard action"),
    ('resources = ["${module.raw_bucket.arn}/*"]', 'resources = ["*"]', "resource '*' without"),
    ('actions   = ["s3:GetObject"]', 'not_actions = ["iam:*"]', "not_actions"),
    ('    resources = ["${module.raw_bucket.arn}/*"]\n', "", "without resources"),
    (
        "policy = data.aws_iam_policy_document.app.json",
        'policy = jsonencode({ Statement = [{ Effect = "Allow", Action = "*", Resource = "*" }] })',
        "not from an aws_iam_policy_document",
    ),
    (
        "assume_role_policy = data.aws_iam_policy_document.assume.json",
        'assume_role_policy = file("trust.json")',
        "not from an aws_iam_policy_document",
    ),
    (
        'toset(["AmazonEKSWorkerNodePolicy"])',
        'toset(["AdministratorAccess"])',
        "AdministratorAccess is not allow",
    ),
    (
        '  name               = "app"\n',
        '  name               = "app"\n  managed_policy_arns = ["arn:aws:iam::aws:policy/PowerUserAccess"]\n',
        "managed_policy_arns bypasses",
    ),
    (
        'resource "aws_iam_role_policy_attachment" "node"',
        'resource "aws_iam_policy_attachment" "node"',
        "exclusive attachment",
    ),
    (
        'policy_arn = "arn:aws:iam::aws:policy/${each.value}"',
        'policy_arn = "arn:aws:iam::123456789012:policy/${each.value}"',
        "not an AWS-managed policy",
    ),
]

GOOD_IRSA = """
data "aws_iam_policy_document" "trust" {
  statement {
    sid     = "ServiceAccount"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.eks.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = ["system:serviceaccount:vamosjuntos:spark-driver"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}
"""

IRSA_BREAKS = [
    (
        'values   = ["system:serviceaccount:vamosjuntos:spark-driver"]',
        'values   = ["system:serviceaccount:vamosjuntos:*"]',
        "not exact service accounts",
    ),
    (
        'test     = "StringEquals"\n      variable = "${local.oidc_issuer}:sub"',
        'test     = "StringLike"\n      variable = "${local.oidc_issuer}:sub"',
        "not StringEquals",
    ),
    (
        'variable = "${local.oidc_issuer}:sub"',
        'variable = "${local.oidc_issuer}:amr"',
        "not limited to a service account",
    ),
    ('values   = ["sts.amazonaws.com"]', 'values   = ["*"]', ":aud = sts.amazonaws.com"),
    ('type        = "Federated"', 'type        = "AWS"', "without a Federated"),
    ("sts:AssumeRoleWithWebIdentity", "sts:AssumeRole", "no IRSA"),
]

GOOD_ECR = """
resource "aws_ecr_repository" "this" {
  for_each = toset(["flow-run", "spark"])

  name                 = each.value
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.ecr.arn
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  for_each = aws_ecr_repository.this

  repository = each.value.name
  policy     = "{}"
}
"""

ECR_BREAKS = [
    ('image_tag_mutability = "IMMUTABLE"', 'image_tag_mutability = "MUTABLE"', "not IMMUTABLE"),
    ("scan_on_push = true", "scan_on_push = false", "scan_on_push is not true"),
    ('encryption_type = "KMS"', 'encryption_type = "AES256"', "not KMS-encrypted"),
    ("for_each = aws_ecr_repository.this\n", "for_each = {}\n", "no lifecycle policy"),
]

GOOD_EKS = """
variable "public" {
  type    = bool
  default = false
}

resource "aws_eks_cluster" "c" {
  name                      = "c"
  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  vpc_config {
    endpoint_public_access = var.public
  }

  encryption_config {
    resources = ["secrets"]

    provider {
      key_arn = aws_kms_key.eks.arn
    }
  }
}

resource "aws_iam_openid_connect_provider" "eks" {
  url = aws_eks_cluster.c.identity[0].oidc[0].issuer
}

resource "aws_eks_node_group" "flows" {
  capacity_type = "ON_DEMAND"
}

resource "aws_eks_node_group" "spark" {
  capacity_type = "SPOT"
}

resource "aws_launch_template" "node" {
  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    ebs {
      encrypted = true
    }
  }
}
"""

EKS_BREAKS = [
    ('resources = ["secrets"]', "resources = []", "secrets not envelope-encrypted"),
    ('["api", "audit", "authenticator", "controllerManager", "scheduler"]', '["api"]', "control-plane log"),
    ("default = false", "default = true", "public endpoint open to the world"),
    ('resource "aws_iam_openid_connect_provider" "eks"', 'resource "aws_iam_saml_provider" "eks"', "IRSA"),
    ('capacity_type = "SPOT"', 'capacity_type = "ON_DEMAND"', "no Spot node group"),
    ('capacity_type = "ON_DEMAND"', 'capacity_type = "SPOT"', "no ON_DEMAND node group"),
    ('http_tokens                 = "required"', 'http_tokens                 = "optional"', "IMDSv1"),
    ("http_put_response_hop_limit = 1", "http_put_response_hop_limit = 2", "hop limit"),
    ("encrypted = true", "encrypted = false", "unencrypted EBS"),
]

GOOD_APP_ENV = """
output "app_env" {
  value = {
    VAMOSJUNTOS_RAW_ROOT              = module.raw_bucket.uri
    VAMOSJUNTOS_PROCESSING_ROOT       = module.processing_bucket.uri
    VAMOSJUNTOS_CONSUMER_ROOT         = module.consumer_bucket.uri
    VAMOSJUNTOS_AWS_REGION            = var.region
    VAMOSJUNTOS_GLUE_DATABASE         = aws_glue_catalog_database.this.name
    VAMOSJUNTOS_ATHENA_WORKGROUP      = aws_athena_workgroup.this.name
    VAMOSJUNTOS_SPARK_IMAGE           = "${aws_ecr_repository.spark.repository_url}:${var.spark_image_tag}"
    VAMOSJUNTOS_K8S_NAMESPACE         = var.k8s_namespace
    VAMOSJUNTOS_SPARK_SERVICE_ACCOUNT = var.spark_service_account
  }
}
"""

APP_ENV_BREAKS = [
    (
        "    VAMOSJUNTOS_K8S_NAMESPACE         = var.k8s_namespace\n",
        "",
        "misses ['VAMOSJUNTOS_K8S_NAMESPACE']",
    ),
    ("VAMOSJUNTOS_AWS_REGION ", "VAMOSJUNTOS_REGION     ", "unexpected keys ['VAMOSJUNTOS_REGION']"),
    (
        "VAMOSJUNTOS_RAW_ROOT              = module.raw_bucket.uri",
        "VAMOSJUNTOS_RAW_ROOT              = module.raw_bucket.name",
        "not an s3:// URI",
    ),
    ('output "app_env"', 'output "environment"', "no output app_env"),
]

GOOD_PINS = """
terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}

module "vpc" {
  source  = "terraform-aws-modules/vpc/aws"
  version = "6.0.1"
}
"""

PIN_BREAKS = [
    ('version = "~> 6.0"', 'version = ">= 5.0"', "not pinned with ~>"),
    ('  version = "6.0.1"\n', "", "module vpc source 'terraform-aws-modules/vpc/aws' is not pinned"),
    ("aws = {", "awscc = {", "aws provider not in required_providers"),
]

GOOD_FMT = """resource "aws_s3_bucket" "b" {
  bucket        = "x"
  force_destroy = false

  tags = {
    Name = "x"
  }
}
"""

FMT_BREAKS = [
    ('bucket        = "x"', 'bucket = "x"', "fmt aligns it"),
    ("  force_destroy = false", "    force_destroy = false", "indented 4, fmt indents 2"),
    ('    Name = "x"', '\tName = "x"', "tab character"),
    ('  bucket        = "x"', '  bucket        = "x"  ', "trailing whitespace"),
    ("  }\n}\n", "  }\n", "unbalanced"),
]


def _mutate(text: str, old: str, new: str) -> str:
    assert old in text, f"mutation no longer applies: {old!r}"
    return text.replace(old, new, 1)


def _joined(problems: list[str]) -> str:
    return "\n".join(problems)


CASES = {
    "buckets": (GOOD_BUCKET, BUCKET_BREAKS, lambda m: tfi.bucket_problems(m, {}, {})),
    "lake_bucket_calls": (GOOD_CALLS, CALL_BREAKS, tfi.lake_bucket_call_problems),
    "workgroup": (GOOD_WORKGROUP, WORKGROUP_BREAKS, tfi.workgroup_problems),
    "iam": (GOOD_IAM, IAM_BREAKS, lambda m: tfi.iam_problems({"snippet": m}, {})),
    "irsa": (GOOD_IRSA, IRSA_BREAKS, tfi.irsa_trust_problems),
    "ecr": (GOOD_ECR, ECR_BREAKS, tfi.ecr_problems),
    "eks": (GOOD_EKS, EKS_BREAKS, tfi.eks_problems),
    "app_env": (GOOD_APP_ENV, APP_ENV_BREAKS, tfi.app_env_problems),
    "pins": (GOOD_PINS, PIN_BREAKS, tfi.pin_problems),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_compliant_snippet_passes(case: str) -> None:
    good, _, check = CASES[case]
    assert check(tfi.module_from_text(good)) == []


@pytest.mark.parametrize(
    ("case", "old", "new", "expected"),
    [
        pytest.param(case, old, new, expected, id=f"{case}-{i}")
        for case, (_, breaks, _) in sorted(CASES.items())
        for i, (old, new, expected) in enumerate(breaks)
    ],
)
def test_broken_snippet_is_caught(case: str, old: str, new: str, expected: str) -> None:
    good, _, check = CASES[case]
    problems = check(tfi.module_from_text(_mutate(good, old, new)))
    assert expected in _joined(problems), problems


def test_fmt_checker_passes_formatted_text() -> None:
    assert tfi.fmt_problems(GOOD_FMT) == []


@pytest.mark.parametrize(("old", "new", "expected"), FMT_BREAKS)
def test_fmt_checker_catches(old: str, new: str, expected: str) -> None:
    assert expected in _joined(tfi.fmt_problems(_mutate(GOOD_FMT, old, new)))


def test_allow_lists_really_exempt() -> None:
    """The allow-lists are the only way around an invariant, and they work as documented."""
    wild = _mutate(GOOD_IAM, 'resources = ["${module.raw_bucket.arn}/*"]', 'resources = ["*"]')
    mod = tfi.module_from_text(wild)
    assert tfi.iam_problems({"snippet": mod}, {}) != []
    assert tfi.iam_problems({"snippet": mod}, {"snippet:app:ReadRaw": "reason"}) == []
    # ... but never for the action "*" itself
    star = tfi.module_from_text(_mutate(GOOD_IAM, 'actions   = ["s3:GetObject"]', 'actions   = ["*"]'))
    assert tfi.iam_problems({"snippet": star}, {"snippet:app:ReadRaw": "reason"}) != []
    # a stale allow-list entry is reported
    assert tfi.allow_list_usage(
        {"snippet": tfi.module_from_text(GOOD_IAM)}, {"snippet:app:ReadRaw": "r"}
    ) == {"snippet:app:ReadRaw"}

    sse_s3 = tfi.module_from_text(
        _mutate(GOOD_BUCKET, 'sse_algorithm     = "aws:kms"', 'sse_algorithm     = "AES256"')
    )
    assert tfi.bucket_problems(sse_s3, {}, {}) != []
    assert tfi.bucket_problems(sse_s3, {"snippet:b": "reason"}, {}) == []


def test_dynamic_statements_are_checked_too() -> None:
    text = """
data "aws_iam_policy_document" "d" {
  dynamic "statement" {
    for_each = var.buckets
    content {
      sid       = "Dyn"
      actions   = ["s3:*"]
      resources = ["*"]
    }
  }
}
"""
    problems = _joined(tfi.iam_problems({"snippet": tfi.module_from_text(text)}, {}))
    assert "wildcard action" in problems
    assert "resource '*'" in problems


# --- the validation evaluator (hcl_eval) ---------------------------------------------------------

EVAL_CASES = [
    ("!true == false", {}, True),  # HCL binds ! tighter than ==
    ("true || false && false", {}, True),  # && binds tighter than ||
    ("var.a == (length(var.b) > 0)", {"a": False, "b": ["x"]}, False),
    ('contains(["a", "b"], var.a)', {"a": "c"}, False),
    ('can(regex("^[0-9a-f]{12}$", var.a))', {"a": "0.1.0"}, False),
    ('can(regex("^[0-9a-f]{12}$", var.a))', {"a": "0123456789ab"}, True),
    ("alltrue([for c in var.a : can(cidrhost(c, 0))])", {"a": ["10.0.0.0/8", "nope"]}, False),
    ("alltrue([for c in var.a : can(cidrhost(c, 0))])", {"a": []}, True),
    ('jsonencode({ k = "true" })', {}, '{"k":"true"}'),
    ("1 == 1.0", {}, True),
    ('"1" == 1', {}, False),  # no conversion across types for ==
]


@pytest.mark.parametrize(("expr", "variables", "expected"), EVAL_CASES, ids=[c[0] for c in EVAL_CASES])
def test_hcl_eval_follows_terraform(expr, variables, expected) -> None:
    assert hcl_eval.evaluate(expr, variables) == expected


@pytest.mark.parametrize(
    ("expr", "error"),
    [
        ("var.a ? 1 : 2", hcl_eval.Unsupported),
        ("lookup(var.a, 1)", hcl_eval.Unsupported),
        ('"${var.a}"', hcl_eval.Unsupported),
        ("var.missing", hcl_eval.EvalError),
        ('!"x"', hcl_eval.EvalError),
        ('regex("^a$", "b")', hcl_eval.EvalError),
        ("1 +", hcl_eval.Unsupported),
    ],
)
def test_hcl_eval_refuses_what_it_cannot_run(expr, error) -> None:
    with pytest.raises(error):
        hcl_eval.evaluate(expr, {"a": True})


def test_failed_validations_reports_the_error_message() -> None:
    variable = tfi.parse_hcl(
        """
variable "x" {
  type = bool

  validation {
    condition     = var.x == (length(var.y) > 0)
    error_message = "x and y go together."
  }
}
"""
    )["variable"][0]["x"]
    assert hcl_eval.failed_validations(variable, "x", {"x": True, "y": ["a"]}) == []
    failed = hcl_eval.failed_validations(variable, "x", {"x": False, "y": ["a"]})
    assert failed == ["var.x: x and y go together."]
