"""The one exception hierarchy of cachesync.

Every error cachesync raises derives from :class:`CacheSyncError` and carries the context an
operator needs (bucket, key, field, AWS error code). AWS error codes are translated into these
classes in exactly one place per store (``stores/dynamodb_index.py``, ``stores/s3_objects.py``).
"""

from __future__ import annotations


class CacheSyncError(Exception):
    """Base class of every error raised by cachesync."""


class ConfigurationError(CacheSyncError):
    """A setting is missing or invalid; raised at start, naming the environment variable."""

    def __init__(self, variable: str, reason: str) -> None:
        self.variable = variable
        self.reason = reason
        super().__init__(f"{variable}: {reason}")


class InvalidDocumentError(CacheSyncError):
    """A document is not valid JSON or fails validation; nothing of it is indexed."""

    def __init__(self, key: str, reason: str, field: str | None = None) -> None:
        self.key = key
        self.field = field
        self.reason = reason
        where = f" field {field!r}:" if field else ""
        super().__init__(f"invalid document {key!r}:{where} {reason}")


class InvalidEventError(CacheSyncError):
    """An event or event record cannot be understood (not JSON, unknown shape, missing field)."""

    def __init__(self, reason: str, source: str | None = None) -> None:
        self.reason = reason
        self.source = source
        super().__init__(f"invalid event{f' from {source}' if source else ''}: {reason}")


class WrongOperationError(InvalidEventError):
    """A record of the other handler's kind (a delete given to the created handler)."""


class EventProcessingError(CacheSyncError):
    """Some records of a directly invoked event failed; raised after the others were applied."""

    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        super().__init__(f"{len(failures)} record(s) failed: " + "; ".join(failures))


class InvalidKeyError(CacheSyncError):
    """An S3 key or index key cannot be used (empty, badly encoded, too long)."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        # A key may be kilobytes long: show its start, so that the reason survives wherever the
        # message is cut (a Batch Operations resultString, a log line).
        shown = repr(key) if len(key) <= 200 else f"{key[:100]!r}... ({len(key)} characters)"
        super().__init__(f"invalid key {shown}: {reason}")


class InvalidQueryError(CacheSyncError):
    """A query's parameters are inconsistent (since after until, bad page size, foreign token)."""


class IndexStoreError(CacheSyncError):
    """Base of the errors raised by the index store."""


class IndexCallError(IndexStoreError):
    """Base of the errors of one DynamoDB call: the operation, the AWS error code, why."""

    verb = "failed"

    def __init__(self, operation: str, code: str, reason: str) -> None:
        self.operation = operation
        self.code = code
        self.reason = reason
        super().__init__(f"index {operation} {self.verb} ({code}): {reason}")


class IndexUnavailableError(IndexCallError):
    """The index could not be reached or kept failing after the bounded retries."""


class IndexRequestError(IndexCallError):
    """DynamoDB refused a request for a non-transient reason (validation, missing table, access)."""

    verb = "refused"


class ConcurrentModificationError(IndexStoreError):
    """The entry kept changing under us; the caller may retry the whole operation later."""

    def __init__(self, bucket: str, key: str, attempts: int) -> None:
        self.bucket = bucket
        self.key = key
        self.attempts = attempts
        super().__init__(
            f"s3://{bucket}/{key}: entry changed concurrently {attempts} times; giving up for now"
        )


class ItemTooLargeError(IndexStoreError):
    """Even the metadata of a document does not fit in one DynamoDB item (400 KB)."""

    def __init__(self, bucket: str, key: str, size: int) -> None:
        self.bucket = bucket
        self.key = key
        self.size = size
        super().__init__(
            f"s3://{bucket}/{key}: metadata alone is {size} bytes, over the item limit"
        )


class ObjectStoreError(CacheSyncError):
    """Base of the errors raised by the object store (S3)."""


class ObjectNotFoundError(ObjectStoreError):
    """The object (or the version asked for) does not exist in S3."""

    def __init__(self, bucket: str, key: str, version_id: str | None = None) -> None:
        self.bucket = bucket
        self.key = key
        self.version_id = version_id
        version = f" version {version_id}" if version_id else ""
        super().__init__(f"s3://{bucket}/{key}{version}: not found")


class ObjectChangedError(ObjectStoreError):
    """The object no longer has the ETag we asked for: it was overwritten since."""

    def __init__(self, bucket: str, key: str, expected_etag: str) -> None:
        self.bucket = bucket
        self.key = key
        self.expected_etag = expected_etag
        super().__init__(f"s3://{bucket}/{key}: no longer has ETag {expected_etag}")


class ObjectCallError(ObjectStoreError):
    """Base of the errors of one S3 call: the operation, the object, the AWS error code, why."""

    verb = "failed"

    def __init__(self, operation: str, bucket: str, key: str, code: str, reason: str) -> None:
        self.operation = operation
        self.bucket = bucket
        self.key = key
        self.code = code
        self.reason = reason
        super().__init__(f"s3 {operation} s3://{bucket}/{key} {self.verb} ({code}): {reason}")


class ObjectUnavailableError(ObjectCallError):
    """S3 could not be reached or kept failing after the bounded retries."""


class ObjectRequestError(ObjectCallError):
    """S3 refused a request for a non-transient reason (access denied, no such bucket)."""

    verb = "refused"


class LocalStackError(CacheSyncError):
    """The embedded local stack could not start, provision or stop."""


class RateLimitTimeoutError(CacheSyncError):
    """Waiting for the rate limiter would pass the caller's deadline."""

    def __init__(self, wait_seconds: float, remaining_seconds: float) -> None:
        self.wait_seconds = wait_seconds
        self.remaining_seconds = remaining_seconds
        left = (
            f"only {remaining_seconds:.3f}s remain"
            if remaining_seconds >= 0
            else f"the deadline passed {-remaining_seconds:.3f}s ago"
        )
        super().__init__(
            f"rate limiter needs a {wait_seconds:.3f}s wait but {left} before the deadline"
        )


class WriteFailedError(CacheSyncError):
    """S3 refused a write-through; the index was rolled back (``rolled_back``) or left pending."""

    def __init__(
        self, bucket: str, key: str, operation: str, rolled_back: bool, reason: str
    ) -> None:
        self.bucket = bucket
        self.key = key
        self.operation = operation
        self.rolled_back = rolled_back
        self.reason = reason
        index = "index restored" if rolled_back else "index entry left pending, resolved later"
        super().__init__(f"{operation} s3://{bucket}/{key} failed ({index}): {reason}")


class IdempotencyConflictError(CacheSyncError):
    """An idempotency key was reused with another payload (or cannot be honoured here)."""

    def __init__(self, idempotency_key: str, reason: str) -> None:
        self.idempotency_key = idempotency_key
        self.reason = reason
        super().__init__(f"idempotency key {idempotency_key!r} refused: {reason}")


class IdempotencyInProgressError(CacheSyncError):
    """A call with the same idempotency key is still running; retry later."""

    def __init__(self, idempotency_key: str) -> None:
        self.idempotency_key = idempotency_key
        super().__init__(f"idempotency key {idempotency_key!r}: the first call is still running")


class DocumentNotFoundError(CacheSyncError):
    """No document at this key, in the index or in S3."""

    def __init__(self, bucket: str, key: str) -> None:
        self.bucket = bucket
        self.key = key
        super().__init__(f"not found: s3://{bucket}/{key}")


class InvalidRequestError(CacheSyncError):
    """A request to a cachesync function is malformed; names the field."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        self.reason = reason
        self.field = field
        where = f" field {field!r}:" if field else ""
        super().__init__(f"invalid request:{where} {reason}")


class FunctionInvokeError(CacheSyncError):
    """Base of the errors raised by the Lambda invoker."""

    def __init__(self, function: str, code: str, reason: str) -> None:
        self.function = function
        self.code = code
        self.reason = reason
        super().__init__(f"invoke {function} failed ({code}): {reason}")


class FunctionUnavailableError(FunctionInvokeError):
    """Lambda throttled the invocation or could not be reached; trying later may succeed."""


class FunctionRequestError(FunctionInvokeError):
    """Lambda refused the invocation (no such function, access denied, payload too large)."""


class ApiKeyNotFoundError(CacheSyncError):
    """No API key has this key id."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(f"no API key {key_id!r}")


class UsageStoreError(CacheSyncError):
    """The API usage table (rate-limit counters) could not be read or written."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        self.operation = operation
        self.code = code
        super().__init__(f"{operation} on the API usage table failed ({code}): {message}")


class RateLimitExceededError(CacheSyncError):
    """An API key went over its request rate; ``retry_after`` seconds until it may again."""

    def __init__(
        self, key_id: str, limit: str, retry_after: int, headers: dict[str, str] | None = None
    ) -> None:
        self.key_id = key_id
        self.limit = limit
        self.retry_after = retry_after
        self.headers = dict(headers or {})
        """The rate-limit headers the 429 answer carries."""
        super().__init__(f"API key {key_id} is over its {limit}: retry in {retry_after} s")


class RateLimiterUnavailableError(CacheSyncError):
    """The rate limiter's counters cannot be reached and it is set to fail closed."""


class SecretStoreError(CacheSyncError):
    """Base of the errors of one Secrets Manager call: the secret, the AWS error code, why."""

    verb = "failed"

    def __init__(self, secret_id: str, code: str, reason: str) -> None:
        self.secret_id = secret_id
        self.code = code
        self.reason = reason
        super().__init__(f"reading secret {secret_id!r} {self.verb} ({code}): {reason}")


class SecretUnavailableError(SecretStoreError):
    """Secrets Manager could not be reached or kept failing after the bounded retries."""


class SecretRequestError(SecretStoreError):
    """Secrets Manager refused the read (no such secret, access denied, cannot decrypt), or the
    secret holds no string."""

    verb = "refused"


class ChangeFeedStoreError(CacheSyncError):
    """The change feed table (published state, analytics) could not be read or written."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        self.operation = operation
        self.code = code
        super().__init__(f"{operation} on the change feed table failed ({code}): {message}")


class IndexStreamError(CacheSyncError):
    """The index table's stream could not be described or read."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        self.operation = operation
        self.code = code
        super().__init__(f"{operation} on the index stream failed ({code}): {message}")


class UnsafeWebhookUrlError(CacheSyncError):
    """A webhook URL is refused by the SSRF guard (not https, or a non-public address)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"webhook URL {url!r} refused: {reason}")


class SubscriptionNotFoundError(CacheSyncError):
    """No webhook subscription has this id."""

    def __init__(self, subscription_id: str) -> None:
        self.subscription_id = subscription_id
        super().__init__(f"no webhook subscription {subscription_id!r}")


class SubscriptionChangedError(CacheSyncError):
    """A subscription changed between reading and writing it (e.g. two rotations at once)."""

    def __init__(self, subscription_id: str) -> None:
        self.subscription_id = subscription_id
        super().__init__(f"webhook subscription {subscription_id!r} changed meanwhile")


class WebhookStoreError(CacheSyncError):
    """Base of the errors of one webhook-table or delivery-queue call: operation, code, why."""

    verb = "failed"

    def __init__(self, operation: str, code: str, reason: str) -> None:
        self.operation = operation
        self.code = code
        self.reason = reason
        super().__init__(f"webhooks {operation} {self.verb} ({code}): {reason}")


class WebhookStoreUnavailableError(WebhookStoreError):
    """DynamoDB or SQS could not be reached or kept failing after the bounded retries."""


class WebhookStoreRequestError(WebhookStoreError):
    """DynamoDB or SQS refused a call for a non-transient reason (validation, missing table)."""

    verb = "refused"


class DeliveryPostponedError(CacheSyncError):
    """A webhook delivery failed; the message comes back after ``retry_after`` seconds, or
    (``exhausted``) its retry budget is spent and SQS moves it to the dead-letter queue."""

    def __init__(self, webhook_id: str, attempt: int, retry_after: int | None, reason: str) -> None:
        self.webhook_id = webhook_id
        self.attempt = attempt
        self.retry_after = retry_after
        self.reason = reason
        then = f"retry in {retry_after} s" if retry_after is not None else "retry budget spent"
        super().__init__(f"delivery {webhook_id} attempt {attempt} failed ({reason}): {then}")


class SubscriptionForbiddenError(CacheSyncError):
    """A webhook subscription asks for customers its owner's key may not see."""

    def __init__(self, customers: list[str]) -> None:
        self.customers = customers
        super().__init__(f"this key may not subscribe to customers {customers}")
