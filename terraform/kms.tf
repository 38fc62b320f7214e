# Three customer-managed keys, one per purpose, so a grant or a compromise of one does not reach the
# others: the lake (S3 zones + Athena results), the cluster (Kubernetes secrets + control-plane logs) and
# the container registry. All rotate yearly.
#
# Key policies follow AWS's default pattern: the account root statement lets IAM policies grant use of
# the key (that is how the IRSA roles in iam.tf get kms:Decrypt/GenerateDataKey on the lake key only).
# Without it nobody could manage the key again. In a key policy `Resource = "*"` means "this key".

data "aws_iam_policy_document" "kms_lake" {
  #checkov:skip=CKV_AWS_109:Key policy, not an identity policy: the account-root statement is AWS's default and only delegates to IAM; "*" is this key.
  #checkov:skip=CKV_AWS_111:Key policy, not an identity policy: the account-root statement is AWS's default and only delegates to IAM; "*" is this key.
  #checkov:skip=CKV_AWS_356:Key policy, not an identity policy: a key policy's resource can only be "*" (this key).
  statement {
    # tf-invariants: "*" allowed (see tests/terraform) - key policy root statement, delegates to IAM.
    sid       = "EnableIamPolicies"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "lake" {
  description             = "${local.name}: S3 lake zones and Athena query results"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms_lake.json
}

resource "aws_kms_alias" "lake" {
  name          = "alias/${local.name}-lake"
  target_key_id = aws_kms_key.lake.key_id
}

data "aws_iam_policy_document" "kms_eks" {
  #checkov:skip=CKV_AWS_109:Key policy, not an identity policy: the account-root statement is AWS's default and only delegates to IAM; "*" is this key.
  #checkov:skip=CKV_AWS_111:Key policy, not an identity policy: the account-root statement is AWS's default and only delegates to IAM; "*" is this key.
  #checkov:skip=CKV_AWS_356:Key policy, not an identity policy: a key policy's resource can only be "*" (this key).
  statement {
    # tf-invariants: "*" allowed (see tests/terraform) - key policy root statement, delegates to IAM.
    sid       = "EnableIamPolicies"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    # tf-invariants: "*" allowed (see tests/terraform) - key policy: "*" is this key; scoped by the
    # encryption-context condition to the cluster's own log group.
    sid = "CloudWatchLogsForTheClusterLogGroup"
    actions = [
      "kms:Encrypt",
      "kms:Decrypt",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
      "kms:GenerateDataKey",
      "kms:GenerateDataKeyWithoutPlaintext",
      "kms:DescribeKey",
    ]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.${local.dns_suffix}"]
    }

    condition {
      test     = "ArnEquals"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:/aws/eks/${local.cluster_name}/cluster"]
    }
  }
}

resource "aws_kms_key" "eks" {
  description             = "${local.name}: EKS secrets envelope encryption and control-plane logs"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms_eks.json
}

resource "aws_kms_alias" "eks" {
  name          = "alias/${local.name}-eks"
  target_key_id = aws_kms_key.eks.key_id
}

data "aws_iam_policy_document" "kms_ecr" {
  #checkov:skip=CKV_AWS_109:Key policy, not an identity policy: the account-root statement is AWS's default and only delegates to IAM; "*" is this key.
  #checkov:skip=CKV_AWS_111:Key policy, not an identity policy: the account-root statement is AWS's default and only delegates to IAM; "*" is this key.
  #checkov:skip=CKV_AWS_356:Key policy, not an identity policy: a key policy's resource can only be "*" (this key).
  statement {
    # tf-invariants: "*" allowed (see tests/terraform) - key policy root statement, delegates to IAM.
    sid       = "EnableIamPolicies"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "ecr" {
  description             = "${local.name}: ECR image layers"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms_ecr.json
}

resource "aws_kms_alias" "ecr" {
  name          = "alias/${local.name}-ecr"
  target_key_id = aws_kms_key.ecr.key_id
}
