# The index table, the idempotency table, the API keys table and the API usage table. Names, keys,
# GSIs, projection and TTL come from shared/cachesync/index_schema.py, api_keys_schema.py and
# api_usage_schema.py, the single sources of truth; tests/unit/test_infra.py checks that this file
# says the same.

locals {
  # index_schema.SUMMARY_ATTRIBUTES: what the GSIs project (never the body).
  summary_attributes = [
    "record_type",
    "bucket",
    "object_key",
    "kind",
    "doc_id",
    "title",
    "status",
    "customers",
    "index_time",
    "etag",
    "version_id",
    "size",
    "s3_last_modified",
    "expires_at",
  ]
}

resource "aws_dynamodb_table" "index" {
  name                        = var.table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  attribute {
    name = "tr_pk"
    type = "S"
  }

  attribute {
    name = "tr_sk"
    type = "S"
  }

  attribute {
    name = "ct_pk"
    type = "S"
  }

  attribute {
    name = "ct_sk"
    type = "S"
  }

  attribute {
    name = "st_pk"
    type = "S"
  }

  attribute {
    name = "st_sk"
    type = "S"
  }

  # Documents by month: partition "<year-month>", sorted by index time.
  global_secondary_index {
    name               = "TimeRangeIndex"
    hash_key           = "tr_pk"
    range_key          = "tr_sk"
    projection_type    = "INCLUDE"
    non_key_attributes = local.summary_attributes
  }

  # Customer links by year: partition "<customer>#<year>".
  global_secondary_index {
    name               = "CustomerTimeIndex"
    hash_key           = "ct_pk"
    range_key          = "ct_sk"
    projection_type    = "INCLUDE"
    non_key_attributes = local.summary_attributes
  }

  # Documents by status and month: partition "<status>#<year-month>".
  global_secondary_index {
    name               = "StatusTimeIndex"
    hash_key           = "st_pk"
    range_key          = "st_sk"
    projection_type    = "INCLUDE"
    non_key_attributes = local.summary_attributes
  }

  # Epoch seconds. DynamoDB deletes expired items only eventually: every read filters on it too.
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }
}

# Powertools' idempotency utility (write_through): key "id", TTL "expiration".
resource "aws_dynamodb_table" "idempotency" {
  name                        = var.idempotency_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "id"
    type = "S"
  }

  ttl {
    attribute_name = "expiration"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }
}

# The query API's keys (shared/cachesync/api_keys_schema.py): one item per key, partition key
# "key_id"; only a salted hash of each secret is stored. TTL "expires_at" is set on revoked keys
# only (kept 90 days for audits). Written by `cachesync keys`, read by query_api.
resource "aws_dynamodb_table" "api_keys" {
  name                        = var.api_keys_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "key_id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "key_id"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }
}

# The query API's usage (shared/cachesync/api_usage_schema.py): per-key rate-limit counters (one
# item per key and minute, conditional UpdateItem) and signed-request nonces (conditional
# PutItem), partition key "counter_id". Every API instance counts in the same items, so a limit
# holds in total. Items expire by TTL "expires_at" minutes after they are written; DynamoDB
# deletes them only eventually, and the code never reads an expired counter's minute again.
# Point-in-time recovery as for the other tables, though the contents are minutes old: restoring
# them is never needed, but the table is then covered by the same account-wide checks.
resource "aws_dynamodb_table" "api_usage" {
  name                        = var.api_usage_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "counter_id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "counter_id"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }
}
