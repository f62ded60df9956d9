"""S3 Batch Operations: parsing AWS's payloads, the response's shape, and each result code."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cachesync.backfill import BackfillFilters, ObjectOutcome
from cachesync.batch_operations import (
    MAX_RESULT_STRING_BYTES,
    OUTCOME_RESULT_CODES,
    BatchOperationRequest,
    ResultCode,
    is_batch_operation_event,
    parse_batch_operation,
    run_batch_operation,
)
from cachesync.exceptions import (
    CacheSyncError,
    ConcurrentModificationError,
    IndexRequestError,
    IndexUnavailableError,
    InvalidRequestError,
    ItemTooLargeError,
    ObjectRequestError,
    ObjectUnavailableError,
    RateLimitTimeoutError,
)
from cachesync.rate_limit import Deadline
from tests.support.s3_events import load_event

BUCKET = "cachesync-documents"


class FakeIndexer:
    """Answers ``index_object`` per key: an (outcome, reason) pair, or an error to raise."""

    def __init__(self, answers: dict[str, tuple[ObjectOutcome, str] | CacheSyncError]) -> None:
        self.answers = answers
        self.calls: list[dict[str, Any]] = []

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
        self.calls.append(
            {
                "bucket": bucket,
                "key": key,
                "version_id": version_id,
                "if_match": if_match,
                "filters": filters,
                "dry_run": dry_run,
                "deadline": deadline,
            }
        )
        answer = self.answers[key]
        if isinstance(answer, CacheSyncError):
            raise answer
        return answer


def batch_event(*keys: str, version: str = "1.0", **job: Any) -> dict[str, Any]:
    """An event from our AWS-derived sample, one task per (URL-encoded) key."""
    sample = (
        "backfill_batch_operations_v1.json"
        if version == "1.0"
        else ("backfill_batch_operations_v2.json")
    )
    event = load_event(sample)
    template = event["tasks"][0]
    event["tasks"] = [
        {**copy.deepcopy(template), "taskId": f"task-{number}", "s3Key": key}
        for number, key in enumerate(keys)
    ]
    event["job"].update(job)
    return event


def run(indexer: FakeIndexer, event: dict[str, Any], **options: Any) -> dict[str, Any]:
    options.setdefault("buckets", {BUCKET})
    options.setdefault("deadline", None)
    response = run_batch_operation(indexer, parse_batch_operation(event), **options)
    return response.to_event()


# ---------------------------------------------------------------------- parsing


def test_aws_schema_1_sample_parses() -> None:
    # Given AWS's schema 1.0 sample (bucket by ARN, a version id)
    event = load_event("aws-samples/s3BatchOperationEventSchemaV1.json")
    # When it is parsed
    request = parse_batch_operation(event)
    # Then every field is read under AWS's name
    assert is_batch_operation_event(event)
    assert request.invocation_schema_version == "1.0"
    assert request.invocation_id == event["invocationId"]
    assert request.job.id == "f3cc4f60-61f6-4a2b-8a21-d07600c373ce"
    assert request.job.user_arguments is None
    (task,) = request.tasks
    assert task.task_id == "dGFza2lkZ29lc2hlcmUK"
    assert task.bucket == "powertools-dataset"
    assert task.key() == "prefix/dataset/dataset.20231222.json.gz"
    assert task.s3_version_id == "1"
    assert request.arguments().dry_run is False


def test_aws_schema_2_sample_parses() -> None:
    # Given AWS's schema 2.0 sample (bucket by name, user arguments, a null version)
    event = load_event("aws-samples/s3BatchOperationEventSchemaV2.json")
    # When it is parsed
    request = parse_batch_operation(event)
    # Then the bucket is the name and unknown user arguments are kept but not acted on
    (task,) = request.tasks
    assert request.invocation_schema_version == "2.0"
    assert task.bucket == "powertools-dataset"
    assert task.s3_version_id is None
    assert request.job.user_arguments == {"k1": "v1", "k2": "v2"}
    assert request.arguments().dry_run is False


def test_our_samples_parse_and_decode_the_key_once() -> None:
    # Given our samples (URL-encoded keys, one with spaces written as "+")
    v1 = parse_batch_operation(load_event("backfill_batch_operations_v1.json"))
    v2 = parse_batch_operation(load_event("backfill_batch_operations_v2.json"))
    # Then both name our bucket and decode their keys
    assert v1.tasks[0].bucket == BUCKET
    assert v1.tasks[0].key() == "changes/CHG-1001.json"
    assert v2.tasks[0].bucket == BUCKET
    assert v2.tasks[0].key() == "changes/CHG-1002 rollback plan.json"
    # And the string "false" AWS sends for a user argument is a boolean here
    assert v2.arguments().dry_run is False


def test_a_literal_plus_and_percent_survive_decoding() -> None:
    # Given keys holding a literal "+", "%" and non-ASCII text, encoded as S3 encodes them
    request = parse_batch_operation(batch_event("changes/a%2Bb%25c+%C3%A9t%C3%A9.json"))
    # Then one decoding restores them exactly
    assert request.tasks[0].key() == "changes/a+b%c été.json"


def test_the_lambda_guides_arn_with_region_and_account_names_the_bucket() -> None:
    # Given the ARN form of the Lambda developer guide's sample (region and account filled in)
    event = batch_event("changes/CHG-1001.json")
    event["tasks"][0]["s3BucketArn"] = "arn:aws:s3:us-east-1:0123456788:awsexamplebucket"
    # Then the bucket is the resource part
    assert parse_batch_operation(event).tasks[0].bucket == "awsexamplebucket"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"invocationSchemaVersion": "3.0"}, "invocationSchemaVersion"),
        ({"invocationId": ""}, "invocationId"),
        ({"tasks": []}, "tasks"),
        ({"job": {}}, "job.id"),
    ],
)
def test_a_malformed_request_names_the_field(change: dict[str, Any], field: str) -> None:
    # Given a request broken in one top-level field
    event = {**batch_event("changes/CHG-1001.json"), **change}
    # When it is parsed, Then the error names the field as AWS spells it
    with pytest.raises(InvalidRequestError) as caught:
        parse_batch_operation(event)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("task_change", "field"),
    [
        ({"s3BucketArn": "arn:aws:sqs:us-east-1:123456789012:queue"}, "tasks.0.s3BucketArn"),
        ({"s3BucketArn": "cachesync-documents"}, "tasks.0.s3BucketArn"),
        ({"s3BucketArn": "arn:aws:s3:::bucket/key"}, "tasks.0.s3BucketArn"),
        ({"s3BucketArn": None}, "tasks.0"),
        ({"s3Key": ""}, "tasks.0.s3Key"),
        ({"taskId": None}, "tasks.0.taskId"),
    ],
)
def test_a_malformed_task_names_the_field(task_change: dict[str, Any], field: str) -> None:
    # Given a task broken in one field
    event = batch_event("changes/CHG-1001.json")
    event["tasks"][0].update(task_change)
    # When it is parsed, Then the whole request is refused, naming the task's field
    with pytest.raises(InvalidRequestError) as caught:
        parse_batch_operation(event)
    assert caught.value.field == field


def test_an_invalid_dry_run_argument_is_refused() -> None:
    # Given a schema 2.0 job whose dry_run argument is neither true nor false
    event = batch_event("changes/CHG-1001.json", version="2.0", userArguments={"dry_run": "maybe"})
    # When it is parsed, Then the request is refused naming the argument
    with pytest.raises(InvalidRequestError) as caught:
        parse_batch_operation(event)
    assert caught.value.field == "job.userArguments.dry_run"


def test_other_payloads_are_not_batch_operations() -> None:
    assert not is_batch_operation_event(load_event("backfill_request.json"))
    assert not is_batch_operation_event({"invocationSchemaVersion": "1.0"})
    assert not is_batch_operation_event(["tasks"])


# ---------------------------------------------------------------------- response


def test_the_response_has_exactly_awss_field_names() -> None:
    # Given a schema 1.0 request with one task
    event = load_event("backfill_batch_operations_v1.json")
    indexer = FakeIndexer({"changes/CHG-1001.json": (ObjectOutcome.INDEXED, "indexed")})
    # When it runs
    response = run(indexer, event)
    # Then the response echoes the invocation and names every field as AWS does
    assert response == {
        "invocationSchemaVersion": "1.0",
        "treatMissingKeysAs": "PermanentFailure",
        "invocationId": event["invocationId"],
        "results": [
            {
                "taskId": event["tasks"][0]["taskId"],
                "resultCode": "Succeeded",
                "resultString": "indexed",
            }
        ],
    }


def test_a_schema_2_response_echoes_its_version() -> None:
    event = load_event("backfill_batch_operations_v2.json")
    indexer = FakeIndexer({"changes/CHG-1002 rollback plan.json": (ObjectOutcome.INDEXED, "x")})
    assert run(indexer, event)["invocationSchemaVersion"] == "2.0"


# ---------------------------------------------------------------------- result codes


def test_every_outcome_has_a_result_code() -> None:
    assert set(OUTCOME_RESULT_CODES) == set(ObjectOutcome)


@pytest.mark.parametrize(
    ("outcome", "reason", "code", "text"),
    [
        (ObjectOutcome.INDEXED, "indexed", "Succeeded", "indexed"),
        (ObjectOutcome.UNCHANGED, "already indexed", "Succeeded", "unchanged: already indexed"),
        (ObjectOutcome.SKIPPED_NEWER, "newer", "Succeeded", "skipped_newer: newer"),
        (ObjectOutcome.FILTERED, "no match", "Succeeded", "filtered: no match"),
        (ObjectOutcome.EXPIRED, "past its TTL", "Succeeded", "expired: past its TTL"),
        (ObjectOutcome.INVALID, "status: bad", "PermanentFailure", "invalid: status: bad"),
        (ObjectOutcome.MISSING, "not found", "PermanentFailure", "missing: not found"),
    ],
)
def test_outcomes_map_to_result_codes(
    outcome: ObjectOutcome, reason: str, code: str, text: str
) -> None:
    # Given an indexer answering one outcome
    indexer = FakeIndexer({"changes/k.json": (outcome, reason)})
    # When the task runs
    (result,) = run(indexer, batch_event("changes/k.json"))["results"]
    # Then its code and string say what happened
    assert result["resultCode"] == code
    assert result["resultString"] == text


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (IndexUnavailableError("PutItem", "ThrottlingException", "slow down"), "TemporaryFailure"),
        (
            ObjectUnavailableError("GetObject", BUCKET, "k", "SlowDown", "reduce your rate"),
            "TemporaryFailure",
        ),
        (RateLimitTimeoutError(wait_seconds=2.0, remaining_seconds=0.5), "TemporaryFailure"),
        (ConcurrentModificationError(BUCKET, "k", 5), "TemporaryFailure"),
        (IndexRequestError("PutItem", "AccessDeniedException", "no"), "PermanentFailure"),
        (
            ObjectRequestError("GetObject", BUCKET, "k", "AccessDenied", "denied"),
            "PermanentFailure",
        ),
        (ItemTooLargeError(BUCKET, "k", 500_000), "PermanentFailure"),
    ],
)
def test_errors_map_to_temporary_or_permanent_failures(error: CacheSyncError, code: str) -> None:
    # Given an indexer that raises after its stores' retries
    indexer = FakeIndexer({"changes/k.json": error})
    # When the task runs
    (result,) = run(indexer, batch_event("changes/k.json"))["results"]
    # Then transient errors are retried by S3 (temporary), the others are not
    assert result["resultCode"] == code
    assert result["resultString"].startswith(type(error).__name__)


def test_one_result_per_task_in_order_and_the_index_is_read_by_current_object() -> None:
    # Given four tasks with different fates, one naming a version
    indexer = FakeIndexer(
        {
            "changes/a.json": (ObjectOutcome.INDEXED, "indexed"),
            "changes/b c.json": IndexUnavailableError("PutItem", "ThrottlingException", "slow"),
            "changes/d.json": (ObjectOutcome.INVALID, "not JSON"),
            "changes/e.json": (ObjectOutcome.UNCHANGED, "already indexed"),
        }
    )
    event = batch_event("changes/a.json", "changes/b+c.json", "changes/d.json", "changes/e.json")
    event["tasks"][0]["s3VersionId"] = "3sL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY"
    # When they run
    response = run(indexer, event)
    # Then each task has its result, in the tasks' order
    assert [(r["taskId"], r["resultCode"]) for r in response["results"]] == [
        ("task-0", "Succeeded"),
        ("task-1", "TemporaryFailure"),
        ("task-2", "PermanentFailure"),
        ("task-3", "Succeeded"),
    ]
    # And the current object of each key was indexed (never an older version the manifest named)
    assert [call["version_id"] for call in indexer.calls] == [None] * 4
    assert [call["key"] for call in indexer.calls][1] == "changes/b c.json"


def test_a_bucket_cachesync_does_not_index_fails_permanently_without_a_read() -> None:
    # Given a task for a bucket other than the configured one
    indexer = FakeIndexer({})
    event = batch_event("changes/k.json")
    event["tasks"][0]["s3BucketArn"] = "arn:aws:s3:::someone-elses-bucket"
    # When it runs
    (result,) = run(indexer, event)["results"]
    # Then it fails permanently, naming both buckets, and nothing was read
    assert result["resultCode"] == "PermanentFailure"
    assert "someone-elses-bucket" in result["resultString"]
    assert BUCKET in result["resultString"]
    assert indexer.calls == []


def test_any_bucket_is_accepted_when_none_is_configured() -> None:
    indexer = FakeIndexer({"k": (ObjectOutcome.INDEXED, "indexed")})
    event = batch_event("k")
    event["tasks"][0]["s3BucketArn"] = "arn:aws:s3:::other"
    (result,) = run(indexer, event, buckets=None)["results"]
    assert result["resultCode"] == "Succeeded"
    assert indexer.calls[0]["bucket"] == "other"


def test_a_key_that_does_not_decode_fails_permanently() -> None:
    # Given a key whose percent escapes are not UTF-8
    indexer = FakeIndexer({})
    (result,) = run(indexer, batch_event("changes/%FF.json"))["results"]
    # Then that task fails permanently and the indexer was not called
    assert result["resultCode"] == "PermanentFailure"
    assert result["resultString"].startswith("InvalidKeyError")
    assert indexer.calls == []


def test_tasks_not_started_before_the_deadline_are_retried_later() -> None:
    # Given an invocation whose deadline has passed
    indexer = FakeIndexer({})
    (result,) = run(indexer, batch_event("changes/k.json"), deadline=Deadline.after(-1))["results"]
    # Then the task is a temporary failure and nothing was read
    assert result["resultCode"] == "TemporaryFailure"
    assert indexer.calls == []


@pytest.mark.parametrize("value", ["true", "True", True])
def test_user_argument_dry_run_is_passed_to_the_indexer(value: Any) -> None:
    # Given a schema 2.0 job with dry_run (AWS sends strings; a JSON boolean also works)
    indexer = FakeIndexer({"changes/k.json": (ObjectOutcome.WOULD_INDEX, "would be indexed")})
    event = batch_event("changes/k.json", version="2.0", userArguments={"dry_run": value})
    # When it runs
    (result,) = run(indexer, event)["results"]
    # Then the indexer was asked for a dry run and the result says so
    assert indexer.calls[0]["dry_run"] is True
    assert result["resultCode"] == "Succeeded"
    assert result["resultString"] == "would_index: would be indexed (dry run)"


def test_a_long_result_string_is_cut_to_the_limit() -> None:
    # Given a reason far longer than S3 keeps, with multi-byte characters at the cut
    indexer = FakeIndexer({"changes/k.json": (ObjectOutcome.INVALID, "é" * 5000)})
    # When the task runs
    (result,) = run(indexer, batch_event("changes/k.json"))["results"]
    # Then the string fits in 1024 bytes of UTF-8 and ends visibly cut
    assert len(result["resultString"].encode("utf-8")) <= MAX_RESULT_STRING_BYTES
    assert result["resultString"].endswith("...")


def test_counts_by_result_code() -> None:
    indexer = FakeIndexer(
        {"a": (ObjectOutcome.INDEXED, "indexed"), "b": (ObjectOutcome.MISSING, "gone")}
    )
    response = run_batch_operation(
        indexer,
        BatchOperationRequest.model_validate(batch_event("a", "b")),
        buckets=None,
        deadline=None,
    )
    assert response.counts() == {ResultCode.SUCCEEDED: 1, ResultCode.PERMANENT_FAILURE: 1}
