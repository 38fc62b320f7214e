terraform {
  # >= 1.10 for the S3 backend's native lock file (use_lockfile), see docs/terraform.md.
  required_version = ">= 1.10.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
  }

  # Partial configuration: bucket, key, region come from `terraform init -backend-config=backend.hcl`
  # (see backend.hcl.example). State holds ARNs and endpoints, never secrets, but it is still encrypted.
  backend "s3" {}
}
