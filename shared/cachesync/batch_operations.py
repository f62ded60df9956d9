"""Use case: index the objects of an S3 Batch Operations job (the ``LambdaInvoke`` operation).

S3 Batch Operations calls the function with a few tasks (one object each, its key URL-encoded)
and expects one result per task: ``Succeeded``, ``TemporaryFailure`` (S3 retries the task) or
``PermanentFailure`` (the task fails and its ``resultString`` goes to the completion report).
Both invocation schemas are accepted: ``1.0`` names the bucket by ARN, ``2.0`` by name and may
carry the job's ``userArguments`` (a string-to-string map: ``{"dry_run": "true"}`` validates and
reports without writing).

Each task indexes the key's **current** object with the guarded write every path uses, even when
the manifest names a version: the index mirrors a key's current state, and a manifest (an S3
Inventory report, a CSV) may name versions that are no longer current. Indexing a non-current
version of a key deleted before cachesync watched it (no tombstone) would serve a document S3
no longer holds; the current object is always the right state, and a stale task for an older
version is then a duplicate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cachesync.backfill import BackfillFilters, ObjectOutcome
from cachesync.exceptions import (
    CacheSyncError,
    ConcurrentModificationError,
    IndexUnavailableError,
    InvalidRequestError,
    ObjectUnavailableError,
    RateLimitTimeoutError,
)
from cachesync.rate_limit import Deadline
from cachesync.requests import parse_request
from cachesync.s3_keys import decode_event_key
from cachesync.validation_errors import first_validation_error

# S3 Batch Operations copies resultString into the completion report and cuts long ones; keep
# each within this many bytes of UTF-8 (so within as many characters) and end it visibly.
MAX_RESULT_STRING_BYTES: Final = 1024
_ELLIPSIS: Final = "..."
DRY_RUN_ARGUMENT: Final = "dry_run"


class ResultCode(StrEnum):
    """A task's result, as S3 Batch Operations spells it."""

    SUCCEEDED = "Succeeded"
    TEMPORARY_FAILURE = "TemporaryFailure"
    """S3 Batch Operations invokes the function for this task again later."""
    PERMANENT_FAILURE = "PermanentFailure"


# Every outcome of ObjectIndexer.index_object has a result code (a unit test checks them all).
OUTCOME_RESULT_CODES: Final[Mapping[ObjectOutcome, ResultCode]] = {
    ObjectOutcome.INDEXED: ResultCode.SUCCEEDED,
    ObjectOutcome.UNCHANGED: ResultCode.SUCCEEDED,
    ObjectOutcome.SKIPPED_NEWER: ResultCode.SUCCEEDED,
    ObjectOutcome.WOULD_INDEX: ResultCode.SUCCEEDED,
    ObjectOutcome.FILTERED: ResultCode.SUCCEEDED,
    # Past its TTL: absent from the index by design, which is the state the task asked for.
    ObjectOutcome.EXPIRED: ResultCode.SUCCEEDED,
    # The document will not become valid by itself: an operator fixes it, its event indexes it.
    ObjectOutcome.INVALID: ResultCode.PERMANENT_FAILURE,
    # Deleted since the manifest was made: its removal event keeps the index right.
    ObjectOutcome.MISSING: ResultCode.PERMANENT_FAILURE,
    ObjectOutcome.FAILED: ResultCode.PERMANENT_FAILURE,
}

# Errors that say "not now" rather than "never": throttling and outages left over after the
# stores' bounded retries, a rate-limit wait that would outlive the invocation, and a key
# rewritten concurrently more often than a write retries. S3 Batch Operations retries these.
_TRANSIENT_ERRORS: Final = (
    IndexUnavailableError,
    ObjectUnavailableError,
    RateLimitTimeoutError,
    ConcurrentModificationError,
)


class Indexer(Protocol):
    """What a task needs from :class:`cachesync.backfill.ObjectIndexer`."""

    def index_object(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        if_match: str | None = None,
        filters: BackfillFilters | None = None,
        dry_run: bool = False,
        deadline: Deadline | None = None,
    ) -> tuple[ObjectOutcome, str]:
        """Index ``bucket/key``; return the outcome and a short reason."""
        ...


# ---------------------------------------------------------------------- request


class BatchOperationTask(BaseModel):
    """One object of the job's manifest. Field names (aliases) as AWS documents them."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    task_id: str = Field(alias="taskId", min_length=1)
    s3_key: str = Field(alias="s3Key", min_length=1)
    """URL-encoded, as in S3 event notifications: decode with :meth:`key`, once."""
    s3_version_id: str | None = Field(default=None, alias="s3VersionId")
    s3_bucket_arn: str | None = Field(default=None, alias="s3BucketArn")
    """Schema 1.0."""
    s3_bucket: str | None = Field(default=None, alias="s3Bucket", min_length=1)
    """Schema 2.0."""

    @field_validator("s3_bucket_arn")
    @classmethod
    def _is_a_bucket_arn(cls, arn: str | None) -> str | None:
        if arn is not None:
            bucket_from_arn(arn)
        return arn

    @model_validator(mode="after")
    def _names_a_bucket(self) -> BatchOperationTask:
        if self.s3_bucket is None and self.s3_bucket_arn is None:
            raise ValueError("a task needs s3BucketArn (schema 1.0) or s3Bucket (schema 2.0)")
        return self

    @property
    def bucket(self) -> str:
        """The bucket's name (schema 2.0 gives it; schema 1.0 gives its ARN)."""
        if self.s3_bucket is not None:
            return self.s3_bucket
        return bucket_from_arn(self.s3_bucket_arn or "")

    def key(self) -> str:
        """The decoded object key; raises :class:`~cachesync.exceptions.InvalidKeyError`."""
        return decode_event_key(self.s3_key)


class BatchOperationJob(BaseModel):
    """The job the tasks belong to."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    id: str = Field(min_length=1)
    user_arguments: dict[str, Any] | None = Field(default=None, alias="userArguments")
    """Schema 2.0: the job's ``UserArguments`` (AWS sends strings; JSON booleans are accepted)."""


class BatchOperationArguments(BaseModel):
    """The user arguments cachesync understands. Others are ignored: the map is the job's, and
    AWS's own samples carry arbitrary keys."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    dry_run: bool = False
    """``"true"``/``"false"`` (the job's arguments are strings) or a JSON boolean."""


class BatchOperationRequest(BaseModel):
    """An S3 Batch Operations ``LambdaInvoke`` payload, schema 1.0 or 2.0."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    invocation_schema_version: Literal["1.0", "2.0"] = Field(alias="invocationSchemaVersion")
    invocation_id: str = Field(alias="invocationId", min_length=1)
    job: BatchOperationJob
    tasks: list[BatchOperationTask] = Field(min_length=1)

    def arguments(self) -> BatchOperationArguments:
        """The job's user arguments; raises :class:`InvalidRequestError` naming a bad one."""
        try:
            return BatchOperationArguments.model_validate(self.job.user_arguments or {})
        except ValidationError as error:
            first = first_validation_error(error, within=("job", "userArguments"))
            raise InvalidRequestError(first.message, field=first.field) from error


def is_batch_operation_event(event: Any) -> bool:
    """Whether a Lambda event comes from S3 Batch Operations (rather than a person or a job)."""
    return isinstance(event, dict) and "invocationSchemaVersion" in event and "tasks" in event


def parse_batch_operation(event: Any) -> BatchOperationRequest:
    """Validate an S3 Batch Operations event; raise :class:`InvalidRequestError` naming the field
    (by AWS's name, e.g. ``tasks.0.s3BucketArn``) when it is malformed as a whole."""
    request = parse_request(BatchOperationRequest, event)
    request.arguments()  # a bad user argument fails the invocation, not each task
    return request


def bucket_from_arn(arn: str) -> str:
    """The bucket named by an S3 bucket ARN.

    The canonical form is ``arn:<partition>:s3:::<bucket>``; the Lambda developer guide's sample
    puts a region and an account in the empty fields, so only the resource part is relied on.
    """
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "s3" or not parts[5]:
        raise ValueError(f"not an S3 bucket ARN: {arn!r}")
    if "/" in parts[5]:
        raise ValueError(f"an S3 bucket ARN names no object: {arn!r}")
    return parts[5]


# ---------------------------------------------------------------------- response


class BatchOperationResult(BaseModel):
    """The result of one task."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    task_id: str = Field(alias="taskId")
    result_code: ResultCode = Field(alias="resultCode")
    result_string: str = Field(alias="resultString")


class BatchOperationResponse(BaseModel):
    """The function's answer to S3 Batch Operations."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    invocation_schema_version: Literal["1.0", "2.0"] = Field(alias="invocationSchemaVersion")
    treat_missing_keys_as: ResultCode = Field(
        default=ResultCode.PERMANENT_FAILURE, alias="treatMissingKeysAs"
    )
    """How S3 counts a task with no result here (never happens: every task gets one)."""
    invocation_id: str = Field(alias="invocationId")
    results: list[BatchOperationResult]

    def to_event(self) -> dict[str, Any]:
        """The response as Lambda returns it to S3 (AWS's field names)."""
        return self.model_dump(mode="json", by_alias=True)

    def counts(self) -> dict[ResultCode, int]:
        """How many tasks ended with each result code (for metrics)."""
        return dict(Counter(result.result_code for result in self.results))


# ---------------------------------------------------------------------- use case


def run_batch_operation(
    indexer: Indexer,
    request: BatchOperationRequest,
    *,
    buckets: set[str] | None,
    deadline: Deadline | None,
) -> BatchOperationResponse:
    """Index each task's object; one result per task, in the tasks' order.

    ``buckets``: the buckets cachesync indexes (``None``: any). A task for another bucket fails
    permanently: indexing it would put documents in the index that no event keeps up to date.
    ``deadline``: tasks not started by then are reported as temporary failures, so S3 retries
    them instead of Lambda killing the invocation.
    """
    dry_run = request.arguments().dry_run
    return BatchOperationResponse(
        invocation_schema_version=request.invocation_schema_version,
        invocation_id=request.invocation_id,
        results=[
            _run_task(indexer, task, buckets=buckets, dry_run=dry_run, deadline=deadline)
            for task in request.tasks
        ],
    )


def _run_task(
    indexer: Indexer,
    task: BatchOperationTask,
    *,
    buckets: set[str] | None,
    dry_run: bool,
    deadline: Deadline | None,
) -> BatchOperationResult:
    bucket = task.bucket
    if buckets is not None and bucket not in buckets:
        configured = ", ".join(sorted(buckets)) or "none"
        return _result(
            task,
            ResultCode.PERMANENT_FAILURE,
            f"bucket {bucket!r} is not indexed by cachesync (configured: {configured})",
        )
    if deadline is not None and deadline.expired():
        return _result(
            task, ResultCode.TEMPORARY_FAILURE, "not started: the invocation ran out of time"
        )
    try:
        key = task.key()
        outcome, reason = indexer.index_object(bucket, key, dry_run=dry_run, deadline=deadline)
    except _TRANSIENT_ERRORS as error:
        return _result(task, ResultCode.TEMPORARY_FAILURE, f"{type(error).__name__}: {error}")
    except CacheSyncError as error:
        return _result(task, ResultCode.PERMANENT_FAILURE, f"{type(error).__name__}: {error}")
    text = outcome.value if reason == outcome.value else f"{outcome.value}: {reason}"
    if dry_run:
        text = f"{text} (dry run)"
    return _result(task, OUTCOME_RESULT_CODES[outcome], text)


def _result(task: BatchOperationTask, code: ResultCode, text: str) -> BatchOperationResult:
    return BatchOperationResult(task_id=task.task_id, result_code=code, result_string=_short(text))


def _short(text: str) -> str:
    """``text`` within :data:`MAX_RESULT_STRING_BYTES` bytes of UTF-8, cut visibly."""
    encoded = text.encode("utf-8")
    if len(encoded) <= MAX_RESULT_STRING_BYTES:
        return text
    room = MAX_RESULT_STRING_BYTES - len(_ELLIPSIS)
    # errors="ignore" drops a multi-byte character the cut went through.
    return encoded[:room].decode("utf-8", errors="ignore") + _ELLIPSIS
