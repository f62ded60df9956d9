# Workarounds for moto's gaps, used ONLY by `make infra-apply-local` (tools/terraform_local.py
# copies this file next to infra/ in build/terraform/apply-local/). Each block names the moto gap
# it covers; none of this applies to a real deployment, where infra/ is used as it is.

# moto gap: no Lambda recursion config API (PutFunctionRecursionConfig answers 404).
resource "aws_lambda_function_recursion_config" "backfill" {
  count = 0
}

# moto gap: no provisioned concurrency API (PutProvisionedConcurrencyConfig answers 404). The
# default (0) creates none already; this keeps a -var from trying.
resource "aws_lambda_provisioned_concurrency_config" "fallback_read" {
  count = 0
}

# moto gap: GetQueueAttributes never returns RedriveAllowPolicy, so the provider waits (~20
# minutes) for the attribute to appear and then fails. The source queue's redrive_policy (the DLQ
# and maxReceiveCount, checked after apply) does not depend on it.
resource "aws_sqs_queue_redrive_allow_policy" "events_dlq" {
  for_each = {}
}

# moto gap: the same missing RedriveAllowPolicy, for the webhook delivery DLQ (the delivery
# queue's redrive_policy, checked after apply, does not depend on it).
resource "aws_sqs_queue_redrive_allow_policy" "webhook_delivery_dlq" {
  count = 0
}

resource "aws_sqs_queue" "events" {
  lifecycle {
    # moto gap: moto returns redrive_policy re-spaced JSON, which the provider reads as a change
    # on every plan (a perpetual diff); the DLQ and maxReceiveCount are checked after apply.
    ignore_changes = [redrive_policy]
  }
}

resource "aws_sqs_queue" "webhook_delivery" {
  lifecycle {
    # moto gap: the same re-spaced redrive_policy JSON (a perpetual diff) on the delivery queue.
    ignore_changes = [redrive_policy]
  }
}

resource "aws_lambda_function" "function" {
  lifecycle {
    # moto gap: GetFunction returns no LoggingConfig, so the log format and group read as
    # changed on every plan (a perpetual diff).
    ignore_changes = [logging_config]
  }
}

resource "aws_s3_bucket_notification" "documents" {
  lifecycle {
    # moto gap: GetBucketNotificationConfiguration does not return EventBridgeConfiguration, so
    # with notification_mode = "eventbridge" the flag reads as changed on every plan (a
    # perpetual diff). The default sqs mode (false) is not affected.
    ignore_changes = [eventbridge]
  }
}
