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
        super().__init__(f"invalid key {key!r}: {reason}")


class InvalidQueryError(CacheSyncError):
    """A query's parameters are inconsistent (since after until, bad page size, foreign token)."""


class IndexStoreError(CacheSyncError):
    """Base of the errors raised by the index store."""


class IndexUnavailableError(IndexStoreError):
    """The index could not be reached or kept failing after the bounded retries."""

    def __init__(self, operation: str, code: str, reason: str) -> None:
        self.operation = operation
        self.code = code
        self.reason = reason
        super().__init__(f"index {operation} failed ({code}): {reason}")


class IndexRequestError(IndexStoreError):
    """DynamoDB refused a request for a non-transient reason (validation, missing table, access)."""

    def __init__(self, operation: str, code: str, reason: str) -> None:
        self.operation = operation
        self.code = code
        self.reason = reason
        super().__init__(f"index {operation} refused ({code}): {reason}")


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


class ObjectUnavailableError(ObjectStoreError):
    """S3 could not be reached or kept failing after the bounded retries."""

    def __init__(self, operation: str, bucket: str, key: str, code: str, reason: str) -> None:
        self.operation = operation
        self.bucket = bucket
        self.key = key
        self.code = code
        self.reason = reason
        super().__init__(f"s3 {operation} s3://{bucket}/{key} failed ({code}): {reason}")


class ObjectRequestError(ObjectStoreError):
    """S3 refused a request for a non-transient reason (access denied, no such bucket)."""

    def __init__(self, operation: str, bucket: str, key: str, code: str, reason: str) -> None:
        self.operation = operation
        self.bucket = bucket
        self.key = key
        self.code = code
        self.reason = reason
        super().__init__(f"s3 {operation} s3://{bucket}/{key} refused ({code}): {reason}")


class LocalStackError(CacheSyncError):
    """The embedded local stack could not start, provision or stop."""
