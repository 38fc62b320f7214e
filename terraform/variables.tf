# ---------------------------------------------------------------------------------------------
# Naming and placement
# ---------------------------------------------------------------------------------------------

variable "region" {
  description = "AWS region of the whole footprint (lake, catalog, cluster)."
  type        = string
  default     = "sa-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as sa-east-1."
  }
}

variable "project" {
  description = "Project name: the prefix of every resource name."
  type        = string
  default     = "vamosjuntos"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.project))
    error_message = "project must be 2-21 lowercase letters, digits or hyphens (it ends up in bucket names)."
  }
}

variable "environment" {
  description = "Environment name (prod, staging, dev): part of every resource name."
  type        = string
  default     = "prod"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "environment must be 2-10 lowercase letters or digits."
  }
}

variable "tags" {
  description = "Extra tags for every resource (merged over Project/Environment/ManagedBy)."
  type        = map(string)
  default     = {}
}

variable "kms_deletion_window_days" {
  description = "Waiting period before a scheduled KMS key deletion takes effect."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

# ---------------------------------------------------------------------------------------------
# Lake (S3)
# ---------------------------------------------------------------------------------------------

variable "raw_transition_ia_days" {
  description = "Days after which raw objects move to S3 Standard-IA (raw is re-read only to reprocess)."
  type        = number
  default     = 30

  validation {
    condition     = var.raw_transition_ia_days >= 30
    error_message = "S3 only transitions to STANDARD_IA after at least 30 days."
  }
}

variable "raw_transition_glacier_ir_days" {
  description = "Days after which raw objects move to S3 Glacier Instant Retrieval (still readable in ms)."
  type        = number
  default     = 90

  validation {
    condition     = var.raw_transition_glacier_ir_days >= 60
    error_message = "raw_transition_glacier_ir_days must be at least 60 (30 days in STANDARD_IA first)."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days a replaced (noncurrent) object version is kept in the raw/processing/consumer zones."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "noncurrent_version_expiration_days must be at least 1."
  }
}

variable "athena_results_expiration_days" {
  description = "Days Athena query results are kept in the results bucket."
  type        = number
  default     = 7

  validation {
    condition     = var.athena_results_expiration_days >= 1 && var.athena_results_expiration_days <= 90
    error_message = "athena_results_expiration_days must be between 1 and 90."
  }
}

variable "access_log_retention_days" {
  description = "Days S3 server access logs and VPC flow logs are kept in the log bucket."
  type        = number
  default     = 365

  validation {
    condition     = var.access_log_retention_days >= 90
    error_message = "access_log_retention_days must be at least 90."
  }
}

# ---------------------------------------------------------------------------------------------
# Catalog and queries (Glue + Athena)
# ---------------------------------------------------------------------------------------------

variable "glue_database_name" {
  description = "Glue Data Catalog database the publish flow registers the consumer tables in."
  type        = string
  default     = "vamosjuntos"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,254}$", var.glue_database_name))
    error_message = "glue_database_name must be lowercase letters, digits and underscores (Athena's rule)."
  }
}

variable "athena_workgroup_name" {
  description = "Athena workgroup the answer flow queries in."
  type        = string
  default     = "vamosjuntos"

  validation {
    condition     = can(regex("^[a-zA-Z0-9._-]{1,128}$", var.athena_workgroup_name))
    error_message = "athena_workgroup_name must be 1-128 characters of a-z, A-Z, 0-9, '.', '_' or '-'."
  }
}

variable "athena_bytes_scanned_cutoff_per_query" {
  description = <<-EOT
    Bytes one Athena query may scan before Athena cancels it (cost guard-rail, enforced by the workgroup).
    Default 10 GiB: the whole PNAD consumer table is a few hundred MB of Parquet, so a legitimate
    question scans far less; a runaway query costs at most ~USD 0.05.
  EOT
  type        = number
  default     = 10737418240

  validation {
    # Athena's minimum is 10 MB; the upper bound keeps a typo (an extra zero or three) from disabling the guard.
    condition     = var.athena_bytes_scanned_cutoff_per_query >= 10485760 && var.athena_bytes_scanned_cutoff_per_query <= 1099511627776
    error_message = "athena_bytes_scanned_cutoff_per_query must be between 10 MiB (Athena's minimum) and 1 TiB."
  }
}

# ---------------------------------------------------------------------------------------------
# Container images (ECR)
# ---------------------------------------------------------------------------------------------

variable "image_tag" {
  description = "Tag of both images (flow-run and Spark), built from one commit and tagged with its git SHA: `git rev-parse --short=12 HEAD`, as CI and prefect.yaml tag them. ECR tags are immutable: one tag is one build."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{12}$", var.image_tag))
    error_message = "image_tag must be the 12-character git SHA the images were built from: git rev-parse --short=12 HEAD."
  }
}

variable "ecr_untagged_image_expiry_days" {
  description = "Days an untagged image (a failed or superseded push) is kept in ECR."
  type        = number
  default     = 7
}

variable "ecr_max_image_count" {
  description = "Images kept per ECR repository; older ones are expired."
  type        = number
  default     = 50
}

# ---------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR of the VPC (a /16 is split in /20 private and /24 public subnets)."
  type        = string
  default     = "10.42.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && can(regex("/(8|9|1[0-6])$", var.vpc_cidr))
    error_message = "vpc_cidr must be a valid IPv4 CIDR of size /16 or larger."
  }
}

variable "availability_zones" {
  description = "Availability zones of the subnets (EKS needs at least two). Change with the region."
  type        = list(string)
  default     = ["sa-east-1a", "sa-east-1b", "sa-east-1c"]

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 4
    error_message = "List between 2 and 4 availability zones."
  }

  validation {
    condition     = alltrue([for az in var.availability_zones : startswith(az, var.region)])
    error_message = "Every availability zone must belong to var.region."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all AZs (cheaper) instead of one per AZ (survives an AZ outage)."
  type        = bool
  default     = true
}

variable "flow_log_traffic_type" {
  description = "Which traffic VPC flow logs record: ACCEPT, REJECT or ALL."
  type        = string
  default     = "ALL"

  validation {
    condition     = contains(["ACCEPT", "REJECT", "ALL"], var.flow_log_traffic_type)
    error_message = "flow_log_traffic_type must be ACCEPT, REJECT or ALL."
  }
}

# ---------------------------------------------------------------------------------------------
# EKS
# ---------------------------------------------------------------------------------------------

variable "kubernetes_version" {
  description = "EKS Kubernetes minor version (in standard support: extended support costs six times more)."
  type        = string
  default     = "1.34"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.34."
  }
}

variable "cluster_endpoint_public_access" {
  description = "Also expose the Kubernetes API publicly, restricted to cluster_endpoint_public_access_cidrs: needed for kubectl/helm from a workstation or CI outside the VPC. Off by default: the API is then reachable only from inside the VPC (or a VPN/peering into it)."
  type        = bool
  default     = false
}

variable "cluster_endpoint_public_access_cidrs" {
  description = "CIDRs allowed to reach the public Kubernetes API (office/VPN/CI egress). Set together with cluster_endpoint_public_access = true; [] when it is false."
  type        = list(string)
  default     = []

  validation {
    # Both ways (cross-variable validation needs Terraform >= 1.9; versions.tf asks for 1.10): CIDRs
    # without the public endpoint reach nothing (kubectl then times out, terraform says nothing), and a
    # public endpoint without CIDRs would be open to 0.0.0.0/0 (EKS's default).
    condition     = var.cluster_endpoint_public_access == (length(var.cluster_endpoint_public_access_cidrs) > 0)
    error_message = "cluster_endpoint_public_access and cluster_endpoint_public_access_cidrs go together: true with at least one CIDR (to use kubectl/helm from outside the VPC), or false with []."
  }

  validation {
    condition     = !contains(var.cluster_endpoint_public_access_cidrs, "0.0.0.0/0")
    error_message = "Never 0.0.0.0/0 in cluster_endpoint_public_access_cidrs: list your office/VPN/CI egress addresses."
  }

  validation {
    condition     = alltrue([for c in var.cluster_endpoint_public_access_cidrs : can(cidrhost(c, 0))])
    error_message = "Every entry of cluster_endpoint_public_access_cidrs must be a valid CIDR."
  }
}

variable "cluster_admin_principal_arns" {
  description = "IAM principals (roles/users) given cluster-admin through EKS access entries, e.g. the CI deploy role."
  type        = list(string)
  default     = []
}

variable "bootstrap_cluster_creator_admin_permissions" {
  description = "Give the identity running `terraform apply` cluster-admin (convenient for the first run)."
  type        = bool
  default     = true
}

variable "cluster_log_retention_days" {
  description = "Days the EKS control-plane logs are kept in CloudWatch Logs."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.cluster_log_retention_days)
    error_message = "cluster_log_retention_days must be one of the values CloudWatch Logs accepts."
  }
}

variable "node_disk_size_gib" {
  description = "Root volume (gp3, encrypted) of every node: images plus Spark shuffle spill in emptyDir."
  type        = number
  default     = 80
}

variable "flows_node_instance_types" {
  description = "Instance types of the on-demand node group (Prefect worker, flow-run pods, Spark drivers)."
  type        = list(string)
  default     = ["m6i.large"]
}

variable "flows_node_min_size" {
  description = "Minimum nodes in the on-demand node group."
  type        = number
  default     = 1
}

variable "flows_node_desired_size" {
  description = "Initial nodes in the on-demand node group (later changes are left to an autoscaler)."
  type        = number
  default     = 2
}

variable "flows_node_max_size" {
  description = "Maximum nodes in the on-demand node group."
  type        = number
  default     = 4
}

variable "spark_node_capacity_type" {
  description = "SPOT (default, executors are restartable) or ON_DEMAND for the Spark executor node group."
  type        = string
  default     = "SPOT"

  validation {
    condition     = contains(["SPOT", "ON_DEMAND"], var.spark_node_capacity_type)
    error_message = "spark_node_capacity_type must be SPOT or ON_DEMAND."
  }
}

variable "spark_node_instance_types" {
  description = "Instance types of the Spark executor node group (several, so Spot has pools to choose from)."
  type        = list(string)
  default     = ["m6i.xlarge", "m6a.xlarge", "m5.xlarge", "m5a.xlarge", "m7i.xlarge"]
}

variable "spark_node_min_size" {
  description = "Minimum nodes in the Spark executor node group."
  type        = number
  default     = 0
}

variable "spark_node_desired_size" {
  description = "Initial nodes in the Spark executor node group."
  type        = number
  default     = 1
}

variable "spark_node_max_size" {
  description = "Maximum nodes in the Spark executor node group."
  type        = number
  default     = 6
}

# ---------------------------------------------------------------------------------------------
# Kubernetes identities (IRSA): must match k8s/ and prefect.yaml
# ---------------------------------------------------------------------------------------------

variable "k8s_namespace" {
  description = "Namespace of the flow-run and Spark pods."
  type        = string
  default     = "vamosjuntos"
}

variable "flows_service_account" {
  description = "Service account of the Prefect flow-run pods."
  type        = string
  default     = "prefect-flows"
}

variable "spark_service_account" {
  description = "Service account of the Spark driver (and executor) pods."
  type        = string
  default     = "spark-driver"
}
