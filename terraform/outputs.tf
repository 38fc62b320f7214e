# What the Kubernetes manifests (k8s/), the Prefect deployments (prefect.yaml) and the image build
# consume. `terraform output -json app_env` is the application's environment in the cloud.

output "region" {
  description = "AWS region of the footprint."
  value       = var.region
}

# --- lake -------------------------------------------------------------------------------------

output "raw_bucket" {
  description = "Raw zone bucket name."
  value       = module.raw_bucket.name
}

output "processing_bucket" {
  description = "Processing zone bucket name."
  value       = module.processing_bucket.name
}

output "consumer_bucket" {
  description = "Consumer zone bucket name."
  value       = module.consumer_bucket.name
}

output "athena_results_bucket" {
  description = "Athena query results bucket name."
  value       = module.athena_results_bucket.name
}

output "log_bucket" {
  description = "S3 access logs and VPC flow logs bucket name."
  value       = aws_s3_bucket.logs.bucket
}

output "lake_kms_key_arn" {
  description = "KMS key of the lake buckets and Athena results (S3A needs no setting: bucket default)."
  value       = aws_kms_key.lake.arn
}

# --- catalog and queries ----------------------------------------------------------------------

output "glue_database" {
  description = "Glue Data Catalog database of the consumer tables."
  value       = aws_glue_catalog_database.this.name
}

output "athena_workgroup" {
  description = "Athena workgroup (enforced results location, encryption and scan limit)."
  value       = aws_athena_workgroup.this.name
}

output "athena_results_location" {
  description = "Where the workgroup writes query results."
  value       = "s3://${module.athena_results_bucket.name}/${local.athena_results_prefix}"
}

# --- images -----------------------------------------------------------------------------------

output "ecr_registry" {
  description = "ECR registry host, for `docker login`."
  value       = split("/", aws_ecr_repository.this["flow_run"].repository_url)[0]
}

output "ecr_flow_run_repository_url" {
  description = "ECR repository of the flow-run image (Prefect + the package)."
  value       = aws_ecr_repository.this["flow_run"].repository_url
}

output "ecr_spark_repository_url" {
  description = "ECR repository of the Spark image."
  value       = aws_ecr_repository.this["spark"].repository_url
}

output "flow_run_image" {
  description = "Flow-run image reference for the Prefect work pool / deployments."
  value       = "${aws_ecr_repository.this["flow_run"].repository_url}:${var.image_tag}"
}

output "spark_image" {
  description = "Spark image reference for the Spark pods."
  value       = "${aws_ecr_repository.this["spark"].repository_url}:${var.image_tag}"
}

# --- network ----------------------------------------------------------------------------------

output "nat_public_ips" {
  description = "Public IPs every pod's internet traffic leaves from (the NAT gateways): add each to the MongoDB Atlas project's IP access list, or the PNAD ingestion cannot connect (docs/terraform.md)."
  value       = aws_eip.nat[*].public_ip
}

# --- cluster ----------------------------------------------------------------------------------

output "cluster_name" {
  description = "EKS cluster name (`aws eks update-kubeconfig --name ...`)."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_oidc_provider_arn" {
  description = "IAM OIDC provider of the cluster (IRSA)."
  value       = aws_iam_openid_connect_provider.eks.arn
}

output "k8s_namespace" {
  description = "Namespace of the flow-run and Spark pods."
  value       = var.k8s_namespace
}

output "flows_service_account" {
  description = "Service account of the flow-run pods (annotate with prefect_flows_role_arn)."
  value       = var.flows_service_account
}

output "spark_service_account" {
  description = "Service account of the Spark pods (annotate with spark_role_arn)."
  value       = var.spark_service_account
}

output "prefect_flows_role_arn" {
  description = "IRSA role for the prefect-flows service account: eks.amazonaws.com/role-arn annotation."
  value       = aws_iam_role.irsa["prefect_flows"].arn
}

output "spark_role_arn" {
  description = "IRSA role for the spark-driver service account: eks.amazonaws.com/role-arn annotation."
  value       = aws_iam_role.irsa["spark"].arn
}

output "service_account_annotations" {
  description = "The eks.amazonaws.com/role-arn annotation of each service account in k8s_namespace."
  value = {
    (var.flows_service_account) = { "eks.amazonaws.com/role-arn" = aws_iam_role.irsa["prefect_flows"].arn }
    (var.spark_service_account) = { "eks.amazonaws.com/role-arn" = aws_iam_role.irsa["spark"].arn }
  }
}

output "node_pool_label" {
  description = "Node label key telling the node groups apart (values: flows, spark)."
  value       = local.node_pool_label
}

output "spark_executor_scheduling" {
  description = "nodeSelector and toleration that put Spark executors (only) on the Spark/Spot node group."
  value = {
    node_selector = { (local.node_pool_label) = "spark" }
    toleration = {
      key      = local.spark_executor_taint_key
      operator = "Equal"
      value    = "true"
      effect   = "NoSchedule"
    }
  }
}

# --- the application's environment -----------------------------------------------------------

output "app_env" {
  description = "VAMOSJUNTOS_* environment of the flow-run and Spark pods in the cloud (flows/settings.py)."
  value = {
    VAMOSJUNTOS_RAW_ROOT              = module.raw_bucket.uri
    VAMOSJUNTOS_PROCESSING_ROOT       = module.processing_bucket.uri
    VAMOSJUNTOS_CONSUMER_ROOT         = module.consumer_bucket.uri
    VAMOSJUNTOS_AWS_REGION            = var.region
    VAMOSJUNTOS_GLUE_DATABASE         = aws_glue_catalog_database.this.name
    VAMOSJUNTOS_ATHENA_WORKGROUP      = aws_athena_workgroup.this.name
    VAMOSJUNTOS_SPARK_IMAGE           = "${aws_ecr_repository.this["spark"].repository_url}:${var.image_tag}"
    VAMOSJUNTOS_K8S_NAMESPACE         = var.k8s_namespace
    VAMOSJUNTOS_SPARK_SERVICE_ACCOUNT = var.spark_service_account
  }
}
