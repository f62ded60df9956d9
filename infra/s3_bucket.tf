# The documents bucket. Usually it exists already (documents_bucket_name, read as a data source);
# with create_bucket = true this configuration creates it, locked down.

data "aws_s3_bucket" "documents" {
  count  = var.create_bucket ? 0 : 1
  bucket = var.documents_bucket_name
}

resource "aws_s3_bucket" "documents" {
  #checkov:skip=CKV_AWS_18:Server access logging needs a separate log bucket the operator chooses; enable it there if required.
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery choice outside cachesync; the index can be rebuilt from S3 by a backfill.
  #checkov:skip=CKV2_AWS_61:Lifecycle rules depend on the documents' retention policy, which is the owner's, not cachesync's.
  count  = var.create_bucket ? 1 : 0
  bucket = var.documents_bucket_name
}

resource "aws_s3_bucket_versioning" "documents" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.documents[0].id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "documents" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.documents[0].id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = var.kms_key_arn != null
  }
}

resource "aws_s3_bucket_public_access_block" "documents" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.documents[0].id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "documents" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.documents[0].id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

data "aws_iam_policy_document" "documents_bucket" {
  count = var.create_bucket ? 1 : 0

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.documents[0].arn, "${aws_s3_bucket.documents[0].arn}/*"]

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
    sid       = "DenyOutdatedTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.documents[0].arn, "${aws_s3_bucket.documents[0].arn}/*"]

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
}

resource "aws_s3_bucket_policy" "documents" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.documents[0].id
  policy = data.aws_iam_policy_document.documents_bucket[0].json

  depends_on = [aws_s3_bucket_public_access_block.documents]
}
