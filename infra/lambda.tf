# The functions: one per functions/<name>/ folder. Code comes from `make package`
# (tools/package_lambdas.py): a layer with the cachesync package and its runtime dependencies,
# and one small zip per function holding its handler.py.

locals {
  # Function folder -> description.
  functions = {
    s3_object_created = "cachesync: S3 object-created events (SQS) -> index"
    s3_object_removed = "cachesync: S3 object-removed events (SQS) -> index tombstones"
    write_through     = "cachesync: applications write and delete documents (index, then S3)"
    fallback_read     = "cachesync: applications read documents (index, else S3)"
    backfill          = "cachesync: rebuild the index from S3 (requests, S3 Batch Operations)"
    query_api         = "cachesync: the query API behind API Gateway (query, read, write documents)"
    change_feed       = "cachesync: the index table's stream -> domain events (webhooks) and analytics"
    webhook_delivery  = "cachesync: the webhook delivery queue -> signed POSTs to subscribers"
  }

  function_names = { for name in keys(local.functions) : name => "${var.name_prefix}-${replace(name, "_", "-")}" }

  # Each function's CACHESYNC_* variables: exactly the fields of the settings model its handler
  # loads (shared/cachesync/settings.py: SyncSettings, WriteThroughSettings, FallbackReadSettings,
  # BackfillSettings, ApiSettings, ChangeFeedSettings, WebhookDeliverySettings), named by
  # settings.variable_name(). tests/unit/test_infra.py checks this. query_api gets the token
  # secret's ARN (CACHESYNC_API_TOKEN_SECRET_ID), never the secret: it reads the value from
  # Secrets Manager at cold start. CACHESYNC_WEBHOOK_ALLOW_LOOPBACK is "false", fixed: loopback
  # and plain-http webhook targets are for the local stack only, and in AWS no variable may turn
  # the SSRF guard's loopback refusal off.
  function_environment = {
    s3_object_created = {
      CACHESYNC_TABLE_NAME         = aws_dynamodb_table.index.name
      CACHESYNC_BUCKET_NAME        = local.bucket_name
      CACHESYNC_RETENTION_DAYS     = tostring(var.retention_days)
      CACHESYNC_TOMBSTONE_TTL_DAYS = tostring(var.tombstone_ttl_days)
      CACHESYNC_SYNC_WORKERS       = tostring(var.sync_workers)
    }
    s3_object_removed = {
      CACHESYNC_TABLE_NAME         = aws_dynamodb_table.index.name
      CACHESYNC_BUCKET_NAME        = local.bucket_name
      CACHESYNC_RETENTION_DAYS     = tostring(var.retention_days)
      CACHESYNC_TOMBSTONE_TTL_DAYS = tostring(var.tombstone_ttl_days)
      CACHESYNC_SYNC_WORKERS       = tostring(var.sync_workers)
    }
    write_through = {
      CACHESYNC_TABLE_NAME              = aws_dynamodb_table.index.name
      CACHESYNC_BUCKET_NAME             = local.bucket_name
      CACHESYNC_RETENTION_DAYS          = tostring(var.retention_days)
      CACHESYNC_TOMBSTONE_TTL_DAYS      = tostring(var.tombstone_ttl_days)
      CACHESYNC_IDEMPOTENCY_TABLE_NAME  = aws_dynamodb_table.idempotency.name
      CACHESYNC_IDEMPOTENCY_TTL_SECONDS = tostring(var.idempotency_ttl_seconds)
      CACHESYNC_WRITE_RATE_PER_SECOND   = tostring(var.write_rate_per_second)
      CACHESYNC_WRITE_BURST             = tostring(var.write_burst)
    }
    fallback_read = {
      CACHESYNC_TABLE_NAME                  = aws_dynamodb_table.index.name
      CACHESYNC_BUCKET_NAME                 = local.bucket_name
      CACHESYNC_RETENTION_DAYS              = tostring(var.retention_days)
      CACHESYNC_TOMBSTONE_TTL_DAYS          = tostring(var.tombstone_ttl_days)
      CACHESYNC_BREAKER_FAILURE_THRESHOLD   = tostring(var.breaker_failure_threshold)
      CACHESYNC_BREAKER_COOL_DOWN_SECONDS   = tostring(var.breaker_cool_down_seconds)
      CACHESYNC_PENDING_STALE_AFTER_SECONDS = tostring(var.pending_stale_after_seconds)
    }
    backfill = {
      CACHESYNC_TABLE_NAME                   = aws_dynamodb_table.index.name
      CACHESYNC_BUCKET_NAME                  = local.bucket_name
      CACHESYNC_RETENTION_DAYS               = tostring(var.retention_days)
      CACHESYNC_TOMBSTONE_TTL_DAYS           = tostring(var.tombstone_ttl_days)
      CACHESYNC_BACKFILL_RATE_PER_SECOND     = tostring(var.backfill_rate_per_second)
      CACHESYNC_BACKFILL_WORKERS             = tostring(var.backfill_workers)
      CACHESYNC_BACKFILL_PAGE_SIZE           = tostring(var.backfill_page_size)
      CACHESYNC_BACKFILL_STOP_MARGIN_SECONDS = tostring(var.backfill_stop_margin_seconds)
    }
    query_api = {
      CACHESYNC_TABLE_NAME                    = aws_dynamodb_table.index.name
      CACHESYNC_BUCKET_NAME                   = local.bucket_name
      CACHESYNC_RETENTION_DAYS                = tostring(var.retention_days)
      CACHESYNC_TOMBSTONE_TTL_DAYS            = tostring(var.tombstone_ttl_days)
      CACHESYNC_IDEMPOTENCY_TABLE_NAME        = aws_dynamodb_table.idempotency.name
      CACHESYNC_IDEMPOTENCY_TTL_SECONDS       = tostring(var.idempotency_ttl_seconds)
      CACHESYNC_WRITE_RATE_PER_SECOND         = tostring(var.write_rate_per_second)
      CACHESYNC_WRITE_BURST                   = tostring(var.write_burst)
      CACHESYNC_BREAKER_FAILURE_THRESHOLD     = tostring(var.breaker_failure_threshold)
      CACHESYNC_BREAKER_COOL_DOWN_SECONDS     = tostring(var.breaker_cool_down_seconds)
      CACHESYNC_PENDING_STALE_AFTER_SECONDS   = tostring(var.pending_stale_after_seconds)
      CACHESYNC_API_KEYS_TABLE_NAME           = aws_dynamodb_table.api_keys.name
      CACHESYNC_API_TOKEN_SECRET_ID           = aws_secretsmanager_secret.api_token.arn
      CACHESYNC_API_TOKEN_TTL_SECONDS         = tostring(var.api_token_ttl_seconds)
      CACHESYNC_API_CACHE_TTL_SECONDS         = tostring(var.api_cache_ttl_seconds)
      CACHESYNC_API_KEY_CACHE_TTL_SECONDS     = tostring(var.api_key_cache_ttl_seconds)
      CACHESYNC_API_CACHE_MAX_ENTRIES         = tostring(var.api_cache_max_entries)
      CACHESYNC_API_CORS_ORIGINS              = tostring(var.api_cors_origins)
      CACHESYNC_API_USAGE_TABLE_NAME          = aws_dynamodb_table.api_usage.name
      CACHESYNC_API_RATE_LIMITS_ENABLED       = tostring(var.api_rate_limits_enabled)
      CACHESYNC_API_RATE_LIMIT_PER_MINUTE     = tostring(var.api_rate_limit_per_minute)
      CACHESYNC_API_RATE_LIMIT_BURST          = tostring(var.api_rate_limit_burst)
      CACHESYNC_API_RATE_LIMIT_FAILURE_MODE   = tostring(var.api_rate_limit_failure_mode)
      CACHESYNC_API_BULK_CONCURRENCY          = tostring(var.api_bulk_concurrency)
      CACHESYNC_CHANGE_FEED_TABLE_NAME        = aws_dynamodb_table.change_feed.name
      CACHESYNC_WEBHOOKS_TABLE_NAME           = aws_dynamodb_table.webhooks.name
      CACHESYNC_WEBHOOK_DELIVERIES_TABLE_NAME = aws_dynamodb_table.webhook_deliveries.name
      CACHESYNC_WEBHOOK_ALLOW_LOOPBACK        = "false"
    }
    change_feed = {
      CACHESYNC_CHANGE_FEED_TABLE_NAME                = aws_dynamodb_table.change_feed.name
      CACHESYNC_WEBHOOKS_TABLE_NAME                   = aws_dynamodb_table.webhooks.name
      CACHESYNC_WEBHOOK_DELIVERY_QUEUE_URL            = aws_sqs_queue.webhook_delivery.url
      CACHESYNC_WEBHOOK_SUBSCRIPTIONS_REFRESH_SECONDS = tostring(var.webhook_subscriptions_refresh_seconds)
    }
    webhook_delivery = {
      CACHESYNC_TABLE_NAME                      = aws_dynamodb_table.index.name
      CACHESYNC_BUCKET_NAME                     = local.bucket_name
      CACHESYNC_RETENTION_DAYS                  = tostring(var.retention_days)
      CACHESYNC_TOMBSTONE_TTL_DAYS              = tostring(var.tombstone_ttl_days)
      CACHESYNC_WEBHOOKS_TABLE_NAME             = aws_dynamodb_table.webhooks.name
      CACHESYNC_WEBHOOK_DELIVERIES_TABLE_NAME   = aws_dynamodb_table.webhook_deliveries.name
      CACHESYNC_WEBHOOK_DELIVERY_QUEUE_URL      = aws_sqs_queue.webhook_delivery.url
      CACHESYNC_WEBHOOK_ALLOW_LOOPBACK          = "false"
      CACHESYNC_WEBHOOK_CONNECT_TIMEOUT_SECONDS = tostring(var.webhook_connect_timeout_seconds)
      CACHESYNC_WEBHOOK_READ_TIMEOUT_SECONDS    = tostring(var.webhook_read_timeout_seconds)
      CACHESYNC_WEBHOOK_MAX_RESPONSE_BYTES      = tostring(var.webhook_max_response_bytes)
      CACHESYNC_WEBHOOK_RETRY_BASE_SECONDS      = tostring(var.webhook_retry_base_seconds)
      CACHESYNC_WEBHOOK_RETRY_MAX_SECONDS       = tostring(var.webhook_retry_max_seconds)
      CACHESYNC_WEBHOOK_MAX_ATTEMPTS            = tostring(var.webhook_max_attempts)
      CACHESYNC_WEBHOOK_FAILURE_THRESHOLD       = tostring(var.webhook_failure_threshold)
      CACHESYNC_WEBHOOK_ATTEMPT_RETENTION_DAYS  = tostring(var.webhook_attempt_retention_days)
    }
  }

  # Powertools' own variables (the handlers set service and namespace in code).
  powertools_environment = {
    POWERTOOLS_LOG_LEVEL = var.log_level
  }

  # The artifacts `make package` builds, and its manifest (architecture, Python version, hashes).
  layer_zip        = "${local.build_dir}/lambda/layer.zip"
  function_zips    = { for name in keys(local.functions) : name => "${local.build_dir}/lambda/functions/${name}.zip" }
  package_manifest = try(jsondecode(file("${local.build_dir}/package-manifest.json")), null)
}

resource "aws_lambda_layer_version" "runtime" {
  layer_name               = "${var.name_prefix}-runtime"
  description              = "cachesync package and its runtime dependencies (boto3 comes from the Lambda runtime)"
  filename                 = local.layer_zip
  source_code_hash         = filebase64sha256(local.layer_zip)
  compatible_runtimes      = [var.lambda_runtime]
  compatible_architectures = [var.lambda_architecture]

  lifecycle {
    precondition {
      condition     = try(local.package_manifest.architecture == var.lambda_architecture && "python${local.package_manifest.python_version}" == var.lambda_runtime, false)
      error_message = "build/package-manifest.json is missing or was built for another architecture or Python: run `make package LAMBDA_ARCHITECTURE=${var.lambda_architecture} LAMBDA_PYTHON=${trimprefix(var.lambda_runtime, "python")}` first."
    }
  }
}

resource "aws_lambda_function" "function" {
  #checkov:skip=CKV_AWS_116:The event handlers' and webhook_delivery's queues have their own DLQs; change_feed's stream mapping and backfill have on-failure destinations; write_through, fallback_read and query_api are invoked synchronously and their callers get the error.
  #checkov:skip=CKV_AWS_117:cachesync reaches only AWS APIs (S3, DynamoDB, SQS, Lambda); no VPC resource to reach, and a VPC would need NAT or endpoints.
  #checkov:skip=CKV_AWS_173:The environment holds names and tunables, no secrets; Lambda encrypts it at rest with its service key.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile outside this configuration; artifacts are built reproducibly by make package.
  for_each = local.functions

  function_name = local.function_names[each.key]
  description   = each.value
  role          = aws_iam_role.function[each.key].arn

  runtime          = var.lambda_runtime
  architectures    = [var.lambda_architecture]
  handler          = "handler.lambda_handler"
  filename         = local.function_zips[each.key]
  source_code_hash = filebase64sha256(local.function_zips[each.key])
  layers           = [aws_lambda_layer_version.runtime.arn]

  memory_size                    = var.function_memory_mb[each.key]
  timeout                        = var.function_timeout_seconds[each.key]
  reserved_concurrent_executions = var.reserved_concurrency[each.key]
  # Versions only for the read path: its "live" alias can carry provisioned concurrency.
  publish = each.key == "fallback_read"

  environment {
    variables = merge(local.function_environment[each.key], local.powertools_environment)
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text" # Powertools writes structured JSON lines itself
    log_group  = aws_cloudwatch_log_group.function[each.key].name
  }

  # Logs and traces are allowed before the first invocation; query_api's first cold start
  # finds its token secret's value.
  depends_on = [aws_iam_role_policy.base, aws_secretsmanager_secret_version.api_token]
}

# ------------------------------------------------------------------ event sources

resource "aws_lambda_event_source_mapping" "events" {
  for_each = local.event_functions

  event_source_arn                   = aws_sqs_queue.events[each.key].arn
  function_name                      = aws_lambda_function.function[each.key].arn
  batch_size                         = var.event_source_mapping.batch_size
  maximum_batching_window_in_seconds = var.event_source_mapping.maximum_batching_window_seconds
  # The handlers return {"batchItemFailures": [...]}: only failed records are retried.
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.event_source_mapping.maximum_concurrency
  }

  # Lambda checks the role's SQS permissions when the mapping is created.
  depends_on = [aws_iam_role_policy.access]
}

# The index table's stream -> change_feed. TRIM_HORIZON: the mapping starts at the oldest record
# the stream still holds, so the index changes written between the stream's creation and the
# mapping's (same apply, or a mapping re-created later) are published, not skipped as LATEST
# would; the feed is idempotent per document (a record at or before the published sequence is
# ignored), so reading a record twice publishes nothing twice. The handler processes a batch in
# order and reports its first failed record (ReportBatchItemFailures): Lambda checkpoints before
# it and retries from it, bisecting the batch on errors; a record still failing after
# maximum_retry_attempts or older than maximum_record_age goes, as a description of its batch
# (shard, sequence numbers; not the records), to the change-feed-failures queue, and the shard
# moves on. docs/RUNBOOK.md#change-feed-failures says how to replay it.
resource "aws_lambda_event_source_mapping" "change_feed" {
  event_source_arn                   = aws_dynamodb_table.index.stream_arn
  function_name                      = aws_lambda_function.function["change_feed"].arn
  starting_position                  = "TRIM_HORIZON"
  batch_size                         = var.change_feed_stream.batch_size
  maximum_batching_window_in_seconds = var.change_feed_stream.maximum_batching_window_seconds
  bisect_batch_on_function_error     = true
  maximum_retry_attempts             = var.change_feed_stream.maximum_retry_attempts
  maximum_record_age_in_seconds      = var.change_feed_stream.maximum_record_age_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.change_feed_failures.arn
    }
  }

  # Lambda checks the role's stream and destination permissions when the mapping is created.
  depends_on = [aws_iam_role_policy.access]
}

# The delivery queue -> webhook_delivery. A failed POST hides its message for the backoff's wait
# (ChangeMessageVisibility) and is reported in batchItemFailures; after webhook_max_attempts
# receives SQS moves it to the webhook-delivery DLQ.
resource "aws_lambda_event_source_mapping" "webhook_delivery" {
  event_source_arn                   = aws_sqs_queue.webhook_delivery.arn
  function_name                      = aws_lambda_function.function["webhook_delivery"].arn
  batch_size                         = var.webhook_delivery_source.batch_size
  maximum_batching_window_in_seconds = var.webhook_delivery_source.maximum_batching_window_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.webhook_delivery_source.maximum_concurrency
  }

  lifecycle {
    # The messages of a batch are POSTed one after another, each bounded by the connect and read
    # timeouts: a batch of slow receivers must fit in one invocation, with room for the
    # subscription reads and attempt records.
    precondition {
      condition     = var.function_timeout_seconds.webhook_delivery >= var.webhook_delivery_source.batch_size * ceil(var.webhook_connect_timeout_seconds + var.webhook_read_timeout_seconds) + 10
      error_message = "function_timeout_seconds.webhook_delivery must be at least webhook_delivery_source.batch_size x (webhook_connect_timeout_seconds + webhook_read_timeout_seconds) + 10 s."
    }
  }

  depends_on = [aws_iam_role_policy.access]
}

# ------------------------------------------------------------------ read path

# Applications invoke fallback_read through this alias (qualified ARN: output fallback_read_alias_arn).
resource "aws_lambda_alias" "fallback_read_live" {
  name             = "live"
  description      = "The read path; carries provisioned concurrency when configured"
  function_name    = aws_lambda_function.function["fallback_read"].function_name
  function_version = aws_lambda_function.function["fallback_read"].version
}

resource "aws_lambda_provisioned_concurrency_config" "fallback_read" {
  count = var.fallback_read_provisioned_concurrency > 0 ? 1 : 0

  function_name                     = aws_lambda_alias.fallback_read_live.function_name
  qualifier                         = aws_lambda_alias.fallback_read_live.name
  provisioned_concurrent_executions = var.fallback_read_provisioned_concurrency
}

# ------------------------------------------------------------------ backfill

# A backfill request with self_invoke continues in asynchronous invocations of itself; one that
# fails its retries goes to the backfill-failures queue with its payload (the continuation).
resource "aws_lambda_function_event_invoke_config" "backfill" {
  function_name                = aws_lambda_function.function["backfill"].function_name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = 21600

  destination_config {
    on_failure {
      destination = aws_sqs_queue.backfill_failures.arn
    }
  }

  # Lambda checks that the role may send to the destination.
  depends_on = [aws_iam_role_policy.access]
}

# The backfill re-invokes itself asynchronously with its continuation (a long backfill spans
# invocations). Lambda's recursive loop detection stops chains of Lambda-only invocations after
# about 16 links; this chain is deliberate and ends when the listing does.
resource "aws_lambda_function_recursion_config" "backfill" {
  function_name  = aws_lambda_function.function["backfill"].function_name
  recursive_loop = "Allow"
}
