output "table_name" {
  description = "The index table (CACHESYNC_TABLE_NAME)."
  value       = aws_dynamodb_table.index.name
}

output "table_arn" {
  description = "ARN of the index table."
  value       = aws_dynamodb_table.index.arn
}

output "idempotency_table_name" {
  description = "The idempotency table (CACHESYNC_IDEMPOTENCY_TABLE_NAME)."
  value       = aws_dynamodb_table.idempotency.name
}

output "idempotency_table_arn" {
  description = "ARN of the idempotency table."
  value       = aws_dynamodb_table.idempotency.arn
}

output "bucket_name" {
  description = "The documents bucket (CACHESYNC_BUCKET_NAME)."
  value       = local.bucket_name
}

output "bucket_arn" {
  description = "ARN of the documents bucket."
  value       = local.bucket_arn
}

output "function_arns" {
  description = "Function folder -> function ARN."
  value       = { for name, function in aws_lambda_function.function : name => function.arn }
}

output "function_names" {
  description = "Function folder -> function name."
  value       = { for name, function in aws_lambda_function.function : name => function.function_name }
}

output "fallback_read_alias_arn" {
  description = "Qualified ARN applications invoke the read path through (carries provisioned concurrency)."
  value       = aws_lambda_alias.fallback_read_live.arn
}

output "queue_urls" {
  description = "Event handler -> URL of the queue it consumes."
  value       = { for name, queue in aws_sqs_queue.events : name => queue.url }
}

output "dead_letter_queue_urls" {
  description = "Event handler (and backfill, change_feed, webhook_delivery) -> URL of its dead-letter queue."
  value = merge(
    { for name, queue in aws_sqs_queue.events_dlq : name => queue.url },
    {
      backfill         = aws_sqs_queue.backfill_failures.url
      change_feed      = aws_sqs_queue.change_feed_failures.url
      webhook_delivery = aws_sqs_queue.webhook_delivery_dlq.url
    },
  )
}

output "dead_letter_queue_arns" {
  description = "Event handler (and backfill, change_feed, webhook_delivery) -> ARN of its dead-letter queue. start-message-move-task redrives the event handlers' and webhook_delivery's DLQs only: backfill-failures and change-feed-failures are on-failure destinations, not the DLQs of queues."
  value = merge(
    { for name, queue in aws_sqs_queue.events_dlq : name => queue.arn },
    {
      backfill         = aws_sqs_queue.backfill_failures.arn
      change_feed      = aws_sqs_queue.change_feed_failures.arn
      webhook_delivery = aws_sqs_queue.webhook_delivery_dlq.arn
    },
  )
}

output "webhook_delivery_queue_url" {
  description = "The webhook delivery queue (change_feed sends, webhook_delivery consumes); its DLQ is dead_letter_queue_urls.webhook_delivery."
  value       = aws_sqs_queue.webhook_delivery.url
}

output "index_stream_arn" {
  description = "The index table's stream (NEW_AND_OLD_IMAGES), read by change_feed."
  value       = aws_dynamodb_table.index.stream_arn
}

output "change_feed_table_name" {
  description = "The change feed table (published state per document, analytics counters)."
  value       = aws_dynamodb_table.change_feed.name
}

output "webhooks_table_name" {
  description = "The webhook subscriptions table."
  value       = aws_dynamodb_table.webhooks.name
}

output "webhook_deliveries_table_name" {
  description = "The webhook delivery attempts table (TTL expires_at)."
  value       = aws_dynamodb_table.webhook_deliveries.name
}

output "operator_policy_arn" {
  description = "Managed policy for people and jobs running the cachesync command line and Lambda backfills."
  value       = aws_iam_policy.operator.arn
}

output "batch_operations_role_arn" {
  description = "Role for S3 Batch Operations jobs invoking backfill (null unless batch_operations_manifest_bucket is set)."
  value       = try(aws_iam_role.batch_operations[0].arn, null)
}

output "dashboard_name" {
  description = "The CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.cachesync.dashboard_name
}

output "notification_mode" {
  description = "How S3 events reach the queues (sqs or eventbridge)."
  value       = var.notification_mode
}

output "api_url" {
  description = "The query API's base URL (the stage's invoke URL, ending before /v1): export CACHESYNC_API_URL=$(terraform output -raw api_url); curl \"$CACHESYNC_API_URL/v1/health\"."
  value       = aws_api_gateway_stage.query.invoke_url
}

output "api_docs_url" {
  description = "Swagger UI of the query API."
  value       = "${aws_api_gateway_stage.query.invoke_url}/v1/docs"
}

output "api_stage_arn" {
  description = "ARN of the query API's stage (associate a WAF web ACL with it)."
  value       = aws_api_gateway_stage.query.arn
}

output "api_keys_table_name" {
  description = "The API keys table (CACHESYNC_API_KEYS_TABLE_NAME for `cachesync keys create`)."
  value       = aws_dynamodb_table.api_keys.name
}

output "api_usage_table_name" {
  description = "The API usage table: rate-limit counters and signed-request nonces (CACHESYNC_API_USAGE_TABLE_NAME of query_api)."
  value       = aws_dynamodb_table.api_usage.name
}

output "api_token_secret_arn" {
  description = "The Secrets Manager secret signing the query API's pagination tokens (its value is not an output)."
  value       = aws_secretsmanager_secret.api_token.arn
}
