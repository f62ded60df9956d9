# Shared facts: who and where we deploy, the documents bucket, names and tags.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  tags = merge(
    {
      Application = "cachesync"
      ManagedBy   = "terraform"
    },
    var.tags,
  )

  # Where `make package` writes the deployment artifacts (see tools/package_lambdas.py).
  build_dir = coalesce(var.build_dir, "${path.module}/../build")

  # The bucket: an existing one (the usual case) or one this configuration creates.
  bucket_name = var.documents_bucket_name
  bucket_arn  = var.create_bucket ? aws_s3_bucket.documents[0].arn : data.aws_s3_bucket.documents[0].arn
  # Object ARNs cachesync may touch: the whole bucket, or only keys under documents_prefix.
  documents_arn = "${local.bucket_arn}/${var.documents_prefix}*"
  # The key that encrypts the documents (SSE-KMS), if any: readers need kms:Decrypt on it.
  documents_kms_key_arn = var.create_bucket ? var.kms_key_arn : var.documents_kms_key_arn

  eventbridge = var.notification_mode == "eventbridge"
}
