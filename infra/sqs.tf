# Event queues: S3 (or EventBridge) -> SQS -> the event handlers, each queue with a DLQ.
# Messages that fail queue_max_receive_count times move to the DLQ (alarm: DLQ depth > 0;
# redrive: docs/RUNBOOK.md).

locals {
  # Event handler (function folder) -> its queue's name suffix.
  event_functions = {
    s3_object_created = "object-created"
    s3_object_removed = "object-removed"
  }
}

resource "aws_sqs_queue" "events_dlq" {
  for_each = local.event_functions

  name                      = "${var.name_prefix}-${each.value}-dlq"
  message_retention_seconds = var.dlq_message_retention_seconds

  # SSE: the customer managed key when given, SQS-owned keys (SSE-SQS) otherwise.
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 300
  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
}

resource "aws_sqs_queue" "events" {
  for_each = local.event_functions

  name = "${var.name_prefix}-${each.value}"
  # Lambda's guidance for SQS event sources: at least 6 x the function timeout + the batching
  # window, so a batch being retried by Lambda is not delivered to a second invocation meanwhile.
  visibility_timeout_seconds = 6 * var.function_timeout_seconds[each.key] + var.event_source_mapping.maximum_batching_window_seconds
  message_retention_seconds  = var.queue_message_retention_seconds
  receive_wait_time_seconds  = 20

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.events_dlq[each.key].arn
    maxReceiveCount     = var.queue_max_receive_count
  })

  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 300
  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
}

# Only its own source queue may use a DLQ (and a redrive moves messages back to it).
resource "aws_sqs_queue_redrive_allow_policy" "events_dlq" {
  for_each = local.event_functions

  queue_url = aws_sqs_queue.events_dlq[each.key].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.events[each.key].arn]
  })
}

# Who may send to an event queue: the documents bucket (sqs mode) or the routing EventBridge rule
# (eventbridge mode), nothing else; and nobody without TLS.
data "aws_iam_policy_document" "events_queue" {
  for_each = local.event_functions

  dynamic "statement" {
    for_each = local.eventbridge ? [] : [each.key]
    content {
      sid       = "AllowDocumentsBucketNotifications"
      effect    = "Allow"
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.events[each.key].arn]

      principals {
        type        = "Service"
        identifiers = ["s3.amazonaws.com"]
      }

      condition {
        test     = "ArnEquals"
        variable = "aws:SourceArn"
        values   = [local.bucket_arn]
      }

      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }
    }
  }

  dynamic "statement" {
    for_each = local.eventbridge ? [each.key] : []
    content {
      sid       = "AllowDocumentsEventBridgeRule"
      effect    = "Allow"
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.events[each.key].arn]

      principals {
        type        = "Service"
        identifiers = ["events.amazonaws.com"]
      }

      condition {
        test     = "ArnEquals"
        variable = "aws:SourceArn"
        values   = [aws_cloudwatch_event_rule.documents[each.key].arn]
      }
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.events[each.key].arn]

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
}

resource "aws_sqs_queue_policy" "events" {
  for_each = local.event_functions

  queue_url = aws_sqs_queue.events[each.key].id
  policy    = data.aws_iam_policy_document.events_queue[each.key].json
}

# Asynchronous invocations of backfill (its own continuations) that fail every retry land here,
# with the request and the error (an on-failure destination).
resource "aws_sqs_queue" "backfill_failures" {
  name                      = "${var.name_prefix}-backfill-failures"
  message_retention_seconds = var.dlq_message_retention_seconds

  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 300
  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
}

# ------------------------------------------------------------------ change feed and webhooks

# Stream batches change_feed gave up on (an on-failure destination of its event source mapping):
# each message describes a batch (shard, first and last sequence numbers, the error), not its
# records. docs/RUNBOOK.md#change-feed-failures.
resource "aws_sqs_queue" "change_feed_failures" {
  name                      = "${var.name_prefix}-change-feed-failures"
  message_retention_seconds = var.dlq_message_retention_seconds

  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 300
  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
}

# Deliveries that failed every attempt (webhook_max_attempts receives). A standard queue keeps a
# message's original enqueue time when it moves: the DLQ's retention counts from the change.
resource "aws_sqs_queue" "webhook_delivery_dlq" {
  name                      = "${var.name_prefix}-webhook-delivery-dlq"
  message_retention_seconds = var.dlq_message_retention_seconds

  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 300
  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
}

# One message per (domain event, subscription), sent by change_feed, consumed by webhook_delivery.
# The retry schedule lives in the messages' visibility: a failed attempt hides its message for the
# backoff's wait (ChangeMessageVisibility, up to webhook_retry_max_seconds); the receive count is
# the attempt number, and maxReceiveCount = webhook_max_attempts (the function's own budget, the
# same variable) ends the retries in the DLQ. The default visibility (6 x timeout + batching
# window, Lambda's guidance) only covers a batch being processed.
resource "aws_sqs_queue" "webhook_delivery" {
  name                       = "${var.name_prefix}-webhook-delivery"
  visibility_timeout_seconds = 6 * var.function_timeout_seconds.webhook_delivery + var.webhook_delivery_source.maximum_batching_window_seconds
  message_retention_seconds  = var.queue_message_retention_seconds
  receive_wait_time_seconds  = 20

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.webhook_delivery_dlq.arn
    maxReceiveCount     = var.webhook_max_attempts
  })

  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 300
  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
}

# Only the delivery queue may use its DLQ (and a redrive moves messages back to it).
resource "aws_sqs_queue_redrive_allow_policy" "webhook_delivery_dlq" {
  queue_url = aws_sqs_queue.webhook_delivery_dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.webhook_delivery.arn]
  })
}

# Senders and consumers are this account's roles (identity policies: change_feed sends,
# webhook_delivery consumes, operators redrive); the queue itself only refuses plain HTTP.
data "aws_iam_policy_document" "webhook_delivery_queue" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.webhook_delivery.arn]

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
}

resource "aws_sqs_queue_policy" "webhook_delivery" {
  queue_url = aws_sqs_queue.webhook_delivery.id
  policy    = data.aws_iam_policy_document.webhook_delivery_queue.json
}
