# The lake: one bucket per zone (raw, processing, consumer) plus the Athena results bucket, all built by
# modules/lake_bucket (SSE-KMS with bucket key, versioning, public access blocked, TLS-only, lifecycle,
# access logging). The account id in the names keeps them globally unique without random suffixes.

locals {
  bucket_names = {
    raw            = "${local.name}-raw-${local.account_id}"
    processing     = "${local.name}-processing-${local.account_id}"
    consumer       = "${local.name}-consumer-${local.account_id}"
    athena_results = "${local.name}-athena-results-${local.account_id}"
    logs           = "${local.name}-logs-${local.account_id}"
  }

  # Athena writes query results under this prefix of the results bucket (the workgroup enforces it).
  athena_results_prefix = "athena/"

  # The log bucket's name, read through its policy so access logging is switched on only once the
  # log bucket accepts deliveries (ACLs are disabled: the policy is the only grant).
  log_bucket = aws_s3_bucket_policy.logs.bucket
}

module "raw_bucket" {
  source = "./modules/lake_bucket"

  name              = local.bucket_names.raw
  kms_key_arn       = aws_kms_key.lake.arn
  access_log_bucket = local.log_bucket

  # Raw is written once per ingestion date and re-read only to reprocess: cheaper classes as it ages.
  # Glacier Instant Retrieval keeps millisecond reads, so a reprocess needs no restore step.
  transitions = [
    { days = var.raw_transition_ia_days, storage_class = "STANDARD_IA" },
    { days = var.raw_transition_glacier_ir_days, storage_class = "GLACIER_IR" },
  ]
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
}

module "processing_bucket" {
  source = "./modules/lake_bucket"

  name                               = local.bucket_names.processing
  kms_key_arn                        = aws_kms_key.lake.arn
  access_log_bucket                  = local.log_bucket
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
}

module "consumer_bucket" {
  source = "./modules/lake_bucket"

  name                               = local.bucket_names.consumer
  kms_key_arn                        = aws_kms_key.lake.arn
  access_log_bucket                  = local.log_bucket
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
}

module "athena_results_bucket" {
  source = "./modules/lake_bucket"

  name              = local.bucket_names.athena_results
  kms_key_arn       = aws_kms_key.lake.arn
  access_log_bucket = local.log_bucket

  # Query results are scratch: the answer flow copies what it keeps into Prefect artifacts.
  expiration_days                    = var.athena_results_expiration_days
  noncurrent_version_expiration_days = 1
}

# ---------------------------------------------------------------------------------------------
# Log bucket: target of the S3 server access logs of the lake buckets and of the VPC flow logs.
# ---------------------------------------------------------------------------------------------

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_145:S3 server access logging cannot deliver to a bucket whose default encryption is SSE-KMS; SSE-S3 (AES256) is the only supported option for a log target.
  #checkov:skip=CKV_AWS_18:This is the access-log target bucket; logging it into itself would log its own log writes, endlessly.
  #checkov:skip=CKV_AWS_144:Logs are kept for audit in-region for access_log_retention_days; cross-region replication is not required.
  #checkov:skip=CKV2_AWS_62:No consumer of event notifications for log objects.
  bucket = local.bucket_names.logs
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket = aws_s3_bucket.logs.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    apply_server_side_encryption_by_default {
      # SSE-S3: the only default encryption S3 server access log delivery supports (see the skip above).
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "log-retention"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }

    transition {
      days          = 30
      storage_class = "STANDARD_IA"
    }

    expiration {
      days = var.access_log_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.logs]
}

data "aws_iam_policy_document" "logs_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.logs.arn,
      "${aws_s3_bucket.logs.arn}/*",
    ]

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

  statement {
    sid     = "DenyTlsOlderThan12"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.logs.arn,
      "${aws_s3_bucket.logs.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }

  # With ACLs disabled (BucketOwnerEnforced) log delivery is granted by policy, only for our buckets.
  statement {
    sid       = "S3ServerAccessLogsFromTheLakeBuckets"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs.arn}/s3-access/*"]

    principals {
      type        = "Service"
      identifiers = ["logging.s3.${local.dns_suffix}"]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values = [
        module.raw_bucket.arn,
        module.processing_bucket.arn,
        module.consumer_bucket.arn,
        module.athena_results_bucket.arn,
      ]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid     = "VpcFlowLogsDelivery"
    actions = ["s3:PutObject"]
    # Plain and Hive-compatible (network.tf uses the latter) key layouts, both for this account only.
    resources = [
      "${aws_s3_bucket.logs.arn}/vpc-flow-logs/AWSLogs/${local.account_id}/*",
      "${aws_s3_bucket.logs.arn}/vpc-flow-logs/AWSLogs/aws-account-id=${local.account_id}/*",
    ]

    principals {
      type        = "Service"
      identifiers = ["delivery.logs.${local.dns_suffix}"]
    }

    condition {
      test     = "StringEquals"
      variable = "s3:x-amz-acl"
      values   = ["bucket-owner-full-control"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:logs:${var.region}:${local.account_id}:*"]
    }
  }

  statement {
    sid       = "VpcFlowLogsAclCheck"
    actions   = ["s3:GetBucketAcl", "s3:ListBucket"]
    resources = [aws_s3_bucket.logs.arn]

    principals {
      type        = "Service"
      identifiers = ["delivery.logs.${local.dns_suffix}"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:logs:${var.region}:${local.account_id}:*"]
    }
  }
}

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id
  policy = data.aws_iam_policy_document.logs_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.logs]
}
