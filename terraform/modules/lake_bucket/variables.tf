variable "name" {
  description = "Globally unique bucket name."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.name))
    error_message = "name must be a valid S3 bucket name (3-63 lowercase letters, digits, '.' or '-')."
  }
}

variable "kms_key_arn" {
  description = "ARN of the KMS key every object is encrypted with (SSE-KMS, with an S3 bucket key)."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "access_log_bucket" {
  description = "Name of the bucket receiving this bucket's S3 server access logs."
  type        = string
}

variable "transitions" {
  description = "Storage-class transitions of current object versions, by age in days."
  type = list(object({
    days          = number
    storage_class = string
  }))
  default = []
}

variable "expiration_days" {
  description = "Days after which current object versions expire; null keeps them forever."
  type        = number
  default     = null
}

variable "noncurrent_version_expiration_days" {
  description = "Days a noncurrent (replaced or deleted) object version is kept."
  type        = number
  default     = 30
}

variable "abort_incomplete_multipart_upload_days" {
  description = "Days after which an unfinished multipart upload is aborted (and stops costing storage)."
  type        = number
  default     = 7
}

variable "force_destroy" {
  description = "Allow `terraform destroy` to delete a non-empty bucket. Keep false outside throwaway stacks."
  type        = bool
  default     = false
}
