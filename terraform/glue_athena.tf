# Catalog and queries. Terraform owns the database and the workgroup; the pipeline's publish flow owns
# the tables in it (Athena DDL / Glue API with partition projection: no crawler).

resource "aws_glue_catalog_database" "this" {
  name         = var.glue_database_name
  description  = "#VamosJuntos consumer zone: women aged 20-40 from PNAD Continua, with IBGE regional dimensions."
  location_uri = "${module.consumer_bucket.uri}/"
}

resource "aws_athena_workgroup" "this" {
  name          = var.athena_workgroup_name
  description   = "#VamosJuntos analytics questions over the consumer zone."
  state         = "ENABLED"
  force_destroy = false

  configuration {
    # Clients cannot override the results location, the encryption or the scan limit.
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.athena_bytes_scanned_cutoff_per_query
    requester_pays_enabled             = false

    engine_version {
      selected_engine_version = "Athena engine version 3"
    }

    result_configuration {
      output_location       = "s3://${module.athena_results_bucket.name}/${local.athena_results_prefix}"
      expected_bucket_owner = local.account_id

      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = aws_kms_key.lake.arn
      }
    }
  }
}
