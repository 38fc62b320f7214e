provider "aws" {
  region = var.region

  default_tags {
    tags = local.tags
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

# The zones are named, not discovered: the subnet layout must not move when AWS adds a zone. The data
# source only proves that every named zone exists and is available in this account.
data "aws_availability_zones" "selected" {
  state = "available"

  filter {
    name   = "zone-name"
    values = var.availability_zones
  }

  lifecycle {
    postcondition {
      condition     = length(self.names) == length(var.availability_zones)
      error_message = "Some of var.availability_zones are not available in this account/region."
    }
  }
}

locals {
  name       = "${var.project}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  # The AWS DNS suffix for service principals (amazonaws.com, or amazonaws.com.cn in China).
  dns_suffix = data.aws_partition.current.dns_suffix

  cluster_name = local.name
  azs          = var.availability_zones

  tags = merge(
    {
      Project     = var.project
      Environment = var.environment
      ManagedBy   = "terraform"
      Repository  = "vamosjuntos-lakehouse"
    },
    var.tags,
  )
}
