# Inputs. Defaults of the function settings equal the defaults of the settings models in
# shared/cachesync/settings.py, and their validation mirrors the models' bounds
# (tests/unit/test_infra.py checks the defaults).

# ------------------------------------------------------------------ deployment

variable "aws_region" {
  description = "Region to deploy to; null takes it from AWS_REGION or the profile. Must be the bucket's region (S3 notifies queues in its own region only)."
  type        = string
  default     = null

  validation {
    condition     = var.aws_region == null || can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.aws_region))
    error_message = "aws_region must look like \"eu-west-1\" (or be null)."
  }
}

variable "name_prefix" {
  description = "Prefix of every name this configuration creates (functions, queues, roles, alarms)."
  type        = string
  default     = "cachesync"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,29}$", var.name_prefix))
    error_message = "name_prefix: 2 to 30 characters, lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags for every resource (cost allocation: e.g. CostCenter, Environment). Application=cachesync and ManagedBy=terraform are always set."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for key, value in var.tags : length(key) <= 128 && length(value) <= 256 && !startswith(lower(key), "aws:")])
    error_message = "tags: keys up to 128 characters, values up to 256, no \"aws:\" prefix."
  }
}

variable "build_dir" {
  description = "Folder `make package` wrote the Lambda artifacts to; null means ../build next to infra/."
  type        = string
  default     = null
}

# ------------------------------------------------------------------ documents bucket

variable "documents_bucket_name" {
  description = "The S3 bucket holding the JSON documents. An existing bucket unless create_bucket is true."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.documents_bucket_name)) && !can(regex("\\.\\.", var.documents_bucket_name))
    error_message = "documents_bucket_name must be a valid S3 bucket name (3-63 characters: lower-case letters, digits, dots, dashes)."
  }
}

variable "create_bucket" {
  description = "Create the documents bucket (versioned, encrypted, public access blocked, TLS only). Leave false to turn cachesync on for an existing bucket."
  type        = bool
  default     = false
}

variable "documents_prefix" {
  description = "Only keys under this prefix are documents: S3 notifications are filtered on it and the functions' object permissions are limited to it. Empty: the whole bucket."
  type        = string
  default     = ""

  validation {
    condition     = !startswith(var.documents_prefix, "/") && !can(regex("[*?\\\\]", var.documents_prefix))
    error_message = "documents_prefix must not start with \"/\" nor contain \"*\", \"?\" or a backslash."
  }
}

variable "documents_suffix" {
  description = "Only keys ending in this suffix raise events (e.g. \".json\"). Empty: every key."
  type        = string
  default     = ""

  validation {
    condition     = !can(regex("[*?\\\\]", var.documents_suffix))
    error_message = "documents_suffix must not contain \"*\", \"?\" or a backslash."
  }
}

variable "documents_kms_key_arn" {
  description = "ARN of the KMS key the existing bucket encrypts objects with (SSE-KMS), if any: the functions get kms:Decrypt (and write_through kms:GenerateDataKey) on it through S3. Ignored with create_bucket (kms_key_arn is used)."
  type        = string
  default     = null

  validation {
    condition     = var.documents_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[a-zA-Z0-9-]+$", var.documents_kms_key_arn))
    error_message = "documents_kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), not an alias, or null."
  }
}

variable "notification_mode" {
  description = "How S3 events reach the queues: \"sqs\" (bucket notifications straight to SQS) or \"eventbridge\" (the bucket sends to EventBridge; rules route Object Created / Object Deleted to the same queues)."
  type        = string
  default     = "sqs"

  validation {
    condition     = contains(["sqs", "eventbridge"], var.notification_mode)
    error_message = "notification_mode must be \"sqs\" or \"eventbridge\"."
  }
}

variable "existing_notifications" {
  description = "Notifications the bucket already has, kept in its configuration: aws_s3_bucket_notification owns the WHOLE configuration, so anything not listed here is removed on apply. Copy them from `aws s3api get-bucket-notification-configuration` (docs/DEPLOYMENT.md)."
  type = object({
    eventbridge = optional(bool, false)
    queues = optional(list(object({
      id            = optional(string)
      queue_arn     = string
      events        = list(string)
      filter_prefix = optional(string)
      filter_suffix = optional(string)
    })), [])
    topics = optional(list(object({
      id            = optional(string)
      topic_arn     = string
      events        = list(string)
      filter_prefix = optional(string)
      filter_suffix = optional(string)
    })), [])
    lambda_functions = optional(list(object({
      id                  = optional(string)
      lambda_function_arn = string
      events              = list(string)
      filter_prefix       = optional(string)
      filter_suffix       = optional(string)
    })), [])
  })
  default = {}

  validation {
    condition = alltrue(flatten([
      [for n in var.existing_notifications.queues : length(n.events) > 0 && alltrue([for e in n.events : startswith(e, "s3:")])],
      [for n in var.existing_notifications.topics : length(n.events) > 0 && alltrue([for e in n.events : startswith(e, "s3:")])],
      [for n in var.existing_notifications.lambda_functions : length(n.events) > 0 && alltrue([for e in n.events : startswith(e, "s3:")])],
    ]))
    error_message = "existing_notifications: every notification needs events, each like \"s3:ObjectCreated:*\"."
  }
}

# ------------------------------------------------------------------ encryption, tables

variable "kms_key_arn" {
  description = "Customer managed KMS key for the tables, queues, log groups (and the bucket with create_bucket). null: AWS managed (DynamoDB, S3) or service owned (SSE-SQS) keys. The key policy must admit the services: see infra/README.md."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[a-zA-Z0-9-]+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), not an alias, or null."
  }
}

variable "table_name" {
  description = "The index table (CACHESYNC_TABLE_NAME)."
  type        = string
  default     = "cachesync-index"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{3,255}$", var.table_name))
    error_message = "table_name: 3 to 255 characters, letters, digits, \"_\", \".\" and \"-\"."
  }
}

variable "idempotency_table_name" {
  description = "The table of Powertools' idempotency utility, used by write_through (CACHESYNC_IDEMPOTENCY_TABLE_NAME)."
  type        = string
  default     = "cachesync-idempotency"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{3,255}$", var.idempotency_table_name))
    error_message = "idempotency_table_name: 3 to 255 characters, letters, digits, \"_\", \".\" and \"-\"."
  }
}

variable "deletion_protection" {
  description = "DynamoDB deletion protection on both tables. Turn off (and apply) before destroying."
  type        = bool
  default     = true
}

# ------------------------------------------------------------------ Lambda

variable "lambda_architecture" {
  description = "Instruction set of the functions. Must match the artifacts: make package LAMBDA_ARCHITECTURE=<this>."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be \"arm64\" or \"x86_64\"."
  }
}

variable "lambda_runtime" {
  description = "Lambda runtime. Must match the artifacts: make package LAMBDA_PYTHON=<3.x of this>."
  type        = string
  default     = "python3.12"

  validation {
    condition     = contains(["python3.12", "python3.13"], var.lambda_runtime)
    error_message = "lambda_runtime must be python3.12 or python3.13."
  }
}

variable "function_memory_mb" {
  description = "Memory (MB) per function; CPU grows with it."
  type = object({
    s3_object_created = optional(number, 512)
    s3_object_removed = optional(number, 256)
    write_through     = optional(number, 512)
    fallback_read     = optional(number, 1024)
    backfill          = optional(number, 1024)
    query_api         = optional(number, 1024)
    change_feed       = optional(number, 512)
    webhook_delivery  = optional(number, 256)
  })
  default = {}

  validation {
    condition     = alltrue([for value in values(var.function_memory_mb) : value >= 128 && value <= 10240 && floor(value) == value])
    error_message = "function_memory_mb: whole numbers from 128 to 10240."
  }
}

variable "function_timeout_seconds" {
  description = "Timeout (seconds) per function. The event queues' visibility timeout is derived from it (6 x timeout + batching window). webhook_delivery POSTs its batch one message after another: its timeout must cover webhook_delivery_source.batch_size x (connect + read timeout) + 10 s (checked at plan time)."
  type = object({
    s3_object_created = optional(number, 60)
    s3_object_removed = optional(number, 60)
    write_through     = optional(number, 30)
    fallback_read     = optional(number, 10)
    backfill          = optional(number, 900)
    query_api         = optional(number, 15)
    change_feed       = optional(number, 60)
    webhook_delivery  = optional(number, 90)
  })
  default = {}

  validation {
    condition     = alltrue([for value in values(var.function_timeout_seconds) : value >= 3 && value <= 900 && floor(value) == value])
    error_message = "function_timeout_seconds: whole numbers from 3 to 900."
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrency per function; -1 means none (the account's unreserved pool). backfill's write rate limit is per execution environment, so its reserved concurrency caps the total backfill write rate (backfill_rate_per_second x this)."
  type = object({
    s3_object_created = optional(number, -1)
    s3_object_removed = optional(number, -1)
    write_through     = optional(number, -1)
    fallback_read     = optional(number, -1)
    backfill          = optional(number, 5)
    query_api         = optional(number, -1)
    change_feed       = optional(number, -1)
    webhook_delivery  = optional(number, -1)
  })
  default = {}

  validation {
    condition     = alltrue([for value in values(var.reserved_concurrency) : value >= -1 && floor(value) == value])
    error_message = "reserved_concurrency: whole numbers, -1 (no reservation) or more."
  }
}

variable "fallback_read_provisioned_concurrency" {
  description = "Provisioned concurrency on fallback_read's \"live\" alias (no cold starts on the read path). 0: none. Billed while configured."
  type        = number
  default     = 0

  validation {
    condition     = var.fallback_read_provisioned_concurrency >= 0 && floor(var.fallback_read_provisioned_concurrency) == var.fallback_read_provisioned_concurrency
    error_message = "fallback_read_provisioned_concurrency must be a whole number, 0 or more."
  }
}

variable "event_source_mapping" {
  description = "SQS -> s3_object_created / s3_object_removed polling: records per batch, seconds to wait to fill a batch, and the most concurrent invocations per queue."
  type = object({
    batch_size                      = optional(number, 10)
    maximum_batching_window_seconds = optional(number, 1)
    maximum_concurrency             = optional(number, 10)
  })
  default = {}

  validation {
    condition = (
      var.event_source_mapping.batch_size >= 1 && var.event_source_mapping.batch_size <= 10000
      && var.event_source_mapping.maximum_batching_window_seconds >= 0 && var.event_source_mapping.maximum_batching_window_seconds <= 300
      && (var.event_source_mapping.batch_size <= 10 || var.event_source_mapping.maximum_batching_window_seconds >= 1)
      && var.event_source_mapping.maximum_concurrency >= 2 && var.event_source_mapping.maximum_concurrency <= 1000
      && alltrue([for value in values(var.event_source_mapping) : floor(value) == value])
    )
    error_message = "event_source_mapping: whole numbers; batch_size 1-10000 (over 10 needs a batching window of at least 1 s), maximum_batching_window_seconds 0-300, maximum_concurrency 2-1000."
  }
}

variable "log_level" {
  description = "POWERTOOLS_LOG_LEVEL of every function."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "log_retention_days" {
  description = "Retention of the functions' log groups."
  type        = number
  default     = 90

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

# ------------------------------------------------------------------ queues

variable "queue_max_receive_count" {
  description = "Deliveries of an event before it moves to its queue's DLQ."
  type        = number
  default     = 5

  validation {
    condition     = var.queue_max_receive_count >= 1 && var.queue_max_receive_count <= 1000 && floor(var.queue_max_receive_count) == var.queue_max_receive_count
    error_message = "queue_max_receive_count: a whole number from 1 to 1000."
  }
}

variable "queue_message_retention_seconds" {
  description = "How long the event queues keep a message."
  type        = number
  default     = 345600 # 4 days

  validation {
    condition     = var.queue_message_retention_seconds >= 60 && var.queue_message_retention_seconds <= 1209600
    error_message = "queue_message_retention_seconds: 60 to 1209600 (14 days)."
  }
}

variable "dlq_message_retention_seconds" {
  description = "How long the dead-letter queues keep a message (time to investigate and redrive)."
  type        = number
  default     = 1209600 # 14 days, the most SQS allows

  validation {
    condition     = var.dlq_message_retention_seconds >= 60 && var.dlq_message_retention_seconds <= 1209600
    error_message = "dlq_message_retention_seconds: 60 to 1209600 (14 days)."
  }
}

# ------------------------------------------------------------------ function settings
# Each becomes CACHESYNC_<NAME> in the functions whose settings model has the field.

variable "retention_days" {
  description = "CACHESYNC_RETENTION_DAYS: completed/cancelled changes and archived announcements leave the index this long after their index time."
  type        = number
  default     = 90

  validation {
    condition     = var.retention_days >= 1 && var.retention_days <= 3650 && floor(var.retention_days) == var.retention_days
    error_message = "retention_days: a whole number from 1 to 3650."
  }
}

variable "tombstone_ttl_days" {
  description = "CACHESYNC_TOMBSTONE_TTL_DAYS: how long a deleted key's tombstone is kept."
  type        = number
  default     = 30

  validation {
    condition     = var.tombstone_ttl_days >= 1 && var.tombstone_ttl_days <= 3650 && floor(var.tombstone_ttl_days) == var.tombstone_ttl_days
    error_message = "tombstone_ttl_days: a whole number from 1 to 3650."
  }
}

variable "idempotency_ttl_seconds" {
  description = "CACHESYNC_IDEMPOTENCY_TTL_SECONDS (write_through): how long an idempotency key is remembered."
  type        = number
  default     = 3600

  validation {
    condition     = var.idempotency_ttl_seconds >= 60 && var.idempotency_ttl_seconds <= 2592000 && floor(var.idempotency_ttl_seconds) == var.idempotency_ttl_seconds
    error_message = "idempotency_ttl_seconds: a whole number from 60 to 2592000 (30 days)."
  }
}

variable "write_rate_per_second" {
  description = "CACHESYNC_WRITE_RATE_PER_SECOND (write_through): token-bucket rate per execution environment."
  type        = number
  default     = 50

  validation {
    condition     = var.write_rate_per_second > 0 && var.write_rate_per_second <= 10000
    error_message = "write_rate_per_second: more than 0, at most 10000."
  }
}

variable "write_burst" {
  description = "CACHESYNC_WRITE_BURST (write_through): token-bucket size."
  type        = number
  default     = 50

  validation {
    condition     = var.write_burst >= 1 && var.write_burst <= 10000 && floor(var.write_burst) == var.write_burst
    error_message = "write_burst: a whole number from 1 to 10000."
  }
}

variable "breaker_failure_threshold" {
  description = "CACHESYNC_BREAKER_FAILURE_THRESHOLD (fallback_read): consecutive index failures that open the circuit breaker."
  type        = number
  default     = 5

  validation {
    condition     = var.breaker_failure_threshold >= 1 && var.breaker_failure_threshold <= 1000 && floor(var.breaker_failure_threshold) == var.breaker_failure_threshold
    error_message = "breaker_failure_threshold: a whole number from 1 to 1000."
  }
}

variable "breaker_cool_down_seconds" {
  description = "CACHESYNC_BREAKER_COOL_DOWN_SECONDS (fallback_read): how long an open breaker sends reads straight to S3."
  type        = number
  default     = 30

  validation {
    condition     = var.breaker_cool_down_seconds > 0 && var.breaker_cool_down_seconds <= 3600
    error_message = "breaker_cool_down_seconds: more than 0, at most 3600."
  }
}

variable "pending_stale_after_seconds" {
  description = "CACHESYNC_PENDING_STALE_AFTER_SECONDS (fallback_read): a write-through pending longer is taken as crashed."
  type        = number
  default     = 120

  validation {
    condition     = var.pending_stale_after_seconds >= 1 && var.pending_stale_after_seconds <= 86400 && floor(var.pending_stale_after_seconds) == var.pending_stale_after_seconds
    error_message = "pending_stale_after_seconds: a whole number from 1 to 86400."
  }
}

variable "backfill_rate_per_second" {
  description = "CACHESYNC_BACKFILL_RATE_PER_SECOND (backfill): index writes per second per execution environment."
  type        = number
  default     = 100

  validation {
    condition     = var.backfill_rate_per_second > 0 && var.backfill_rate_per_second <= 10000
    error_message = "backfill_rate_per_second: more than 0, at most 10000."
  }
}

variable "sync_workers" {
  description = "CACHESYNC_SYNC_WORKERS (s3_object_created, s3_object_removed): changes of one batch applied at once (one key's in order)."
  type        = number
  default     = 8

  validation {
    condition     = var.sync_workers >= 1 && var.sync_workers <= 20 && floor(var.sync_workers) == var.sync_workers
    error_message = "sync_workers: a whole number from 1 to 20."
  }
}

variable "backfill_workers" {
  description = "CACHESYNC_BACKFILL_WORKERS (backfill): objects read and written at once."
  type        = number
  default     = 8

  validation {
    condition     = var.backfill_workers >= 1 && var.backfill_workers <= 20 && floor(var.backfill_workers) == var.backfill_workers
    error_message = "backfill_workers: a whole number from 1 to 20."
  }
}

variable "backfill_page_size" {
  description = "CACHESYNC_BACKFILL_PAGE_SIZE (backfill): objects listed per page."
  type        = number
  default     = 200

  validation {
    condition     = var.backfill_page_size >= 1 && var.backfill_page_size <= 1000 && floor(var.backfill_page_size) == var.backfill_page_size
    error_message = "backfill_page_size: a whole number from 1 to 1000."
  }
}

variable "backfill_stop_margin_seconds" {
  description = "CACHESYNC_BACKFILL_STOP_MARGIN_SECONDS (backfill): no new page starts with less time left than this. Keep it well below backfill's timeout."
  type        = number
  default     = 30

  validation {
    condition     = var.backfill_stop_margin_seconds >= 0 && var.backfill_stop_margin_seconds <= 900
    error_message = "backfill_stop_margin_seconds: 0 to 900."
  }
}

# ------------------------------------------------------------------ S3 Batch Operations

variable "batch_operations_manifest_bucket" {
  description = "Bucket holding S3 Batch Operations manifests (e.g. the S3 Inventory destination). When set, a role for Batch Operations jobs that invoke backfill is created."
  type        = string
  default     = null

  validation {
    condition     = var.batch_operations_manifest_bucket == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.batch_operations_manifest_bucket))
    error_message = "batch_operations_manifest_bucket must be a valid S3 bucket name or null."
  }
}

variable "batch_operations_report_bucket" {
  description = "Bucket Batch Operations writes completion reports to; null: the manifest bucket."
  type        = string
  default     = null

  validation {
    condition     = var.batch_operations_report_bucket == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.batch_operations_report_bucket))
    error_message = "batch_operations_report_bucket must be a valid S3 bucket name or null."
  }
}

# ------------------------------------------------------------------ alarms

variable "alarm_sns_topic_arn" {
  description = "SNS topic for alarm and OK notifications; null: alarms change state without notifying."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_sns_topic_arn == null || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\\.fifo)?$", var.alarm_sns_topic_arn))
    error_message = "alarm_sns_topic_arn must be an SNS topic ARN or null."
  }
}

variable "alarm_period_seconds" {
  description = "Period of every alarm's statistic."
  type        = number
  default     = 300

  validation {
    condition     = contains([60, 120, 180, 300, 600, 900, 1800, 3600], var.alarm_period_seconds)
    error_message = "alarm_period_seconds must be 60, 120, 180, 300, 600, 900, 1800 or 3600."
  }
}

variable "alarm_evaluation_periods" {
  description = "Consecutive breaching periods before an alarm fires (DLQ alarms fire on the first)."
  type        = number
  default     = 3

  validation {
    condition     = var.alarm_evaluation_periods >= 1 && var.alarm_evaluation_periods <= 24 && floor(var.alarm_evaluation_periods) == var.alarm_evaluation_periods
    error_message = "alarm_evaluation_periods: a whole number from 1 to 24."
  }
}

variable "cache_hit_rate_threshold_percent" {
  description = "Alarm when fallback_read's cache hit rate falls below this."
  type        = number
  default     = 80

  validation {
    condition     = var.cache_hit_rate_threshold_percent > 0 && var.cache_hit_rate_threshold_percent <= 100
    error_message = "cache_hit_rate_threshold_percent: more than 0, at most 100."
  }
}

variable "cache_hit_rate_min_reads" {
  description = "The hit-rate alarm ignores periods with fewer reads than this (a handful of misses is not a trend)."
  type        = number
  default     = 20

  validation {
    condition     = var.cache_hit_rate_min_reads >= 1
    error_message = "cache_hit_rate_min_reads must be at least 1."
  }
}

variable "read_latency_p99_threshold_ms" {
  description = "Alarm when fallback_read's p99 duration exceeds this."
  type        = number
  default     = 500

  validation {
    condition     = var.read_latency_p99_threshold_ms > 0
    error_message = "read_latency_p99_threshold_ms must be more than 0."
  }
}

variable "error_rate_threshold_percent" {
  description = "Alarm when a function's Errors / Invocations exceeds this."
  type        = number
  default     = 1

  validation {
    condition     = var.error_rate_threshold_percent > 0 && var.error_rate_threshold_percent < 100
    error_message = "error_rate_threshold_percent: more than 0, less than 100."
  }
}

variable "sync_lag_p99_threshold_ms" {
  description = "Alarm when the p99 SyncLag (event time to index write) of the event handlers exceeds this."
  type        = number
  default     = 60000

  validation {
    condition     = var.sync_lag_p99_threshold_ms > 0
    error_message = "sync_lag_p99_threshold_ms must be more than 0."
  }
}

variable "queue_age_threshold_seconds" {
  description = "Alarm when the oldest message of an event queue is older than this (events not being consumed)."
  type        = number
  default     = 900

  validation {
    condition     = var.queue_age_threshold_seconds >= 60
    error_message = "queue_age_threshold_seconds must be at least 60."
  }
}

# ------------------------------------------------------------------ change feed and webhooks

variable "change_feed_table_name" {
  description = "The change feed table: published state per document and the analytics counters (CACHESYNC_CHANGE_FEED_TABLE_NAME of change_feed and query_api)."
  type        = string
  default     = "cachesync-change-feed"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{3,255}$", var.change_feed_table_name))
    error_message = "change_feed_table_name: 3 to 255 characters, letters, digits, \"_\", \".\" and \"-\"."
  }
}

variable "webhooks_table_name" {
  description = "The webhook subscriptions table (CACHESYNC_WEBHOOKS_TABLE_NAME of change_feed, webhook_delivery and query_api)."
  type        = string
  default     = "cachesync-webhooks"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{3,255}$", var.webhooks_table_name))
    error_message = "webhooks_table_name: 3 to 255 characters, letters, digits, \"_\", \".\" and \"-\"."
  }
}

variable "webhook_deliveries_table_name" {
  description = "The webhook delivery attempts table, TTL expires_at (CACHESYNC_WEBHOOK_DELIVERIES_TABLE_NAME of webhook_delivery and query_api)."
  type        = string
  default     = "cachesync-webhook-deliveries"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{3,255}$", var.webhook_deliveries_table_name))
    error_message = "webhook_deliveries_table_name: 3 to 255 characters, letters, digits, \"_\", \".\" and \"-\"."
  }
}

variable "change_feed_stream" {
  description = "The index stream -> change_feed mapping: records per batch, seconds to wait to fill one, retries of a failing batch (bisected on each error) and the age up to which a failing record is retried before its batch's description goes to the change-feed-failures queue (-1: until the stream's 24 h retention drops it)."
  type = object({
    batch_size                      = optional(number, 100)
    maximum_batching_window_seconds = optional(number, 1)
    maximum_retry_attempts          = optional(number, 10)
    maximum_record_age_seconds      = optional(number, 21600)
  })
  default = {}

  validation {
    condition = (
      var.change_feed_stream.batch_size >= 1 && var.change_feed_stream.batch_size <= 10000
      && var.change_feed_stream.maximum_batching_window_seconds >= 0 && var.change_feed_stream.maximum_batching_window_seconds <= 300
      && var.change_feed_stream.maximum_retry_attempts >= 0 && var.change_feed_stream.maximum_retry_attempts <= 10000
      && (var.change_feed_stream.maximum_record_age_seconds == -1 || (var.change_feed_stream.maximum_record_age_seconds >= 60 && var.change_feed_stream.maximum_record_age_seconds <= 604800))
      && alltrue([for value in values(var.change_feed_stream) : floor(value) == value])
    )
    error_message = "change_feed_stream: whole numbers; batch_size 1-10000, maximum_batching_window_seconds 0-300, maximum_retry_attempts 0-10000, maximum_record_age_seconds -1 or 60-604800."
  }
}

variable "webhook_delivery_source" {
  description = "The delivery queue -> webhook_delivery polling: messages per batch (POSTed one after another: mind function_timeout_seconds.webhook_delivery), seconds to wait to fill a batch, and the most concurrent invocations (receivers called at once)."
  type = object({
    batch_size                      = optional(number, 5)
    maximum_batching_window_seconds = optional(number, 0)
    maximum_concurrency             = optional(number, 5)
  })
  default = {}

  validation {
    condition = (
      var.webhook_delivery_source.batch_size >= 1 && var.webhook_delivery_source.batch_size <= 10
      && var.webhook_delivery_source.maximum_batching_window_seconds >= 0 && var.webhook_delivery_source.maximum_batching_window_seconds <= 300
      && var.webhook_delivery_source.maximum_concurrency >= 2 && var.webhook_delivery_source.maximum_concurrency <= 1000
      && alltrue([for value in values(var.webhook_delivery_source) : floor(value) == value])
    )
    error_message = "webhook_delivery_source: whole numbers; batch_size 1-10, maximum_batching_window_seconds 0-300, maximum_concurrency 2-1000."
  }
}

variable "webhook_subscriptions_refresh_seconds" {
  description = "CACHESYNC_WEBHOOK_SUBSCRIPTIONS_REFRESH_SECONDS (change_feed): how long a feed process reuses the subscriptions it scanned (new or changed ones take effect within it)."
  type        = number
  default     = 10

  validation {
    condition     = var.webhook_subscriptions_refresh_seconds >= 0 && var.webhook_subscriptions_refresh_seconds <= 300
    error_message = "webhook_subscriptions_refresh_seconds: 0 to 300."
  }
}

variable "webhook_connect_timeout_seconds" {
  description = "CACHESYNC_WEBHOOK_CONNECT_TIMEOUT_SECONDS (webhook_delivery): the longest wait for a receiver's connection."
  type        = number
  default     = 3

  validation {
    condition     = var.webhook_connect_timeout_seconds > 0 && var.webhook_connect_timeout_seconds <= 30
    error_message = "webhook_connect_timeout_seconds: more than 0, at most 30."
  }
}

variable "webhook_read_timeout_seconds" {
  description = "CACHESYNC_WEBHOOK_READ_TIMEOUT_SECONDS (webhook_delivery): the longest wait for a receiver's bytes."
  type        = number
  default     = 10

  validation {
    condition     = var.webhook_read_timeout_seconds > 0 && var.webhook_read_timeout_seconds <= 60
    error_message = "webhook_read_timeout_seconds: more than 0, at most 60."
  }
}

variable "webhook_max_response_bytes" {
  description = "CACHESYNC_WEBHOOK_MAX_RESPONSE_BYTES (webhook_delivery): at most this much of a receiver's answer is read."
  type        = number
  default     = 65536

  validation {
    condition     = var.webhook_max_response_bytes >= 0 && var.webhook_max_response_bytes <= 1048576 && floor(var.webhook_max_response_bytes) == var.webhook_max_response_bytes
    error_message = "webhook_max_response_bytes: a whole number from 0 to 1048576."
  }
}

variable "webhook_retry_base_seconds" {
  description = "CACHESYNC_WEBHOOK_RETRY_BASE_SECONDS (webhook_delivery): the backoff's first ceiling; it doubles per failed attempt (full jitter)."
  type        = number
  default     = 60

  validation {
    condition     = var.webhook_retry_base_seconds >= 0 && var.webhook_retry_base_seconds <= 3600
    error_message = "webhook_retry_base_seconds: 0 to 3600."
  }
}

variable "webhook_retry_max_seconds" {
  description = "CACHESYNC_WEBHOOK_RETRY_MAX_SECONDS (webhook_delivery): the backoff's cap (a ChangeMessageVisibility, under SQS's 12 h ceiling)."
  type        = number
  default     = 21600

  validation {
    condition     = var.webhook_retry_max_seconds >= 0 && var.webhook_retry_max_seconds <= 42900
    error_message = "webhook_retry_max_seconds: 0 to 42900."
  }
}

variable "webhook_max_attempts" {
  description = "CACHESYNC_WEBHOOK_MAX_ATTEMPTS (webhook_delivery): attempts per delivery; also the delivery queue's maxReceiveCount, after which SQS moves the message to the webhook-delivery DLQ."
  type        = number
  default     = 12

  validation {
    condition     = var.webhook_max_attempts >= 1 && var.webhook_max_attempts <= 1000 && floor(var.webhook_max_attempts) == var.webhook_max_attempts
    error_message = "webhook_max_attempts: a whole number from 1 to 1000 (SQS's maxReceiveCount range)."
  }
}

variable "webhook_failure_threshold" {
  description = "CACHESYNC_WEBHOOK_FAILURE_THRESHOLD (webhook_delivery): consecutive failed attempts that mark a subscription failing."
  type        = number
  default     = 10

  validation {
    condition     = var.webhook_failure_threshold >= 1 && var.webhook_failure_threshold <= 10000 && floor(var.webhook_failure_threshold) == var.webhook_failure_threshold
    error_message = "webhook_failure_threshold: a whole number from 1 to 10000."
  }
}

variable "webhook_attempt_retention_days" {
  description = "CACHESYNC_WEBHOOK_ATTEMPT_RETENTION_DAYS (webhook_delivery): how long each attempt's record is kept (the deliveries table's TTL)."
  type        = number
  default     = 7

  validation {
    condition     = var.webhook_attempt_retention_days >= 1 && var.webhook_attempt_retention_days <= 365 && floor(var.webhook_attempt_retention_days) == var.webhook_attempt_retention_days
    error_message = "webhook_attempt_retention_days: a whole number from 1 to 365."
  }
}

variable "change_feed_iterator_age_threshold_ms" {
  description = "Alarm when the change feed's IteratorAge (AWS/Lambda: age of the last stream record read) exceeds this: webhooks and analytics are that far behind the index."
  type        = number
  default     = 60000

  validation {
    condition     = var.change_feed_iterator_age_threshold_ms > 0
    error_message = "change_feed_iterator_age_threshold_ms must be more than 0."
  }
}

variable "webhook_failure_rate_threshold_percent" {
  description = "Alarm when more than this share of webhook delivery attempts fail (receiver errors, timeouts, refused addresses) in a period."
  type        = number
  default     = 20

  validation {
    condition     = var.webhook_failure_rate_threshold_percent > 0 && var.webhook_failure_rate_threshold_percent <= 100
    error_message = "webhook_failure_rate_threshold_percent: more than 0, at most 100."
  }
}

variable "webhook_alarm_min_attempts" {
  description = "Periods with fewer webhook delivery attempts count as healthy for the failure-rate alarm (one receiver down among few deliveries shows as that subscription's failing status)."
  type        = number
  default     = 20

  validation {
    condition     = var.webhook_alarm_min_attempts >= 1 && floor(var.webhook_alarm_min_attempts) == var.webhook_alarm_min_attempts
    error_message = "webhook_alarm_min_attempts: a whole number, 1 or more."
  }
}

# ------------------------------------------------------------------ query API

variable "api_keys_table_name" {
  description = "The API keys table (CACHESYNC_API_KEYS_TABLE_NAME of query_api; `cachesync keys` uses the same)."
  type        = string
  default     = "cachesync-api-keys"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{3,255}$", var.api_keys_table_name))
    error_message = "api_keys_table_name: 3 to 255 characters, letters, digits, \"_\", \".\" and \"-\"."
  }
}

variable "api_stage_name" {
  description = "The API Gateway stage. The routes start with /v1, so the API's base URL is https://<api id>.execute-api.<region>.amazonaws.com/<stage> (output api_url) and a query is <api_url>/v1/documents."
  type        = string
  default     = "api"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_-]{1,128}$", var.api_stage_name))
    error_message = "api_stage_name: 1 to 128 letters, digits, \"_\" or \"-\"."
  }
}

variable "api_throttle_rate_limit" {
  description = "Stage-wide steady request rate (requests per second) API Gateway lets through; above it callers get 429. Also bounded by the account's regional API Gateway quota."
  type        = number
  default     = 1000

  validation {
    condition     = var.api_throttle_rate_limit > 0 && var.api_throttle_rate_limit <= 100000
    error_message = "api_throttle_rate_limit: more than 0, at most 100000."
  }
}

variable "api_throttle_burst_limit" {
  description = "Stage-wide burst (token bucket size, requests) API Gateway lets through."
  type        = number
  default     = 2000

  validation {
    condition     = var.api_throttle_burst_limit >= 1 && var.api_throttle_burst_limit <= 100000 && floor(var.api_throttle_burst_limit) == var.api_throttle_burst_limit
    error_message = "api_throttle_burst_limit: a whole number from 1 to 100000."
  }
}

variable "manage_api_gateway_account" {
  description = "Set API Gateway's account-wide CloudWatch Logs role (aws_api_gateway_account), which REST API access logs need. One setting per account and region: leave false when the account already has one (aws apigateway get-account shows cloudwatchRoleArn); true creates a role and sets it."
  type        = bool
  default     = false
}

variable "api_token_ttl_seconds" {
  description = "CACHESYNC_API_TOKEN_TTL_SECONDS (query_api): how long a pagination token stays valid."
  type        = number
  default     = 3600

  validation {
    condition     = var.api_token_ttl_seconds >= 60 && var.api_token_ttl_seconds <= 604800 && floor(var.api_token_ttl_seconds) == var.api_token_ttl_seconds
    error_message = "api_token_ttl_seconds: a whole number from 60 to 604800 (7 days)."
  }
}

variable "api_cache_ttl_seconds" {
  description = "CACHESYNC_API_CACHE_TTL_SECONDS (query_api): how long an execution environment serves a query page or a document from memory; 0 turns the cache off."
  type        = number
  default     = 5

  validation {
    condition     = var.api_cache_ttl_seconds >= 0 && var.api_cache_ttl_seconds <= 3600
    error_message = "api_cache_ttl_seconds: 0 to 3600."
  }
}

variable "api_key_cache_ttl_seconds" {
  description = "CACHESYNC_API_KEY_CACHE_TTL_SECONDS (query_api): how long an execution environment reuses an API key record it read; a revoked key keeps working for up to this long there. 0 reads the keys table on every request."
  type        = number
  default     = 5

  validation {
    condition     = var.api_key_cache_ttl_seconds >= 0 && var.api_key_cache_ttl_seconds <= 300
    error_message = "api_key_cache_ttl_seconds: 0 to 300."
  }
}

variable "api_cache_max_entries" {
  description = "CACHESYNC_API_CACHE_MAX_ENTRIES (query_api): bound of each memory cache (least recently used entries go first). Mind function_memory_mb.query_api."
  type        = number
  default     = 10000

  validation {
    condition     = var.api_cache_max_entries >= 0 && var.api_cache_max_entries <= 1000000 && floor(var.api_cache_max_entries) == var.api_cache_max_entries
    error_message = "api_cache_max_entries: a whole number from 0 to 1000000."
  }
}

variable "api_cors_origins" {
  description = "CACHESYNC_API_CORS_ORIGINS (query_api): comma-separated browser origins allowed by CORS, e.g. \"https://app.example.com\". Empty: CORS off."
  type        = string
  default     = ""

  validation {
    condition     = alltrue([for origin in split(",", var.api_cors_origins) : trimspace(origin) == "" || can(regex("^https?://[^/,*]+$", trimspace(origin)))])
    error_message = "api_cors_origins: comma-separated origins like https://app.example.com (scheme and host, no path, no wildcard)."
  }
}

variable "api_usage_table_name" {
  description = "CACHESYNC_API_USAGE_TABLE_NAME (query_api): the table of rate-limit counters and signed-request nonces every API instance shares."
  type        = string
  default     = "cachesync-api-usage"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{3,255}$", var.api_usage_table_name))
    error_message = "api_usage_table_name: 3 to 255 characters, letters, digits, \"_\", \".\" and \"-\"."
  }
}

variable "api_rate_limits_enabled" {
  description = "CACHESYNC_API_RATE_LIMITS_ENABLED (query_api): enforce each key's request rate (counters in the usage table, RateLimit headers on every response). false: no counters read or written, no headers."
  type        = bool
  default     = true
  nullable    = false
}

variable "api_rate_limit_per_minute" {
  description = "CACHESYNC_API_RATE_LIMIT_PER_MINUTE (query_api): requests per key and minute, for keys without a limit of their own. Mind api_throttle_rate_limit (the stage-wide ceiling)."
  type        = number
  default     = 600

  validation {
    condition     = var.api_rate_limit_per_minute >= 1 && var.api_rate_limit_per_minute <= 60000 && floor(var.api_rate_limit_per_minute) == var.api_rate_limit_per_minute
    error_message = "api_rate_limit_per_minute: a whole number from 1 to 60000."
  }
}

variable "api_rate_limit_burst" {
  description = "CACHESYNC_API_RATE_LIMIT_BURST (query_api): requests per key in any one second, for keys without a burst of their own."
  type        = number
  default     = 50

  validation {
    condition     = var.api_rate_limit_burst >= 1 && var.api_rate_limit_burst <= 1000 && floor(var.api_rate_limit_burst) == var.api_rate_limit_burst
    error_message = "api_rate_limit_burst: a whole number from 1 to 1000."
  }
}

variable "api_rate_limit_failure_mode" {
  description = "CACHESYNC_API_RATE_LIMIT_FAILURE_MODE (query_api): what the API does when the usage table cannot be reached. \"open\": serve without limits (logged, metric ApiRateLimiterUnavailable); \"closed\": refuse with 503."
  type        = string
  default     = "open"

  validation {
    condition     = contains(["open", "closed"], var.api_rate_limit_failure_mode)
    error_message = "api_rate_limit_failure_mode: \"open\" or \"closed\"."
  }
}

variable "api_bulk_concurrency" {
  description = "CACHESYNC_API_BULK_CONCURRENCY (query_api): items of one POST /v1/documents/bulk written at once (each a write-through saga)."
  type        = number
  default     = 8

  validation {
    condition     = var.api_bulk_concurrency >= 1 && var.api_bulk_concurrency <= 20 && floor(var.api_bulk_concurrency) == var.api_bulk_concurrency
    error_message = "api_bulk_concurrency: a whole number from 1 to 20."
  }
}

variable "api_token_secret_recovery_window_days" {
  description = "Days Secrets Manager keeps the deleted token secret recoverable after a destroy (its name stays taken meanwhile); 0 deletes it at once."
  type        = number
  default     = 7

  validation {
    condition     = var.api_token_secret_recovery_window_days == 0 || (var.api_token_secret_recovery_window_days >= 7 && var.api_token_secret_recovery_window_days <= 30 && floor(var.api_token_secret_recovery_window_days) == var.api_token_secret_recovery_window_days)
    error_message = "api_token_secret_recovery_window_days: 0, or a whole number from 7 to 30."
  }
}

variable "api_5xx_rate_threshold_percent" {
  description = "Alarm when more than this share of the API's requests answer 5xx."
  type        = number
  default     = 1

  validation {
    condition     = var.api_5xx_rate_threshold_percent > 0 && var.api_5xx_rate_threshold_percent < 100
    error_message = "api_5xx_rate_threshold_percent: more than 0, less than 100."
  }
}

variable "api_4xx_rate_threshold_percent" {
  description = "Alarm when more than this share of the API's requests answer 4xx (a spike: a client broken by a release, a revoked key still in use, someone guessing keys)."
  type        = number
  default     = 25

  validation {
    condition     = var.api_4xx_rate_threshold_percent > 0 && var.api_4xx_rate_threshold_percent < 100
    error_message = "api_4xx_rate_threshold_percent: more than 0, less than 100."
  }
}

variable "api_alarm_min_requests" {
  description = "The API's 5xx and 4xx rate alarms ignore periods with fewer requests than this (two errors out of three requests is not a trend)."
  type        = number
  default     = 20

  validation {
    condition     = var.api_alarm_min_requests >= 1 && floor(var.api_alarm_min_requests) == var.api_alarm_min_requests
    error_message = "api_alarm_min_requests: a whole number, at least 1."
  }
}

variable "api_throttled_requests_threshold" {
  description = "Alarm when more than this many of the API's requests in one alarm period are refused (429) by per-key rate limits (all keys and routes together)."
  type        = number
  default     = 100

  validation {
    condition     = var.api_throttled_requests_threshold >= 0 && floor(var.api_throttled_requests_threshold) == var.api_throttled_requests_threshold
    error_message = "api_throttled_requests_threshold: a whole number, 0 or more."
  }
}

variable "api_latency_p95_threshold_ms" {
  description = "Alarm when the API's p95 latency (API Gateway Latency: request in to response out) exceeds this."
  type        = number
  default     = 200

  validation {
    condition     = var.api_latency_p95_threshold_ms > 0
    error_message = "api_latency_p95_threshold_ms must be more than 0."
  }
}
