# The documents bucket's events -> the event queues.
#
# WARNING for existing buckets: a bucket has ONE notification configuration and
# aws_s3_bucket_notification owns all of it. Applying this replaces any notifications the bucket
# already has (Lambda, SNS, SQS or EventBridge) unless they are listed in
# var.existing_notifications (docs/DEPLOYMENT.md, "Turning cachesync on for an existing bucket").

locals {
  # sqs mode: S3 event types per handler. ObjectRemoved:* does not cover lifecycle expirations:
  # those are LifecycleExpiration:Delete / :DeleteMarkerCreated, handled by the removed handler.
  s3_notification_events = {
    s3_object_created = ["s3:ObjectCreated:*"]
    s3_object_removed = ["s3:ObjectRemoved:*", "s3:LifecycleExpiration:*"]
  }

  # eventbridge mode: S3's EventBridge detail types per handler ("Object Deleted" includes
  # lifecycle expirations).
  eventbridge_detail_types = {
    s3_object_created = "Object Created"
    s3_object_removed = "Object Deleted"
  }

  # EventBridge key filter equivalent to the notification prefix/suffix filter (none when both
  # are empty). A list, so that no conditional has to choose between differently shaped objects.
  eventbridge_key_rules = (
    var.documents_prefix == "" && var.documents_suffix == "" ? [] :
    [{ wildcard = "${var.documents_prefix}*${var.documents_suffix}" }]
  )
}

resource "aws_s3_bucket_notification" "documents" {
  bucket      = var.create_bucket ? aws_s3_bucket.documents[0].id : data.aws_s3_bucket.documents[0].id
  eventbridge = local.eventbridge || var.existing_notifications.eventbridge

  dynamic "queue" {
    for_each = { for name, events in local.s3_notification_events : name => events if !local.eventbridge }
    content {
      id            = "${var.name_prefix}-${local.event_functions[queue.key]}"
      queue_arn     = aws_sqs_queue.events[queue.key].arn
      events        = queue.value
      filter_prefix = var.documents_prefix == "" ? null : var.documents_prefix
      filter_suffix = var.documents_suffix == "" ? null : var.documents_suffix
    }
  }

  # The bucket's other notifications, kept as they were.
  dynamic "queue" {
    for_each = var.existing_notifications.queues
    content {
      id            = queue.value.id
      queue_arn     = queue.value.queue_arn
      events        = queue.value.events
      filter_prefix = queue.value.filter_prefix
      filter_suffix = queue.value.filter_suffix
    }
  }

  dynamic "topic" {
    for_each = var.existing_notifications.topics
    content {
      id            = topic.value.id
      topic_arn     = topic.value.topic_arn
      events        = topic.value.events
      filter_prefix = topic.value.filter_prefix
      filter_suffix = topic.value.filter_suffix
    }
  }

  dynamic "lambda_function" {
    for_each = var.existing_notifications.lambda_functions
    content {
      id                  = lambda_function.value.id
      lambda_function_arn = lambda_function.value.lambda_function_arn
      events              = lambda_function.value.events
      filter_prefix       = lambda_function.value.filter_prefix
      filter_suffix       = lambda_function.value.filter_suffix
    }
  }

  # S3 checks that it may send to each queue when the configuration is saved.
  depends_on = [aws_sqs_queue_policy.events]
}

resource "aws_cloudwatch_event_rule" "documents" {
  for_each = { for name, detail_type in local.eventbridge_detail_types : name => detail_type if local.eventbridge }

  name        = "${var.name_prefix}-${local.event_functions[each.key]}"
  description = "cachesync: S3 \"${each.value}\" events of ${local.bucket_name} -> ${aws_sqs_queue.events[each.key].name}"

  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = [each.value]
    detail = merge(
      { bucket = { name = [local.bucket_name] } },
      [for rule in local.eventbridge_key_rules : { object = { key = [rule] } }]...
    )
  })
}

resource "aws_cloudwatch_event_target" "documents" {
  for_each = { for name, detail_type in local.eventbridge_detail_types : name => detail_type if local.eventbridge }

  rule      = aws_cloudwatch_event_rule.documents[each.key].name
  target_id = "${var.name_prefix}-${local.event_functions[each.key]}"
  arn       = aws_sqs_queue.events[each.key].arn

  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }
}
