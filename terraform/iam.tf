# IAM, least privilege. Every policy is an aws_iam_policy_document (tests/terraform checks them all):
# resource-scoped ARNs, only the actions each identity uses, no wildcard action, and a "*" resource only
# where a comment at the statement says why (all in kms.tf key policies, where "*" means "this key").
#
#   cluster        EKS control plane (AWS-managed AmazonEKSClusterPolicy + its secrets key)
#   node           EC2 nodes: join the cluster, pull images. Pods cannot use it (IMDS hop limit 1, eks.tf)
#   prefect_flows  IRSA, flow-run pods: ingest (raw zone), publish (Glue), answer (Athena)
#   spark          IRSA, Spark driver/executor pods: raw -> processing -> consumer
#   vpc_cni        IRSA, the aws-node DaemonSet (AWS-managed AmazonEKS_CNI_Policy)

locals {
  aws_managed_policy_prefix = "arn:${local.partition}:iam::aws:policy"

  glue_catalog_arn  = "arn:${local.partition}:glue:${var.region}:${local.account_id}:catalog"
  glue_database_arn = "arn:${local.partition}:glue:${var.region}:${local.account_id}:database/${aws_glue_catalog_database.this.name}"
  glue_tables_arn   = "arn:${local.partition}:glue:${var.region}:${local.account_id}:table/${aws_glue_catalog_database.this.name}/*"

  # S3 calls KMS on the caller's behalf; the lake key is usable only through S3 (and Athena's results).
  lake_key_via_services = [
    "s3.${var.region}.${local.dns_suffix}",
    "athena.${var.region}.${local.dns_suffix}",
  ]
}

# ---------------------------------------------------------------------------------------------
# EKS control plane
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "cluster_assume" {
  statement {
    sid     = "EksControlPlane"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["eks.${local.dns_suffix}"]
    }
  }
}

resource "aws_iam_role" "cluster" {
  name               = "${local.name}-eks-cluster"
  description        = "EKS control plane of ${local.cluster_name}"
  assume_role_policy = data.aws_iam_policy_document.cluster_assume.json
}

resource "aws_iam_role_policy_attachment" "cluster" {
  for_each = toset(["AmazonEKSClusterPolicy"])

  role       = aws_iam_role.cluster.name
  policy_arn = "${local.aws_managed_policy_prefix}/${each.value}"
}

data "aws_iam_policy_document" "cluster_kms" {
  statement {
    sid = "SecretsEnvelopeEncryption"
    actions = [
      "kms:Encrypt",
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:ListGrants",
    ]
    resources = [aws_kms_key.eks.arn]
  }
}

resource "aws_iam_role_policy" "cluster_kms" {
  name   = "secrets-encryption"
  role   = aws_iam_role.cluster.id
  policy = data.aws_iam_policy_document.cluster_kms.json
}

# ---------------------------------------------------------------------------------------------
# Nodes
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "node_assume" {
  statement {
    sid     = "Ec2Instances"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.${local.dns_suffix}"]
    }
  }
}

resource "aws_iam_role" "node" {
  name               = "${local.name}-eks-node"
  description        = "EKS managed nodes of ${local.cluster_name}"
  assume_role_policy = data.aws_iam_policy_document.node_assume.json
}

resource "aws_iam_role_policy_attachment" "node" {
  # No AmazonEKS_CNI_Policy here: the VPC CNI has its own IRSA role (vpc_cni below).
  # PullOnly rather than ReadOnly: nodes pull images, they never list or describe repositories.
  for_each = toset(["AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly"])

  role       = aws_iam_role.node.name
  policy_arn = "${local.aws_managed_policy_prefix}/${each.value}"
}

# ---------------------------------------------------------------------------------------------
# IRSA roles: one per Kubernetes service account, trusted only by that exact namespace/name
# ---------------------------------------------------------------------------------------------

locals {
  oidc_issuer = replace(aws_eks_cluster.this.identity[0].oidc[0].issuer, "https://", "")

  irsa_service_accounts = {
    prefect_flows = { namespace = var.k8s_namespace, service_account = var.flows_service_account }
    spark         = { namespace = var.k8s_namespace, service_account = var.spark_service_account }
    vpc_cni       = { namespace = "kube-system", service_account = "aws-node" }
  }
}

data "aws_iam_policy_document" "irsa_trust" {
  for_each = local.irsa_service_accounts

  statement {
    sid     = "ServiceAccountWebIdentity"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.eks.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${each.value.namespace}:${each.value.service_account}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "irsa" {
  for_each = local.irsa_service_accounts

  name                 = "${local.name}-${replace(each.key, "_", "-")}"
  description          = "IRSA: ${each.value.namespace}/${each.value.service_account} on ${local.cluster_name}"
  assume_role_policy   = data.aws_iam_policy_document.irsa_trust[each.key].json
  max_session_duration = 3600
}

resource "aws_iam_role_policy_attachment" "vpc_cni" {
  role       = aws_iam_role.irsa["vpc_cni"].name
  policy_arn = "${local.aws_managed_policy_prefix}/AmazonEKS_CNI_Policy"
}

# --- flow-run pods (service account prefect-flows) ------------------------------------------

data "aws_iam_policy_document" "prefect_flows" {
  statement {
    sid = "ListLakeBuckets"
    actions = [
      "s3:ListBucket",
      "s3:GetBucketLocation",
    ]
    resources = [
      module.raw_bucket.arn,
      module.processing_bucket.arn,
      module.consumer_bucket.arn,
      module.athena_results_bucket.arn,
    ]
  }

  # ingest_ibge / ingest_pnadc: write aside, then commit, and a rerun replaces (so Delete too).
  statement {
    sid = "RawZoneReadWrite"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${module.raw_bucket.arn}/*"]
  }

  # Reconciliation (raw = processing + quarantine) reads processing; Athena reads the consumer zone
  # with the caller's credentials.
  statement {
    sid       = "ReadProcessingAndConsumerZones"
    actions   = ["s3:GetObject"]
    resources = ["${module.processing_bucket.arn}/*", "${module.consumer_bucket.arn}/*"]
  }

  # The flows' own records beside the tables: the quality gate's verdict (transform), the answers and
  # the HTML report (answer). Only these prefixes: the tables themselves are written by Spark.
  statement {
    sid     = "FlowRecordsWrite"
    actions = ["s3:PutObject"]
    resources = [
      "${module.processing_bucket.arn}/_quality/*",
      "${module.consumer_bucket.arn}/_answers/*",
      "${module.consumer_bucket.arn}/_reports/*",
    ]
  }

  # Athena writes query results with the caller's credentials, under the workgroup's enforced prefix.
  statement {
    sid       = "AthenaResultsUploads"
    actions   = ["s3:ListBucketMultipartUploads"]
    resources = [module.athena_results_bucket.arn]
  }

  statement {
    sid = "AthenaResultsObjects"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${module.athena_results_bucket.arn}/${local.athena_results_prefix}*"]
  }

  statement {
    sid = "AthenaQueriesInTheWorkgroup"
    actions = [
      "athena:GetWorkGroup",
      "athena:StartQueryExecution",
      "athena:GetQueryExecution",
      "athena:GetQueryResults",
      "athena:StopQueryExecution",
    ]
    resources = [aws_athena_workgroup.this.arn]
  }

  # Athena resolves tables and partitions through Glue with the caller's credentials.
  statement {
    sid = "GlueCatalogRead"
    actions = [
      "glue:GetDatabase",
      "glue:GetTable",
      "glue:GetTables",
      "glue:GetPartition",
      "glue:GetPartitions",
      "glue:BatchGetPartition",
    ]
    resources = [local.glue_catalog_arn, local.glue_database_arn, local.glue_tables_arn]
  }

  # publish: registers the consumer tables (idempotent: CREATE ... IF NOT EXISTS, or DROP + CREATE).
  # CreateDatabase only lets an idempotent `CREATE DATABASE IF NOT EXISTS` succeed: the ARN scopes it to
  # this one database, which Terraform already created.
  statement {
    sid = "GluePublishTables"
    actions = [
      "glue:CreateDatabase",
      "glue:CreateTable",
      "glue:UpdateTable",
      "glue:DeleteTable",
      "glue:CreatePartition",
      "glue:BatchCreatePartition",
      "glue:UpdatePartition",
    ]
    resources = [local.glue_catalog_arn, local.glue_database_arn, local.glue_tables_arn]
  }

  statement {
    sid = "LakeKeyThroughS3"
    actions = [
      "kms:Decrypt",
      "kms:GenerateDataKey",
    ]
    resources = [aws_kms_key.lake.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = local.lake_key_via_services
    }
  }
}

resource "aws_iam_role_policy" "prefect_flows" {
  name   = "lakehouse-flows"
  role   = aws_iam_role.irsa["prefect_flows"].id
  policy = data.aws_iam_policy_document.prefect_flows.json
}

# --- Spark pods (service account spark-driver) ----------------------------------------------

data "aws_iam_policy_document" "spark" {
  statement {
    sid = "ListZoneBuckets"
    actions = [
      "s3:ListBucket",
      "s3:GetBucketLocation",
    ]
    resources = [
      module.raw_bucket.arn,
      module.processing_bucket.arn,
      module.consumer_bucket.arn,
    ]
  }

  statement {
    sid       = "ReadRawZone"
    actions   = ["s3:GetObject"]
    resources = ["${module.raw_bucket.arn}/*"]
  }

  # S3A commits by copy + delete and cleans up pending multipart uploads of the zones it writes.
  statement {
    sid       = "PendingUploadsInWrittenZones"
    actions   = ["s3:ListBucketMultipartUploads"]
    resources = [module.processing_bucket.arn, module.consumer_bucket.arn]
  }

  statement {
    sid = "WriteProcessingAndConsumerZones"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${module.processing_bucket.arn}/*", "${module.consumer_bucket.arn}/*"]
  }

  statement {
    sid = "LakeKeyThroughS3"
    actions = [
      "kms:Decrypt",
      "kms:GenerateDataKey",
    ]
    resources = [aws_kms_key.lake.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.${local.dns_suffix}"]
    }
  }
}

resource "aws_iam_role_policy" "spark" {
  name   = "lakehouse-spark"
  role   = aws_iam_role.irsa["spark"].id
  policy = data.aws_iam_policy_document.spark.json
}
