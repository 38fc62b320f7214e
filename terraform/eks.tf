# EKS: the cluster, its OIDC provider (for IRSA), the core add-ons and two managed node groups:
#   flows  on-demand: Prefect worker, flow-run pods and Spark *drivers* (a driver lost to a Spot
#          reclaim loses the whole job, so drivers stay on on-demand capacity);
#   spark  Spot by default, tainted: only pods that tolerate the taint (Spark executors) land there; an
#          executor lost to a reclaim is recomputed by Spark from lineage.
# Plain resources rather than terraform-aws-modules/eks: see docs/terraform.md ("Why plain resources").

resource "aws_cloudwatch_log_group" "cluster" {
  # EKS writes control-plane logs here; creating it first sets retention and encryption (EKS would
  # otherwise create it unencrypted and keep the logs forever).
  name              = "/aws/eks/${local.cluster_name}/cluster"
  retention_in_days = var.cluster_log_retention_days
  kms_key_id        = aws_kms_key.eks.arn
}

resource "aws_eks_cluster" "this" {
  name     = local.cluster_name
  version  = var.kubernetes_version
  role_arn = aws_iam_role.cluster.arn

  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  # Access entries only (no aws-auth ConfigMap): who may use the cluster is in IAM/Terraform.
  access_config {
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = var.bootstrap_cluster_creator_admin_permissions
  }

  # Private endpoint always (nodes, in-VPC tooling); the public one only if asked for, and then only
  # from the listed CIDRs (variables.tf refuses 0.0.0.0/0).
  vpc_config {
    subnet_ids              = aws_subnet.private[*].id
    endpoint_private_access = true
    endpoint_public_access  = var.cluster_endpoint_public_access
    public_access_cidrs     = var.cluster_endpoint_public_access_cidrs
  }

  encryption_config {
    resources = ["secrets"]

    provider {
      key_arn = aws_kms_key.eks.arn
    }
  }

  # Standard support only: when a version's standard support ends, EKS upgrades the control plane
  # instead of silently moving the cluster to (six times pricier) extended support.
  upgrade_policy {
    support_type = "STANDARD"
  }

  depends_on = [
    aws_iam_role_policy_attachment.cluster,
    aws_iam_role_policy.cluster_kms,
    aws_cloudwatch_log_group.cluster,
  ]
}

# ---------------------------------------------------------------------------------------------
# IRSA: the cluster's OIDC issuer as an IAM identity provider (roles in iam.tf)
# ---------------------------------------------------------------------------------------------

data "tls_certificate" "oidc" {
  url = aws_eks_cluster.this.identity[0].oidc[0].issuer
}

resource "aws_iam_openid_connect_provider" "eks" {
  url             = aws_eks_cluster.this.identity[0].oidc[0].issuer
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = [data.tls_certificate.oidc.certificates[0].sha1_fingerprint]
}

# ---------------------------------------------------------------------------------------------
# Access entries for operators / CI (the creator gets one via bootstrap_cluster_creator_admin_permissions)
# ---------------------------------------------------------------------------------------------

resource "aws_eks_access_entry" "admins" {
  for_each = toset(var.cluster_admin_principal_arns)

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.value
  type          = "STANDARD"
}

resource "aws_eks_access_policy_association" "admins" {
  for_each = toset(var.cluster_admin_principal_arns)

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.value
  policy_arn    = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"

  access_scope {
    type = "cluster"
  }

  depends_on = [aws_eks_access_entry.admins]
}

# ---------------------------------------------------------------------------------------------
# Add-ons (versions: the default EKS picks for the cluster version)
# ---------------------------------------------------------------------------------------------

resource "aws_eks_addon" "vpc_cni" {
  cluster_name = aws_eks_cluster.this.name
  addon_name   = "vpc-cni"
  # The CNI's AWS permissions live on its own IRSA role, not on every node.
  service_account_role_arn    = aws_iam_role.irsa["vpc_cni"].arn
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"

  # The network policy agent in aws-node enforces k8s/network-policy.yaml. Off by default in the add-on:
  # without it the NetworkPolicies apply and do nothing. The add-on schema takes the flag as a string.
  configuration_values = jsonencode({
    enableNetworkPolicy = "true"
  })
}

resource "aws_eks_addon" "kube_proxy" {
  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = "kube-proxy"
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
}

resource "aws_eks_addon" "coredns" {
  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = "coredns"
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"

  # CoreDNS is a Deployment: it only becomes healthy once there are nodes to run it.
  depends_on = [aws_eks_node_group.flows]
}

# ---------------------------------------------------------------------------------------------
# Node groups
# ---------------------------------------------------------------------------------------------

resource "aws_launch_template" "node" {
  name_prefix            = "${local.cluster_name}-node-"
  description            = "EKS managed nodes of ${local.cluster_name}: IMDSv2 only, encrypted gp3 root volume."
  update_default_version = true

  # IMDSv2 only, and a hop limit of 1: pods (one network hop further) cannot reach the instance metadata
  # service, so they cannot borrow the node role: their AWS access comes from IRSA alone.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = var.node_disk_size_gib
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${local.cluster_name}-node" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.tags, { Name = "${local.cluster_name}-node" })
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_eks_node_group" "flows" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "flows"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = aws_subnet.private[*].id
  ami_type        = "AL2023_x86_64_STANDARD"
  capacity_type   = "ON_DEMAND"
  instance_types  = var.flows_node_instance_types

  scaling_config {
    min_size     = var.flows_node_min_size
    desired_size = var.flows_node_desired_size
    max_size     = var.flows_node_max_size
  }

  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.node.id
    version = aws_launch_template.node.latest_version
  }

  labels = {
    (local.node_pool_label) = "flows"
  }

  lifecycle {
    # An autoscaler (or a person) owns the current size after creation.
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [
    aws_iam_role_policy_attachment.node,
    aws_eks_addon.vpc_cni,
    aws_eks_addon.kube_proxy,
  ]
}

resource "aws_eks_node_group" "spark" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "spark"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = aws_subnet.private[*].id
  ami_type        = "AL2023_x86_64_STANDARD"
  capacity_type   = var.spark_node_capacity_type
  # Several interchangeable types of one size: more Spot pools, fewer interruptions.
  instance_types = var.spark_node_instance_types

  scaling_config {
    min_size     = var.spark_node_min_size
    desired_size = var.spark_node_desired_size
    max_size     = var.spark_node_max_size
  }

  update_config {
    max_unavailable_percentage = 50
  }

  launch_template {
    id      = aws_launch_template.node.id
    version = aws_launch_template.node.latest_version
  }

  labels = {
    (local.node_pool_label) = "spark"
  }

  taint {
    key    = local.spark_executor_taint_key
    value  = "true"
    effect = "NO_SCHEDULE"
  }

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [
    aws_iam_role_policy_attachment.node,
    aws_eks_addon.vpc_cni,
    aws_eks_addon.kube_proxy,
  ]
}

locals {
  node_pool_label          = "vamosjuntos.io/pool"
  spark_executor_taint_key = "vamosjuntos.io/spark-executor"
}
