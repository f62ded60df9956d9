# Least privilege: one role per function, allowed exactly the calls its code makes.
#
# What each path calls (shared/cachesync/stores/*.py; the IAM action that authorizes it):
#   DynamoDB index  GetItem (reads, guards)            dynamodb:GetItem
#                   PutItem (guarded writes)           dynamodb:PutItem
#                   DeleteItem (write-through rollback) dynamodb:DeleteItem
#                   UpdateItem (write-through claim: the pending marker, ALL_OLD) dynamodb:UpdateItem
#                   (write_through and operators only)
#                   TransactWriteItems (Put document + Put/Delete customer links): IAM has no
#                   action of that name; each member is authorized as dynamodb:PutItem or
#                   dynamodb:DeleteItem (DynamoDB developer guide, "Using IAM with transactions").
#                   Query and Scan are used only by the command line (query, verify), not by
#                   any function: no function may Query or Scan.
#   idempotency     Powertools: GetItem, PutItem, UpdateItem, DeleteItem (write_through only)
#   S3              GetObject / HeadObject          s3:GetObject (+ s3:GetObjectVersion with a VersionId)
#                   ListObjectsV2                   s3:ListBucket (also what makes a missing key a
#                                                   404 rather than a 403 for GetObject/HeadObject)
#                   PutObject, DeleteObject         s3:PutObject, s3:DeleteObject (write_through only)
#   Lambda          Invoke (InvocationType=Event)   lambda:InvokeFunction (backfill, on itself)
#   change feed     GetItem (published state)       dynamodb:GetItem
#                   TransactWriteItems (Put state + Update counters): dynamodb:PutItem and
#                   dynamodb:UpdateItem (its members); Query (analytics, query_api only)
#   webhooks        PutItem/GetItem/Scan/UpdateItem/DeleteItem (subscriptions), PutItem/Query
#                   (attempts); SQS SendMessage (fan-out), ChangeMessageVisibility (postpone)
#   index stream    DescribeStream, GetShardIterator, GetRecords, ListStreams (Lambda's poller,
#                   with change_feed's role; DynamoDB developer guide's policy for stream readers)
#
#   function           S3 objects                         S3 bucket    index              idempotency                 other
#   s3_object_created  GetObject, GetObjectVersion        ListBucket   Get/Put/DeleteItem -                           SQS consume own queue
#   s3_object_removed  - (never reads objects)            ListBucket   Get/Put/DeleteItem -                           SQS consume own queue
#   write_through      GetObject, PutObject, DeleteObject ListBucket   Get/Put/Update/DeleteItem Get/Put/Update/DeleteItem   -
#   fallback_read      GetObject                          ListBucket   Get/Put/DeleteItem -                           -
#   backfill           GetObject                          ListBucket   Get/Put/DeleteItem -                           InvokeFunction on itself, SendMessage to backfill-failures
#   query_api          GetObject, PutObject, DeleteObject ListBucket   Get/Put/Update/DeleteItem Get/Put/Update/DeleteItem   Get/PutItem on the API keys table,
#                                                                      + Query on index/*                                    Update/PutItem on the API usage table,
#                                                                                                                            GetSecretValue on the token secret
#   change_feed        stream read on the index stream only; Get/Put/UpdateItem on the change feed table;
#                      Scan on the webhooks table (list_subscriptions); SendMessage to the delivery queue
#                      and to change-feed-failures (the mapping's on-failure destination)
#   webhook_delivery   consume the delivery queue + ChangeMessageVisibility (backoff); Get/UpdateItem on
#                      the webhooks table (status, failure counts); PutItem on the deliveries table
#   query_api (also)   Query on the change feed table (analytics); Put/Get/Scan/Update/DeleteItem on the
#                      webhooks table and Put/Query on the deliveries table (/v1/webhooks, test pings)
# query_api is the one function that queries the index: GET /v1/documents pages through the GSIs
# (Query with IndexName: index/* resources only, never the base table; no Scan). Its writes go
# through the write-through saga (write_through's permissions). API keys: GetItem (consistent
# read of one key) and PutItem (the admin rotate route); `cachesync keys` creates, lists and
# revokes. API usage: UpdateItem (rate-limit counters) and PutItem (signed-request nonces) only.
# Every role also writes its own log group and sends X-Ray traces. tests/unit/test_infra.py
# pins this matrix.

data "aws_iam_policy_document" "lambda_assume_role" {
  statement {
    sid     = "LambdaAssumesRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each = local.functions

  name               = "${local.function_names[each.key]}-role"
  description        = "Execution role of ${local.function_names[each.key]}"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume_role.json
}

# ------------------------------------------------------------------ every function

data "aws_iam_policy_document" "base" {
  for_each = local.functions

  statement {
    sid       = "WriteOwnLogGroup"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }

  # The one "*" of cachesync, by AWS design: X-Ray's write actions support no resource-level
  # permissions (Service Authorization Reference), so Resource must be "*". Tracer (active
  # tracing) needs them. tests/unit/test_infra.py allows "*" for exactly these two actions.
  statement {
    sid       = "XRayWriteTraces"
    effect    = "Allow"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "base" {
  for_each = local.functions

  name   = "logs-and-traces"
  role   = aws_iam_role.function[each.key].id
  policy = data.aws_iam_policy_document.base[each.key].json
}

# ------------------------------------------------------------------ per function

locals {
  table_arn             = aws_dynamodb_table.index.arn
  idempotency_table_arn = aws_dynamodb_table.idempotency.arn
  # Guarded reads and writes of the index (TransactWriteItems members included: see above).
  index_actions = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"]
  # What the functions need of var.kms_key_arn, through the services that use it.
  cmk_actions = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]

  access_policies = {
    s3_object_created = data.aws_iam_policy_document.s3_object_created.json
    s3_object_removed = data.aws_iam_policy_document.s3_object_removed.json
    write_through     = data.aws_iam_policy_document.write_through.json
    fallback_read     = data.aws_iam_policy_document.fallback_read.json
    backfill          = data.aws_iam_policy_document.backfill.json
    query_api         = data.aws_iam_policy_document.query_api.json
    change_feed       = data.aws_iam_policy_document.change_feed.json
    webhook_delivery  = data.aws_iam_policy_document.webhook_delivery.json
  }
}

# Shared statements. Each function's policy below composes the ones it needs
# (source_policy_documents) with its own statements: every sid is unique within a composed
# document (the provider rejects duplicate sids among source documents, and a `statement` with a
# source's sid would silently replace it), and tests/unit/test_infra.py checks it.

# Sequencer-less events list the key, the removed handler asks whether a key is really gone
# (ListObjectsV2 Prefix=key MaxKeys=1), and with s3:ListBucket a GET/HEAD of an absent key
# answers 404 (a clean not-found) rather than 403.
data "aws_iam_policy_document" "list_documents_bucket" {
  statement {
    sid       = "ListDocumentsBucket"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
  }
}

# Guarded reads and writes of the index: reads, guards, (transactional) puts and deletes,
# write-through rollbacks, fallback_read's read backfills and not-found repairs.
data "aws_iam_policy_document" "index_read_write" {
  statement {
    sid       = "ReadWriteIndex"
    effect    = "Allow"
    actions   = local.index_actions
    resources = [local.table_arn]
  }
}

# Powertools idempotency records (write_through; and the operators' command line).
data "aws_iam_policy_document" "idempotency_records" {
  statement {
    sid       = "IdempotencyRecords"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
    resources = [local.idempotency_table_arn]
  }
}

# Each event handler consumes its own queue, and only its own.
data "aws_iam_policy_document" "consume_own_queue" {
  for_each = local.event_functions

  statement {
    sid       = "ConsumeOwnQueue"
    effect    = "Allow"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.events[each.key].arn]
  }
}

# Asynchronous invocations of backfill: by backfill itself (a long request continues in a new
# invocation of this same function; context.invoked_function_arn is unqualified, or qualified
# when invoked through a version/alias), by operators and by S3 Batch Operations jobs.
data "aws_iam_policy_document" "invoke_backfill" {
  statement {
    sid       = "InvokeBackfill"
    effect    = "Allow"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.function["backfill"].arn, "${aws_lambda_function.function["backfill"].arn}:*"]
  }
}

# Objects encrypted with a documents-bucket KMS key are decrypted by S3 on the caller's behalf.
# Empty (no statement) when the bucket uses no KMS key.
data "aws_iam_policy_document" "documents_key_decrypt_via_s3" {
  dynamic "statement" {
    for_each = local.documents_kms_key_arn == null ? [] : [local.documents_kms_key_arn]
    content {
      sid       = "DecryptDocuments"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${local.region}.amazonaws.com"]
      }
    }
  }
}

# var.kms_key_arn encrypts the tables (every function) and the queues (the event handlers
# consume theirs; backfill sends to backfill-failures). One document per service, so that each
# function names the services it uses the key through: two statements with one kms:ViaService
# value each allow exactly what one statement with both values allows. Empty without a key.
data "aws_iam_policy_document" "cachesync_key_via_dynamodb" {
  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "UseCachesyncKeyViaDynamoDB"
      effect    = "Allow"
      actions   = local.cmk_actions
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["dynamodb.${local.region}.amazonaws.com"]
      }
    }
  }
}

data "aws_iam_policy_document" "cachesync_key_via_sqs" {
  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "UseCachesyncKeyViaSqs"
      effect    = "Allow"
      actions   = local.cmk_actions
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["sqs.${local.region}.amazonaws.com"]
      }
    }
  }
}

# The token secret is encrypted with var.kms_key_arn when one is given: Secrets Manager decrypts
# it on query_api's behalf. Empty without a key.
data "aws_iam_policy_document" "cachesync_key_via_secretsmanager" {
  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "UseCachesyncKeyViaSecretsManager"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }
}

# s3_object_created: consume its queue; read the documents (the version the event names, or the
# current object); list the bucket (sequencer-less events list the key; a GET of a deleted key
# must answer 404, not 403); read/write the index; the documents key via S3; the cachesync key
# via DynamoDB and SQS.
data "aws_iam_policy_document" "s3_object_created" {
  source_policy_documents = [
    data.aws_iam_policy_document.consume_own_queue["s3_object_created"].json,
    data.aws_iam_policy_document.list_documents_bucket.json,
    data.aws_iam_policy_document.index_read_write.json,
    data.aws_iam_policy_document.documents_key_decrypt_via_s3.json,
    data.aws_iam_policy_document.cachesync_key_via_dynamodb.json,
    data.aws_iam_policy_document.cachesync_key_via_sqs.json,
  ]

  # The version the event names (GetObject VersionId=...), or the current object (If-Match).
  statement {
    sid       = "ReadDocuments"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [local.documents_arn]
  }
}

# s3_object_removed: consume its queue; list the bucket (is the key really gone?
# ListObjectsV2 Prefix=key MaxKeys=1); read/write the index; the cachesync key via DynamoDB and
# SQS. This handler never reads objects: no s3:GetObject, and so no documents key, by design
# (docs/ARCHITECTURE.md).
data "aws_iam_policy_document" "s3_object_removed" {
  source_policy_documents = [
    data.aws_iam_policy_document.consume_own_queue["s3_object_removed"].json,
    data.aws_iam_policy_document.list_documents_bucket.json,
    data.aws_iam_policy_document.index_read_write.json,
    data.aws_iam_policy_document.cachesync_key_via_dynamodb.json,
    data.aws_iam_policy_document.cachesync_key_via_sqs.json,
  ]
}

# write_through: read and write the documents; list the bucket; read/write the index; its
# idempotency records; the documents key via S3 (decrypt, and data keys for the objects it
# writes); the cachesync key via DynamoDB.
data "aws_iam_policy_document" "write_through" {
  source_policy_documents = [
    data.aws_iam_policy_document.list_documents_bucket.json,
    data.aws_iam_policy_document.index_read_write.json,
    data.aws_iam_policy_document.idempotency_records.json,
    data.aws_iam_policy_document.documents_key_decrypt_via_s3.json,
    data.aws_iam_policy_document.cachesync_key_via_dynamodb.json,
  ]

  # The claim of a write-through: one UpdateItem turns the index entry into a pending marker and
  # returns the entry it replaced (shared/cachesync/stores/dynamodb_index.py, begin_pending).
  statement {
    sid       = "ClaimIndexEntries"
    effect    = "Allow"
    actions   = ["dynamodb:UpdateItem"]
    resources = [local.table_arn]
  }

  # PutObject, DeleteObject; HeadObject If-Match and the current-state sync's GET (s3:GetObject).
  statement {
    sid       = "ReadWriteDocuments"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = [local.documents_arn]
  }

  # PutObject into a bucket encrypted with a KMS key: S3 asks for a data key on its behalf.
  dynamic "statement" {
    for_each = local.documents_kms_key_arn == null ? [] : [local.documents_kms_key_arn]
    content {
      sid       = "EncryptDocuments"
      effect    = "Allow"
      actions   = ["kms:GenerateDataKey"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${local.region}.amazonaws.com"]
      }
    }
  }
}

# fallback_read: read the documents; list the bucket (a key absent from S3 is a clean not-found,
# 404, only with s3:ListBucket); read/write the index (reads, read backfills and not-found
# repairs: guarded writes); the documents key via S3; the cachesync key via DynamoDB.
data "aws_iam_policy_document" "fallback_read" {
  source_policy_documents = [
    data.aws_iam_policy_document.list_documents_bucket.json,
    data.aws_iam_policy_document.index_read_write.json,
    data.aws_iam_policy_document.documents_key_decrypt_via_s3.json,
    data.aws_iam_policy_document.cachesync_key_via_dynamodb.json,
  ]

  statement {
    sid       = "ReadDocuments"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = [local.documents_arn]
  }
}

# backfill: read the current documents; list the bucket; read/write the index; invoke itself;
# send failed invocations to backfill-failures; the documents key via S3; the cachesync key via
# DynamoDB and SQS.
data "aws_iam_policy_document" "backfill" {
  source_policy_documents = [
    data.aws_iam_policy_document.list_documents_bucket.json,
    data.aws_iam_policy_document.index_read_write.json,
    data.aws_iam_policy_document.invoke_backfill.json,
    data.aws_iam_policy_document.documents_key_decrypt_via_s3.json,
    data.aws_iam_policy_document.cachesync_key_via_dynamodb.json,
    data.aws_iam_policy_document.cachesync_key_via_sqs.json,
  ]

  # Current objects only: tasks naming a version still index the key's current object.
  statement {
    sid       = "ReadDocuments"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = [local.documents_arn]
  }

  # The on-failure destination of its asynchronous invocations.
  statement {
    sid       = "SendFailedInvocations"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.backfill_failures.arn]
  }
}

# query_api: read, write and delete the documents (write-through); list the bucket; read/write
# the index, claim entries, query the GSIs; its idempotency records; read API keys; count
# requests and record nonces in the usage table; read the token secret; query the analytics;
# manage webhook subscriptions and read their attempts; the documents key via S3; the cachesync
# key via DynamoDB and Secrets Manager.
data "aws_iam_policy_document" "query_api" {
  source_policy_documents = [
    data.aws_iam_policy_document.list_documents_bucket.json,
    data.aws_iam_policy_document.index_read_write.json,
    data.aws_iam_policy_document.idempotency_records.json,
    data.aws_iam_policy_document.documents_key_decrypt_via_s3.json,
    data.aws_iam_policy_document.cachesync_key_via_dynamodb.json,
    data.aws_iam_policy_document.cachesync_key_via_secretsmanager.json,
  ]

  # The write-through's claim (as write_through's ClaimIndexEntries).
  statement {
    sid       = "ClaimIndexEntries"
    effect    = "Allow"
    actions   = ["dynamodb:UpdateItem"]
    resources = [local.table_arn]
  }

  # GET /v1/documents: CustomerTimeIndex, StatusTimeIndex or TimeRangeIndex, never the table.
  statement {
    sid       = "QueryIndexes"
    effect    = "Allow"
    actions   = ["dynamodb:Query"]
    resources = ["${local.table_arn}/index/*"]
  }

  # Every authenticated request: one consistent GetItem of the presented key's record. PutItem:
  # POST /v1/api-keys/{key_id}/rotate (admin keys only), conditional on the secret it replaces.
  statement {
    sid       = "ReadApiKeys"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem"]
    resources = [aws_dynamodb_table.api_keys.arn]
  }

  # GET (reads, If-Match guards), PUT and DELETE of documents through the write-through saga.
  statement {
    sid       = "ReadWriteDocuments"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = [local.documents_arn]
  }

  # Rate limits and signed requests (stores/dynamodb_api_usage.py): UpdateItem counts a request
  # in its key's minute item (conditional ADD; the answer carries the counts), PutItem records a
  # signed request's nonce only if absent. Nothing reads, deletes, queries or scans it.
  statement {
    sid       = "CountApiUsage"
    effect    = "Allow"
    actions   = ["dynamodb:UpdateItem", "dynamodb:PutItem"]
    resources = [aws_dynamodb_table.api_usage.arn]
  }

  # GET /v1/analytics/...: one Query per month of the window (stores/dynamodb_change_feed.py,
  # volume and lag). Reads only: the change feed writes the counters.
  statement {
    sid       = "QueryAnalytics"
    effect    = "Allow"
    actions   = ["dynamodb:Query"]
    resources = [aws_dynamodb_table.change_feed.arn]
  }

  # /v1/webhooks (stores/dynamodb_webhooks.py): create (PutItem), get (GetItem), list (Scan),
  # PATCH and rotate-secret (UpdateItem), delete (DeleteItem); a test ping that answers 2xx
  # re-activates a failing subscription (UpdateItem).
  statement {
    sid       = "ManageWebhookSubscriptions"
    effect    = "Allow"
    actions   = ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Scan", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
    resources = [aws_dynamodb_table.webhooks.arn]
  }

  # A test ping's attempt record (PutItem) and GET /v1/webhooks/{id}/deliveries (Query).
  statement {
    sid       = "WebhookAttempts"
    effect    = "Allow"
    actions   = ["dynamodb:PutItem", "dynamodb:Query"]
    resources = [aws_dynamodb_table.webhook_deliveries.arn]
  }

  # Cold start: the pagination-token secret, and only it.
  statement {
    sid       = "ReadTokenSecret"
    effect    = "Allow"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.api_token.arn]
  }

  # PutObject into a bucket encrypted with a KMS key: S3 asks for a data key on its behalf.
  dynamic "statement" {
    for_each = local.documents_kms_key_arn == null ? [] : [local.documents_kms_key_arn]
    content {
      sid       = "EncryptDocuments"
      effect    = "Allow"
      actions   = ["kms:GenerateDataKey"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${local.region}.amazonaws.com"]
      }
    }
  }
}

# change_feed: read the index table's stream (Lambda's poller uses this role), and only that
# stream; the published state and counters in the change feed table (GetItem; TransactWriteItems
# of a Put and Updates); scan the subscriptions (WebhookFanOut, cached refresh_seconds); send
# delivery messages; send failed batches' descriptions to change-feed-failures (the on-failure
# destination); the cachesync key via DynamoDB (tables, stream) and SQS (both queues).
data "aws_iam_policy_document" "change_feed" {
  source_policy_documents = [
    data.aws_iam_policy_document.cachesync_key_via_dynamodb.json,
    data.aws_iam_policy_document.cachesync_key_via_sqs.json,
  ]

  statement {
    sid       = "ReadIndexStream"
    effect    = "Allow"
    actions   = ["dynamodb:DescribeStream", "dynamodb:GetShardIterator", "dynamodb:GetRecords", "dynamodb:ListStreams"]
    resources = [aws_dynamodb_table.index.stream_arn]
  }

  # published(): GetItem; commit(): TransactWriteItems, whose Put member (the published state)
  # is authorized as PutItem and whose Update members (the counters) as UpdateItem.
  statement {
    sid       = "PublishChanges"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.change_feed.arn]
  }

  statement {
    sid       = "ListWebhookSubscriptions"
    effect    = "Allow"
    actions   = ["dynamodb:Scan"]
    resources = [aws_dynamodb_table.webhooks.arn]
  }

  statement {
    sid       = "SendWebhookDeliveries"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.webhook_delivery.arn]
  }

  statement {
    sid       = "SendFailedStreamBatches"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.change_feed_failures.arn]
  }
}

# webhook_delivery: consume the delivery queue, and postpone a failed message's next attempt
# (ChangeMessageVisibility); read a message's subscription and count successes and failures
# (GetItem, UpdateItem); record each attempt (PutItem, TTL); the cachesync key via DynamoDB and
# SQS. Nothing of the index or the documents: TABLE_NAME and BUCKET_NAME are only required by its
# settings model (WebhookDeliverySettings extends BaseSettings).
data "aws_iam_policy_document" "webhook_delivery" {
  source_policy_documents = [
    data.aws_iam_policy_document.cachesync_key_via_dynamodb.json,
    data.aws_iam_policy_document.cachesync_key_via_sqs.json,
  ]

  statement {
    sid       = "ConsumeDeliveryQueue"
    effect    = "Allow"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
    resources = [aws_sqs_queue.webhook_delivery.arn]
  }

  statement {
    sid       = "ReadAndCountSubscriptions"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.webhooks.arn]
  }

  statement {
    sid       = "RecordAttempts"
    effect    = "Allow"
    actions   = ["dynamodb:PutItem"]
    resources = [aws_dynamodb_table.webhook_deliveries.arn]
  }
}

resource "aws_iam_role_policy" "access" {
  for_each = local.functions

  name   = "cachesync-access"
  role   = aws_iam_role.function[each.key].id
  policy = local.access_policies[each.key]
}

# ------------------------------------------------------------------ operators (command line)

# For people and jobs running the `cachesync` command line against this deployment (query, get,
# put, delete, backfill, verify --repair) and starting Lambda backfills. Not attached to anything:
# attach it to the operators' role or group.
# Shared: list the bucket, idempotency records, invoke backfill. Own: the index with Query/Scan
# (functions have neither), the documents, the dead-letter queues' redrives.
data "aws_iam_policy_document" "operator" {
  source_policy_documents = [
    data.aws_iam_policy_document.list_documents_bucket.json,
    data.aws_iam_policy_document.idempotency_records.json,
    data.aws_iam_policy_document.invoke_backfill.json,
  ]

  statement {
    sid       = "ReadWriteIndex"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:Scan"]
    resources = [local.table_arn, "${local.table_arn}/index/*"]
  }

  statement {
    sid       = "ReadWriteDocuments"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = [local.documents_arn]
  }

  # Runbook: inspect, delete and redrive the dead-letter queues. A message move task is
  # authorized against both queues: receive, delete and read attributes on the dead-letter queue
  # (the source), send on the destination (SQS API permissions reference, StartMessageMoveTask).
  statement {
    sid    = "RedriveDeadLetterQueues"
    effect = "Allow"
    actions = [
      "sqs:GetQueueAttributes",
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:StartMessageMoveTask",
      "sqs:ListMessageMoveTasks",
      "sqs:CancelMessageMoveTask",
    ]
    resources = concat(
      [for name in keys(local.event_functions) : aws_sqs_queue.events_dlq[name].arn],
      [aws_sqs_queue.backfill_failures.arn, aws_sqs_queue.change_feed_failures.arn, aws_sqs_queue.webhook_delivery_dlq.arn],
    )
  }

  # `cachesync webhooks add / list / remove / rotate-secret / test` work on the tables directly
  # (as the operator, who sees every customer): the API's webhook permissions.
  statement {
    sid       = "ManageWebhookSubscriptions"
    effect    = "Allow"
    actions   = ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Scan", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
    resources = [aws_dynamodb_table.webhooks.arn]
  }

  statement {
    sid       = "WebhookAttempts"
    effect    = "Allow"
    actions   = ["dynamodb:PutItem", "dynamodb:Query"]
    resources = [aws_dynamodb_table.webhook_deliveries.arn]
  }

  # Runbook (change feed failures): read the records a failed batch names, while the stream
  # still holds them (24 h).
  statement {
    sid       = "ReadIndexStream"
    effect    = "Allow"
    actions   = ["dynamodb:DescribeStream", "dynamodb:GetShardIterator", "dynamodb:GetRecords"]
    resources = [aws_dynamodb_table.index.stream_arn]
  }

  # `cachesync keys create / list / revoke`: the API keys table.
  statement {
    sid       = "ManageApiKeys"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan"]
    resources = [aws_dynamodb_table.api_keys.arn]
  }

  # `cachesync keys create --require-signing` and `keys rotate` show a signing key's signing
  # secret once: it is derived from the token secret (request_signing.signing_master_secret), never
  # stored, so the command reads the token secret. Whoever may create keys may already mint their
  # secrets; nothing else here reads it.
  statement {
    sid       = "ShowSigningSecrets"
    effect    = "Allow"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.api_token.arn]
  }

  # The redrive's destination: the queues the dead-letter queues' messages came from.
  statement {
    sid       = "RedriveToEventQueues"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = concat([for name in keys(local.event_functions) : aws_sqs_queue.events[name].arn], [aws_sqs_queue.webhook_delivery.arn])
  }
}

resource "aws_iam_policy" "operator" {
  name        = "${var.name_prefix}-operator"
  description = "cachesync command line (query, get, put, delete, backfill, verify --repair), Lambda backfills and DLQ redrives"
  policy      = data.aws_iam_policy_document.operator.json
}

# ------------------------------------------------------------------ S3 Batch Operations

locals {
  batch_operations         = var.batch_operations_manifest_bucket != null
  batch_operations_reports = coalesce(var.batch_operations_report_bucket, var.batch_operations_manifest_bucket, "unused")
}

data "aws_iam_policy_document" "batch_operations_assume_role" {
  statement {
    sid     = "BatchOperationsAssumesRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["batchoperations.s3.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# The role an S3 Batch Operations job (LambdaInvoke on backfill) runs as: docs/DEPLOYMENT.md.
resource "aws_iam_role" "batch_operations" {
  count = local.batch_operations ? 1 : 0

  name               = "${var.name_prefix}-batch-operations"
  description        = "S3 Batch Operations jobs that invoke ${local.function_names["backfill"]}"
  assume_role_policy = data.aws_iam_policy_document.batch_operations_assume_role.json
}

data "aws_iam_policy_document" "batch_operations" {
  count = local.batch_operations ? 1 : 0

  source_policy_documents = [data.aws_iam_policy_document.invoke_backfill.json]

  # The manifest (an S3 Inventory manifest.json and its CSV files, or a CSV of bucket,key[,version]).
  statement {
    sid       = "ReadManifest"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["arn:${local.partition}:s3:::${var.batch_operations_manifest_bucket}/*"]
  }

  statement {
    sid       = "WriteCompletionReport"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = ["arn:${local.partition}:s3:::${local.batch_operations_reports}/*"]
  }

  statement {
    sid     = "LocateBuckets"
    effect  = "Allow"
    actions = ["s3:GetBucketLocation"]
    resources = distinct([
      "arn:${local.partition}:s3:::${var.batch_operations_manifest_bucket}",
      "arn:${local.partition}:s3:::${local.batch_operations_reports}",
    ])
  }
}

resource "aws_iam_role_policy" "batch_operations" {
  count = local.batch_operations ? 1 : 0

  name   = "invoke-backfill"
  role   = aws_iam_role.batch_operations[0].id
  policy = data.aws_iam_policy_document.batch_operations[0].json
}
