output "name" {
  description = "Bucket name (available once the bucket is encrypted, private and TLS-only)."
  value       = aws_s3_bucket.this.bucket

  depends_on = [
    aws_s3_bucket_public_access_block.this,
    aws_s3_bucket_server_side_encryption_configuration.this,
    aws_s3_bucket_policy.this,
  ]
}

output "arn" {
  description = "Bucket ARN."
  value       = aws_s3_bucket.this.arn
}

output "uri" {
  description = "s3:// URI of the bucket root (available once the bucket is encrypted, private and TLS-only)."
  value       = "s3://${aws_s3_bucket.this.bucket}"

  depends_on = [
    aws_s3_bucket_public_access_block.this,
    aws_s3_bucket_server_side_encryption_configuration.this,
    aws_s3_bucket_policy.this,
  ]
}
