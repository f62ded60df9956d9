# The index table, the idempotency table, the API keys table, the API usage table, the change feed
# table and the two webhook tables. Names, keys, GSIs, projection, stream and TTL come from
# shared/cachesync/index_schema.py, api_keys_schema.py, api_usage_schema.py,
# change_feed_schema.py and webhooks_schema.py, the single sources of truth;
# tests/unit/test_infra.py checks that this file says the same.

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

  # The change feed (functions/change_feed) reads every item change with both images
  # (index_schema.STREAM_VIEW_TYPE): it decides created / updated / deleted by comparing them.
  # TTL deletions appear in the stream too (as REMOVE records by the DynamoDB service).
  stream_enabled   = true
  stream_view_type = "NEW_AND_OLD_IMAGES"

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

# The change feed's own table (shared/cachesync/change_feed_schema.py): per document, what the feed
# last published and the stream sequence it came from ("published#<bucket>/<key>", "state"), and
# the analytics counters per month ("month#<YYYY-MM>", "<day>#volume#..." / "<day>#lag"). Written
# by change_feed in one transaction per stream record (the sequence condition makes a retried
# record count nothing twice), queried by query_api's /v1/analytics. Nothing expires: the
# counters are the analytics' history, the published states one small item per document.
resource "aws_dynamodb_table" "change_feed" {
  name                        = var.change_feed_table_name
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

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }
}

# Webhook subscriptions (shared/cachesync/webhooks_schema.py): one item per subscription,
# partition key "subscription_id", its signing secrets included (an HMAC needs the secret itself:
# encrypted at rest, with var.kms_key_arn when given). Managed by query_api's /v1/webhooks, scanned
# by change_feed (fan-out), read and updated by webhook_delivery (failure counts, status).
resource "aws_dynamodb_table" "webhooks" {
  name                        = var.webhooks_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "subscription_id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "subscription_id"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }
}

# Delivery attempts (webhooks_schema.py): one item per attempt, partition key "subscription_id",
# sort key "attempt_key" (<time>#<webhook id>#<attempt>: newest first by a descending query),
# expiring by TTL "expires_at" (CACHESYNC_WEBHOOK_ATTEMPT_RETENTION_DAYS, 7 by default). Written
# by webhook_delivery and query_api's test pings, read by GET /v1/webhooks/{id}/deliveries.
resource "aws_dynamodb_table" "webhook_deliveries" {
  name                        = var.webhook_deliveries_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "subscription_id"
  range_key                   = "attempt_key"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "subscription_id"
    type = "S"
  }

  attribute {
    name = "attempt_key"
    type = "S"
  }

  # Epoch seconds. Removal is eventual: recent_attempts filters expired records out itself.
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
