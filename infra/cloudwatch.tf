# Logs, alarms and the dashboard.
#
# Custom metrics come from Powertools' Metrics(namespace="cachesync", service=SERVICE): embedded
# metric format log lines with ONE dimension, "service" = the function folder name
# (e.g. service=fallback_read). Alarms on them must use exactly that dimension.

locals {
  alarm_actions = var.alarm_sns_topic_arn == null ? [] : [var.alarm_sns_topic_arn]

  # Every dead-letter queue: the two event DLQs, backfill's failed asynchronous invocations,
  # change_feed's failed stream batches and the webhook deliveries that spent every attempt.
  dead_letter_queues = merge(
    { for name in keys(local.event_functions) : name => aws_sqs_queue.events_dlq[name].name },
    {
      backfill         = aws_sqs_queue.backfill_failures.name
      change_feed      = aws_sqs_queue.change_feed_failures.name
      webhook_delivery = aws_sqs_queue.webhook_delivery_dlq.name
    },
  )
  # The RUNBOOK section of a dead-letter queue's alarm, when it is not "DLQ depth": these two hold
  # other things (stream batch descriptions; webhook deliveries) and are handled otherwise.
  dead_letter_runbook_sections = {
    change_feed      = "change-feed-failures-queue"
    webhook_delivery = "webhook-delivery-dlq"
  }
}

resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_338:Retention is an operator choice (var.log_retention_days, default 90 days); these are operational logs, not audit records.
  for_each = local.functions

  name              = "/aws/lambda/${local.function_names[each.key]}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# ------------------------------------------------------------------ alarms

# Cache hit rate of the read path: CacheHits / (CacheHits + CacheMisses), periods with fewer than
# cache_hit_rate_min_reads reads count as healthy.
resource "aws_cloudwatch_metric_alarm" "cache_hit_rate" {
  alarm_name          = "${var.name_prefix}-cache-hit-rate"
  alarm_description   = "fallback_read answers less than ${var.cache_hit_rate_threshold_percent}% of reads from the index. Runbook: docs/RUNBOOK.md#cache-hit-rate"
  comparison_operator = "LessThanThreshold"
  threshold           = var.cache_hit_rate_threshold_percent
  evaluation_periods  = var.alarm_evaluation_periods
  datapoints_to_alarm = var.alarm_evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "hit_rate"
    label       = "Cache hit rate (%)"
    expression  = "IF((FILL(hits, 0) + FILL(misses, 0)) >= ${var.cache_hit_rate_min_reads}, 100 * FILL(hits, 0) / (FILL(hits, 0) + FILL(misses, 0)), 100)"
    return_data = true
  }

  metric_query {
    id = "hits"
    metric {
      namespace   = "cachesync"
      metric_name = "CacheHits"
      dimensions  = { service = "fallback_read" }
      period      = var.alarm_period_seconds
      stat        = "Sum"
    }
  }

  metric_query {
    id = "misses"
    metric {
      namespace   = "cachesync"
      metric_name = "CacheMisses"
      dimensions  = { service = "fallback_read" }
      period      = var.alarm_period_seconds
      stat        = "Sum"
    }
  }
}

# Read latency: the read function's p99 duration (the whole invocation, index or S3).
resource "aws_cloudwatch_metric_alarm" "read_latency_p99" {
  alarm_name          = "${var.name_prefix}-read-latency-p99"
  alarm_description   = "fallback_read p99 duration above ${var.read_latency_p99_threshold_ms} ms. Runbook: docs/RUNBOOK.md#read-latency-p99"
  namespace           = "AWS/Lambda"
  metric_name         = "Duration"
  dimensions          = { FunctionName = aws_lambda_function.function["fallback_read"].function_name }
  extended_statistic  = "p99"
  period              = var.alarm_period_seconds
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.read_latency_p99_threshold_ms
  evaluation_periods  = var.alarm_evaluation_periods
  datapoints_to_alarm = var.alarm_evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# Errors / Invocations per function. (SQS handlers report failed records in batchItemFailures,
# which are not Lambda errors: those show as DLQ depth instead.)
resource "aws_cloudwatch_metric_alarm" "error_rate" {
  for_each = local.functions

  alarm_name          = "${local.function_names[each.key]}-error-rate"
  alarm_description   = "${local.function_names[each.key]}: more than ${var.error_rate_threshold_percent}% of invocations fail. Runbook: docs/RUNBOOK.md#function-error-rate"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.error_rate_threshold_percent
  evaluation_periods  = var.alarm_evaluation_periods
  datapoints_to_alarm = var.alarm_evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "error_rate"
    label       = "Error rate (%)"
    expression  = "100 * FILL(errors, 0) / invocations"
    return_data = true
  }

  metric_query {
    id = "errors"
    metric {
      namespace   = "AWS/Lambda"
      metric_name = "Errors"
      dimensions  = { FunctionName = aws_lambda_function.function[each.key].function_name }
      period      = var.alarm_period_seconds
      stat        = "Sum"
    }
  }

  metric_query {
    id = "invocations"
    metric {
      namespace   = "AWS/Lambda"
      metric_name = "Invocations"
      dimensions  = { FunctionName = aws_lambda_function.function[each.key].function_name }
      period      = var.alarm_period_seconds
      stat        = "Sum"
    }
  }
}

# Any message in a dead-letter queue needs a person.
resource "aws_cloudwatch_metric_alarm" "dlq_depth" {
  for_each = local.dead_letter_queues

  alarm_name          = "${each.value}-depth"
  alarm_description   = "${each.value} holds messages that failed every retry. Runbook: docs/RUNBOOK.md#${lookup(local.dead_letter_runbook_sections, each.key, "dlq-depth")}"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 60
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# Event time -> index write, p99, per event handler.
resource "aws_cloudwatch_metric_alarm" "sync_lag_p99" {
  for_each = local.event_functions

  alarm_name          = "${local.function_names[each.key]}-sync-lag-p99"
  alarm_description   = "${each.key}: p99 SyncLag above ${var.sync_lag_p99_threshold_ms} ms (index behind S3). Runbook: docs/RUNBOOK.md#sync-lag-p99"
  namespace           = "cachesync"
  metric_name         = "SyncLag"
  dimensions          = { service = each.key }
  extended_statistic  = "p99"
  period              = var.alarm_period_seconds
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.sync_lag_p99_threshold_ms
  evaluation_periods  = var.alarm_evaluation_periods
  datapoints_to_alarm = var.alarm_evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# Events waiting too long: the consumer is down, throttled or failing (SyncLag has no data then).
resource "aws_cloudwatch_metric_alarm" "queue_age" {
  for_each = local.event_functions

  alarm_name          = "${aws_sqs_queue.events[each.key].name}-oldest-message-age"
  alarm_description   = "${aws_sqs_queue.events[each.key].name}: oldest event older than ${var.queue_age_threshold_seconds} s. Runbook: docs/RUNBOOK.md#queue-oldest-message-age"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = aws_sqs_queue.events[each.key].name }
  statistic           = "Maximum"
  period              = var.alarm_period_seconds
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.queue_age_threshold_seconds
  evaluation_periods  = var.alarm_evaluation_periods
  datapoints_to_alarm = var.alarm_evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# ------------------------------------------------------------------ change feed and webhooks

# How far the change feed is behind the index: the age of the last stream record change_feed read
# (Lambda publishes IteratorAge for stream event sources). Grows when the function fails, is
# throttled or cannot keep up; webhooks and analytics are that late.
resource "aws_cloudwatch_metric_alarm" "change_feed_iterator_age" {
  alarm_name          = "${local.function_names["change_feed"]}-iterator-age"
  alarm_description   = "change_feed is more than ${var.change_feed_iterator_age_threshold_ms} ms behind the index table's stream (webhooks and analytics late). Runbook: docs/RUNBOOK.md#change-feed-iterator-age"
  namespace           = "AWS/Lambda"
  metric_name         = "IteratorAge"
  dimensions          = { FunctionName = aws_lambda_function.function["change_feed"].function_name }
  statistic           = "Maximum"
  period              = var.alarm_period_seconds
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.change_feed_iterator_age_threshold_ms
  evaluation_periods  = var.alarm_evaluation_periods
  datapoints_to_alarm = var.alarm_evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# Stream records the feed failed to publish (change_feed_processing.py: ChangeFeedFailures, one
# per failed batch, in service "change_feed"). A failure is retried from that record; failures in
# every period of the evaluation window mean a record that keeps failing and holds its shard.
resource "aws_cloudwatch_metric_alarm" "change_feed_failures" {
  alarm_name          = "${local.function_names["change_feed"]}-failures"
  alarm_description   = "change_feed failed to publish stream records in ${var.alarm_evaluation_periods} periods in a row. Runbook: docs/RUNBOOK.md#change-feed-failures"
  namespace           = "cachesync"
  metric_name         = "ChangeFeedFailures"
  dimensions          = { service = "change_feed" }
  statistic           = "Sum"
  period              = var.alarm_period_seconds
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = var.alarm_evaluation_periods
  datapoints_to_alarm = var.alarm_evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# webhook_delivery emits no metric of its own: it logs one JSON line per queued delivery
# (webhooks/queue_processing.py: message "webhook delivery", result delivered / retry /
# exhausted / skipped). These metric filters count them, in namespace cachesync with the
# "service" dimension its log lines carry (Powertools Logger: service = "webhook_delivery").
# An attempt is a POST (delivered, retry, exhausted; skipped ones POST nothing); a failure is a
# POST that did not get a 2xx (retry: tried again later; exhausted: the last attempt).
# The lines are INFO: with log_level WARNING or ERROR they are not written and these count 0.
locals {
  webhook_delivery_log_metrics = {
    WebhookDeliveryAttempts = "{ $.message = \"webhook delivery\" && ($.result = \"delivered\" || $.result = \"retry\" || $.result = \"exhausted\") }"
    WebhookDeliveryFailures = "{ $.message = \"webhook delivery\" && ($.result = \"retry\" || $.result = \"exhausted\") }"
  }
}

resource "aws_cloudwatch_log_metric_filter" "webhook_delivery" {
  for_each = local.webhook_delivery_log_metrics

  name           = "${local.function_names["webhook_delivery"]}-${each.key}"
  log_group_name = aws_cloudwatch_log_group.function["webhook_delivery"].name
  pattern        = each.value

  metric_transformation {
    namespace  = "cachesync"
    name       = each.key
    value      = "1"
    unit       = "Count"
    dimensions = { service = "$.service" }
  }
}

# Share of delivery attempts that failed; periods with fewer than webhook_alarm_min_attempts
# attempts count as healthy (one subscriber down shows as its subscription's "failing" status).
resource "aws_cloudwatch_metric_alarm" "webhook_failure_rate" {
  alarm_name          = "${var.name_prefix}-webhook-failure-rate"
  alarm_description   = "More than ${var.webhook_failure_rate_threshold_percent}% of webhook delivery attempts fail. Runbook: docs/RUNBOOK.md#webhook-failure-rate"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.webhook_failure_rate_threshold_percent
  evaluation_periods  = var.alarm_evaluation_periods
  datapoints_to_alarm = var.alarm_evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "rate"
    label       = "Webhook delivery failure rate (%)"
    expression  = "IF(FILL(attempts, 0) >= ${var.webhook_alarm_min_attempts}, 100 * FILL(failures, 0) / attempts, 0)"
    return_data = true
  }

  metric_query {
    id = "attempts"
    metric {
      namespace   = "cachesync"
      metric_name = "WebhookDeliveryAttempts"
      dimensions  = { service = "webhook_delivery" }
      period      = var.alarm_period_seconds
      stat        = "Sum"
    }
  }

  metric_query {
    id = "failures"
    metric {
      namespace   = "cachesync"
      metric_name = "WebhookDeliveryFailures"
      dimensions  = { service = "webhook_delivery" }
      period      = var.alarm_period_seconds
      stat        = "Sum"
    }
  }

  # The metrics exist once their filters do.
  depends_on = [aws_cloudwatch_log_metric_filter.webhook_delivery]
}

# ------------------------------------------------------------------ query API alarms

locals {
  # API Gateway publishes REST API metrics per API name and stage.
  api_dimensions = {
    ApiName = aws_api_gateway_rest_api.query.name
    Stage   = aws_api_gateway_stage.query.stage_name
  }
}

# Share of requests answered 5xx (the function's errors, Lambda throttles and timeouts as 502/503/504).
resource "aws_cloudwatch_metric_alarm" "api_5xx_rate" {
  alarm_name          = "${var.name_prefix}-api-5xx-rate"
  alarm_description   = "The query API answers more than ${var.api_5xx_rate_threshold_percent}% of requests with 5xx. Runbook: docs/RUNBOOK.md#api-5xx-rate"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.api_5xx_rate_threshold_percent
  evaluation_periods  = var.alarm_evaluation_periods
  datapoints_to_alarm = var.alarm_evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "rate"
    label       = "5xx rate (%)"
    expression  = "IF(FILL(requests, 0) >= ${var.api_alarm_min_requests}, 100 * FILL(errors, 0) / requests, 0)"
    return_data = true
  }

  metric_query {
    id = "errors"
    metric {
      namespace   = "AWS/ApiGateway"
      metric_name = "5XXError"
      dimensions  = local.api_dimensions
      period      = var.alarm_period_seconds
      stat        = "Sum"
    }
  }

  metric_query {
    id = "requests"
    metric {
      namespace   = "AWS/ApiGateway"
      metric_name = "Count"
      dimensions  = local.api_dimensions
      period      = var.alarm_period_seconds
      stat        = "Sum"
    }
  }
}

# A spike of 4xx: a client broken by a release, a revoked key still in use, someone guessing keys.
resource "aws_cloudwatch_metric_alarm" "api_4xx_rate" {
  alarm_name          = "${var.name_prefix}-api-4xx-rate"
  alarm_description   = "More than ${var.api_4xx_rate_threshold_percent}% of the query API's requests answer 4xx. Runbook: docs/RUNBOOK.md#api-4xx-rate"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.api_4xx_rate_threshold_percent
  evaluation_periods  = var.alarm_evaluation_periods
  datapoints_to_alarm = var.alarm_evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "rate"
    label       = "4xx rate (%)"
    expression  = "IF(FILL(requests, 0) >= ${var.api_alarm_min_requests}, 100 * FILL(errors, 0) / requests, 0)"
    return_data = true
  }

  metric_query {
    id = "errors"
    metric {
      namespace   = "AWS/ApiGateway"
      metric_name = "4XXError"
      dimensions  = local.api_dimensions
      period      = var.alarm_period_seconds
      stat        = "Sum"
    }
  }

  metric_query {
    id = "requests"
    metric {
      namespace   = "AWS/ApiGateway"
      metric_name = "Count"
      dimensions  = local.api_dimensions
      period      = var.alarm_period_seconds
      stat        = "Sum"
    }
  }
}

# p95 of API Gateway's Latency: request received to response sent, the function included.
resource "aws_cloudwatch_metric_alarm" "api_latency_p95" {
  alarm_name          = "${var.name_prefix}-api-latency-p95"
  alarm_description   = "The query API's p95 latency is above ${var.api_latency_p95_threshold_ms} ms. Runbook: docs/RUNBOOK.md#api-latency-p95"
  namespace           = "AWS/ApiGateway"
  metric_name         = "Latency"
  dimensions          = local.api_dimensions
  extended_statistic  = "p95"
  period              = var.alarm_period_seconds
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.api_latency_p95_threshold_ms
  evaluation_periods  = var.alarm_evaluation_periods
  datapoints_to_alarm = var.alarm_evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# ------------------------------------------------------------------ query API rate limits

# The query API's own metrics, namespace "cachesync", a contract with the code that emits them
# (docs/RUNBOOK.md#query-api-metrics):
#   per request (api/access_log.py), two EMF sets: dimensions {service, route} and {service, key_id}
#     ApiRequests, ApiClientErrors (4xx), ApiServerErrors (5xx), ApiThrottled (429 of a per-key
#     rate limit), ApiLatency (ms)
#   per failure to reach the usage table (the function's Metrics: dimension {service} only)
#     ApiRateLimiterUnavailable (served unlimited with api_rate_limit_failure_mode = "open",
#     refused with 503 with "closed")
# No set carries totals: the throttled alarm sums the {service, route} set with a Metrics Insights
# query (an alarm cannot use SEARCH), the dashboard uses SEARCH per route and per key.
locals {
  api_metric_dimensions = { service = "query_api" }
  api_throttled_query   = "SELECT SUM(ApiThrottled) FROM SCHEMA(\"cachesync\", route, service) WHERE service = 'query_api'"
}

# Requests refused by the per-key rate limits: a client looping on 429s, a limit set too low for a
# real workload, or a key shared by more callers than planned.
resource "aws_cloudwatch_metric_alarm" "api_throttled_requests" {
  alarm_name          = "${var.name_prefix}-api-throttled-requests"
  alarm_description   = "More than ${var.api_throttled_requests_threshold} of the query API's requests per period are refused (429) by per-key rate limits. Runbook: docs/RUNBOOK.md#api-throttled-requests"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.api_throttled_requests_threshold
  evaluation_periods  = var.alarm_evaluation_periods
  datapoints_to_alarm = var.alarm_evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "throttled"
    label       = "Requests refused by per-key rate limits"
    expression  = local.api_throttled_query
    period      = var.alarm_period_seconds
    return_data = true
  }
}

# The limiter's own storage failing: with the "open" failure mode requests are served without
# limits (nothing is refused, but nothing is counted either); with "closed" they are refused
# with 503. Either way a person should know within one period.
resource "aws_cloudwatch_metric_alarm" "api_rate_limiter_unavailable" {
  alarm_name          = "${var.name_prefix}-api-rate-limiter-unavailable"
  alarm_description   = "The query API could not reach its usage table to count requests (failure mode ${var.api_rate_limit_failure_mode}: ${var.api_rate_limit_failure_mode == "open" ? "served without limits" : "refused with 503"}). Runbook: docs/RUNBOOK.md#api-rate-limiter-unavailable"
  namespace           = "cachesync"
  metric_name         = "ApiRateLimiterUnavailable"
  dimensions          = local.api_metric_dimensions
  statistic           = "Sum"
  period              = var.alarm_period_seconds
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# ------------------------------------------------------------------ dashboard

locals {
  function_list = sort(keys(local.functions))

  dashboard_widgets = [
    {
      type = "metric", x = 0, y = 0, width = 12, height = 6
      properties = {
        title  = "Cache hit rate (fallback_read, %)"
        region = local.region
        view   = "timeSeries"
        stat   = "Sum"
        period = var.alarm_period_seconds
        yAxis  = { left = { min = 0, max = 100 } }
        metrics = [
          [{ expression = "100 * FILL(hits, 0) / (FILL(hits, 0) + FILL(misses, 0))", label = "hit rate", id = "rate" }],
          ["cachesync", "CacheHits", "service", "fallback_read", { id = "hits", visible = false }],
          ["cachesync", "CacheMisses", "service", "fallback_read", { id = "misses", visible = false }],
        ]
        annotations = { horizontal = [{ label = "alarm", value = var.cache_hit_rate_threshold_percent }] }
      }
    },
    {
      type = "metric", x = 12, y = 0, width = 12, height = 6
      properties = {
        title  = "Read latency p99 (ms)"
        region = local.region
        view   = "timeSeries"
        period = var.alarm_period_seconds
        metrics = [
          ["AWS/Lambda", "Duration", "FunctionName", local.function_names["fallback_read"], { stat = "p99", label = "fallback_read duration p99" }],
          ["cachesync", "FallbackLatency", "service", "fallback_read", { stat = "p99", label = "S3 fallback p99" }],
        ]
        annotations = { horizontal = [{ label = "alarm", value = var.read_latency_p99_threshold_ms }] }
      }
    },
    {
      type = "metric", x = 0, y = 6, width = 12, height = 6
      properties = {
        title  = "Lambda error rate (%)"
        region = local.region
        view   = "timeSeries"
        stat   = "Sum"
        period = var.alarm_period_seconds
        metrics = concat(
          [for i, name in local.function_list : [{ expression = "100 * FILL(e${i}, 0) / i${i}", label = name, id = "r${i}" }]],
          [for i, name in local.function_list : ["AWS/Lambda", "Errors", "FunctionName", local.function_names[name], { id = "e${i}", visible = false }]],
          [for i, name in local.function_list : ["AWS/Lambda", "Invocations", "FunctionName", local.function_names[name], { id = "i${i}", visible = false }]],
        )
        annotations = { horizontal = [{ label = "alarm", value = var.error_rate_threshold_percent }] }
      }
    },
    {
      type = "metric", x = 12, y = 6, width = 12, height = 6
      properties = {
        title   = "Dead-letter queue depth"
        region  = local.region
        view    = "timeSeries"
        stat    = "Maximum"
        period  = 60
        metrics = [for name, queue in local.dead_letter_queues : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue, { label = queue }]]
      }
    },
    {
      type = "metric", x = 0, y = 12, width = 12, height = 6
      properties = {
        title       = "Sync lag p99 (ms, event time -> index)"
        region      = local.region
        view        = "timeSeries"
        stat        = "p99"
        period      = var.alarm_period_seconds
        metrics     = [for name in keys(local.event_functions) : ["cachesync", "SyncLag", "service", name, { label = name }]]
        annotations = { horizontal = [{ label = "alarm", value = var.sync_lag_p99_threshold_ms }] }
      }
    },
    {
      type = "metric", x = 12, y = 12, width = 12, height = 6
      properties = {
        title   = "Event queues: oldest message age (s)"
        region  = local.region
        view    = "timeSeries"
        stat    = "Maximum"
        period  = var.alarm_period_seconds
        metrics = [for name in keys(local.event_functions) : ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", aws_sqs_queue.events[name].name, { label = name }]]
      }
    },
    {
      type = "metric", x = 0, y = 18, width = 12, height = 6
      properties = {
        title  = "Events (count)"
        region = local.region
        view   = "timeSeries"
        stat   = "Sum"
        period = var.alarm_period_seconds
        metrics = [
          for pair in setproduct(sort(keys(local.event_functions)), ["EventsApplied", "EventsDuplicate", "EventsStale", "EventsIgnored", "EventsFailed"]) :
          ["cachesync", pair[1], "service", pair[0], { label = "${pair[0]} ${pair[1]}" }]
        ]
      }
    },
    {
      type = "metric", x = 12, y = 18, width = 12, height = 6
      properties = {
        title   = "Throttles (count)"
        region  = local.region
        view    = "timeSeries"
        stat    = "Sum"
        period  = var.alarm_period_seconds
        metrics = [for name in local.function_list : ["AWS/Lambda", "Throttles", "FunctionName", local.function_names[name], { label = name }]]
      }
    },
    {
      type = "metric", x = 0, y = 24, width = 12, height = 6
      properties = {
        title  = "Query API requests and errors (count)"
        region = local.region
        view   = "timeSeries"
        stat   = "Sum"
        period = var.alarm_period_seconds
        metrics = [
          for name in ["Count", "4XXError", "5XXError"] :
          ["AWS/ApiGateway", name, "ApiName", local.api_dimensions.ApiName, "Stage", local.api_dimensions.Stage, { label = name }]
        ]
      }
    },
    {
      type = "metric", x = 12, y = 24, width = 12, height = 6
      properties = {
        title  = "Query API latency (ms)"
        region = local.region
        view   = "timeSeries"
        period = var.alarm_period_seconds
        metrics = concat(
          [for stat in ["p50", "p95", "p99"] : ["AWS/ApiGateway", "Latency", "ApiName", local.api_dimensions.ApiName, "Stage", local.api_dimensions.Stage, { stat = stat, label = "latency ${stat}" }]],
          [["AWS/ApiGateway", "IntegrationLatency", "ApiName", local.api_dimensions.ApiName, "Stage", local.api_dimensions.Stage, { stat = "p95", label = "function (integration) p95" }]],
        )
        annotations = { horizontal = [{ label = "alarm (p95)", value = var.api_latency_p95_threshold_ms }] }
      }
    },
    {
      # ApiCacheHits / ApiCacheMisses: one point per cached lookup (shared/cachesync/api/cache_metrics.py).
      type = "metric", x = 0, y = 30, width = 12, height = 6
      properties = {
        title  = "Query API cache hit ratio (%)"
        region = local.region
        view   = "timeSeries"
        stat   = "Sum"
        period = var.alarm_period_seconds
        yAxis  = { left = { min = 0, max = 100 } }
        metrics = [
          [{ expression = "100 * (FILL(hq, 0) + FILL(hd, 0)) / (FILL(hq, 0) + FILL(hd, 0) + FILL(mq, 0) + FILL(md, 0))", label = "all lookups", id = "all" }],
          [{ expression = "100 * FILL(hq, 0) / (FILL(hq, 0) + FILL(mq, 0))", label = "query pages", id = "queries" }],
          [{ expression = "100 * FILL(hd, 0) / (FILL(hd, 0) + FILL(md, 0))", label = "documents", id = "documents" }],
          ["cachesync", "ApiCacheHits", "service", "query_api", "cache", "query", { id = "hq", visible = false }],
          ["cachesync", "ApiCacheMisses", "service", "query_api", "cache", "query", { id = "mq", visible = false }],
          ["cachesync", "ApiCacheHits", "service", "query_api", "cache", "document", { id = "hd", visible = false }],
          ["cachesync", "ApiCacheMisses", "service", "query_api", "cache", "document", { id = "md", visible = false }],
        ]
      }
    },
    {
      type = "metric", x = 12, y = 30, width = 12, height = 6
      properties = {
        title  = "query_api function"
        region = local.region
        view   = "timeSeries"
        period = var.alarm_period_seconds
        metrics = [
          ["AWS/Lambda", "Duration", "FunctionName", local.function_names["query_api"], { stat = "p95", label = "duration p95 (ms)" }],
          ["AWS/Lambda", "ConcurrentExecutions", "FunctionName", local.function_names["query_api"], { stat = "Maximum", label = "concurrent executions" }],
          ["AWS/Lambda", "Throttles", "FunctionName", local.function_names["query_api"], { stat = "Sum", label = "throttles" }],
        ]
      }
    },
    {
      type = "metric", x = 0, y = 36, width = 12, height = 6
      properties = {
        title  = "Query API rate limits (count)"
        region = local.region
        view   = "timeSeries"
        stat   = "Sum"
        period = var.alarm_period_seconds
        metrics = [
          [{ expression = local.api_throttled_query, id = "throttled", label = "throttled (429, per-key limits)", period = var.alarm_period_seconds }],
          ["cachesync", "ApiRateLimiterUnavailable", "service", "query_api", { label = "limiter unavailable (${var.api_rate_limit_failure_mode})" }],
          ["AWS/Lambda", "Throttles", "FunctionName", local.function_names["query_api"], { label = "Lambda throttles (concurrency)" }],
        ]
        annotations = { horizontal = [{ label = "alarm (throttled)", value = var.api_throttled_requests_threshold }] }
      }
    },
    {
      # One line per route (dimension "route": METHOD /template), whatever routes the API has.
      type = "metric", x = 12, y = 36, width = 12, height = 6
      properties = {
        title  = "Query API requests and errors per route (count)"
        region = local.region
        view   = "timeSeries"
        stat   = "Sum"
        period = var.alarm_period_seconds
        metrics = [
          for name in ["ApiRequests", "ApiClientErrors", "ApiServerErrors"] :
          [{ expression = "SEARCH('{cachesync,service,route} MetricName=\"${name}\" service=\"query_api\"', 'Sum', ${var.alarm_period_seconds})", id = lower(name), label = name }]
        ]
      }
    },
    {
      type = "metric", x = 0, y = 42, width = 12, height = 6
      properties = {
        title  = "Query API latency p95 per route (ms)"
        region = local.region
        view   = "timeSeries"
        period = var.alarm_period_seconds
        metrics = [
          [{ expression = "SEARCH('{cachesync,service,route} MetricName=\"ApiLatency\" service=\"query_api\"', 'p95', ${var.alarm_period_seconds})", id = "latency", label = "p95" }],
        ]
      }
    },
    {
      # The ten busiest keys and the ten most throttled (dimension "key_id": the key's id, never
      # its secret; keys beyond the emitter's cap are folded into key_id=other).
      type = "metric", x = 12, y = 42, width = 12, height = 6
      properties = {
        title  = "Query API requests and throttled per key (top 10, count)"
        region = local.region
        view   = "timeSeries"
        stat   = "Sum"
        period = var.alarm_period_seconds
        metrics = [
          for name in ["ApiRequests", "ApiThrottled"] :
          [{ expression = "SORT(SEARCH('{cachesync,service,key_id} MetricName=\"${name}\" service=\"query_api\"', 'Sum', ${var.alarm_period_seconds}), SUM, DESC, 10)", id = lower(name), label = name }]
        ]
      }
    },
    {
      type = "metric", x = 0, y = 48, width = 12, height = 6
      properties = {
        title  = "Change feed: stream iterator age (ms)"
        region = local.region
        view   = "timeSeries"
        stat   = "Maximum"
        period = var.alarm_period_seconds
        metrics = [
          ["AWS/Lambda", "IteratorAge", "FunctionName", local.function_names["change_feed"], { label = "change_feed iterator age (max)" }],
        ]
        annotations = { horizontal = [{ label = "alarm", value = var.change_feed_iterator_age_threshold_ms }] }
      }
    },
    {
      # change_feed_processing.py: ChangeEvents.<event type> per published event,
      # ChangeRecordsIgnored (pending markers, housekeeping, rewrites that change nothing),
      # ChangeFeedFailures (a batch stopped at a failed record).
      type = "metric", x = 12, y = 48, width = 12, height = 6
      properties = {
        title  = "Change feed events (count)"
        region = local.region
        view   = "timeSeries"
        stat   = "Sum"
        period = var.alarm_period_seconds
        metrics = concat(
          [for event in ["document.created", "document.updated", "document.deleted"] : ["cachesync", "ChangeEvents.${event}", "service", "change_feed", { label = event }]],
          [
            ["cachesync", "ChangeRecordsIgnored", "service", "change_feed", { label = "records ignored" }],
            ["cachesync", "ChangeFeedFailures", "service", "change_feed", { label = "failures" }],
          ],
        )
      }
    },
    {
      type = "metric", x = 0, y = 54, width = 12, height = 6
      properties = {
        title  = "Webhook deliveries (count, failure rate %)"
        region = local.region
        view   = "timeSeries"
        stat   = "Sum"
        period = var.alarm_period_seconds
        metrics = [
          ["cachesync", "WebhookDeliveryAttempts", "service", "webhook_delivery", { id = "attempts", label = "attempts" }],
          ["cachesync", "WebhookDeliveryFailures", "service", "webhook_delivery", { id = "failures", label = "failed attempts" }],
          [{ expression = "100 * FILL(failures, 0) / attempts", id = "rate", label = "failure rate (%)", yAxis = "right" }],
        ]
        annotations = { horizontal = [{ label = "alarm (%)", value = var.webhook_failure_rate_threshold_percent, yAxis = "right" }] }
      }
    },
    {
      type = "metric", x = 12, y = 54, width = 12, height = 6
      properties = {
        title  = "Webhook delivery queue"
        region = local.region
        view   = "timeSeries"
        stat   = "Maximum"
        period = var.alarm_period_seconds
        metrics = [
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.webhook_delivery.name, { label = "ready to deliver" }],
          ["AWS/SQS", "ApproximateNumberOfMessagesNotVisible", "QueueName", aws_sqs_queue.webhook_delivery.name, { label = "in flight or waiting to retry" }],
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.webhook_delivery_dlq.name, { label = "dead-letter queue" }],
          ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", aws_sqs_queue.webhook_delivery.name, { label = "oldest message age (s)", yAxis = "right" }],
        ]
      }
    },
  ]
}

resource "aws_cloudwatch_dashboard" "cachesync" {
  dashboard_name = var.name_prefix
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
