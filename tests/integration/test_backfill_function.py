"""The backfill function: S3 Batch Operations tasks and backfill requests that span invocations,
against DynamoDB Local and moto's S3 (and a recording stand-in for Lambda's Invoke API)."""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus, unquote

import pytest

from cachesync.backfill import Backfill, ObjectIndexer
from cachesync.backfill_invocation import run_backfill_invocation
from cachesync.batch_operations import parse_batch_operation, run_batch_operation
from cachesync.exceptions import InvalidRequestError
from cachesync.index_schema import create_table_request
from cachesync.local import LocalStack
from cachesync.local.lambda_functions import LambdaHandler, LocalLambdaContext, load_handler
from cachesync.local.pipeline import LOCAL_FUNCTION_ENVIRONMENT
from cachesync.rate_limit import Deadline
from cachesync.requests import BackfillRequest, parse_request
from cachesync.retry_policies import RetryPolicy
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.lambda_invoker import FunctionRequestError, FunctionUnavailableError
from cachesync.stores.s3_objects import S3ObjectStore
from tests.support.faults import Fail
from tests.support.s3_events import EVENTS_DIR, load_event

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

FUNCTION = "backfill"
CHANGE = json.loads((EVENTS_DIR / "documents" / "change.json").read_text(encoding="utf-8"))
INVALID = (EVENTS_DIR / "documents" / "invalid_status.json").read_bytes()
# Without its expires_at, which has passed: an expired document is not indexed at all.
ANNOUNCEMENT = json.dumps(
    {
        name: value
        for name, value in json.loads(
            (EVENTS_DIR / "documents" / "announcement.json").read_text(encoding="utf-8")
        ).items()
        if name != "expires_at"
    }
).encode()
# Five valid changes and an invalid one under changes/ (three pages of two), and an
# announcement outside the prefix of the backfill requests.
VALID_CHANGES = [f"changes/CHG-{number}.json" for number in range(1001, 1006)]
INVALID_CHANGE = "changes/CHG-1007.json"


def change(change_id: str, customers: list[str]) -> bytes:
    """A valid change document (events/documents/change.json with another id and customers)."""
    return json.dumps({**CHANGE, "change_id": change_id, "customers": customers}).encode()


@dataclass
class BackfillWorld:
    """A fresh bucket and index table, and the environment the backfill function reads."""

    stack: LocalStack
    bucket: str
    table: str
    s3: S3Client
    dynamodb: DynamoDBClient
    monkeypatch: pytest.MonkeyPatch

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def put_documents(self) -> None:
        """The valid and invalid changes, and an announcement."""
        for number, key in enumerate(VALID_CHANGES):
            customers = ["acme", "globex"] if number % 2 else ["initech"]
            self.put(key, change(Path(key).stem, customers))
        self.put(INVALID_CHANGE, INVALID)
        self.put("announcements/ANN-2001.json", ANNOUNCEMENT)

    def handler(self, **settings: str) -> LambdaHandler:
        """The function loaded afresh (a new execution environment) with ``settings`` set."""
        for name, value in settings.items():
            self.monkeypatch.setenv(name, value)
        return load_handler(FUNCTION)

    def store(self, table: str | None = None) -> DynamoDBIndexStore:
        return DynamoDBIndexStore(self.dynamodb, table or self.table)

    def snapshot(self, table: str | None = None) -> dict[str, tuple[Any, ...]]:
        """What the index says about each key of the bucket (minus per-write tokens)."""
        return {
            key: (
                state.is_tombstone,
                state.ordering.etag,
                state.ordering.s3_time,
                state.customers,
                state.kind,
                state.index_time,
                state.expires_at,
            )
            for key, state in self.store(table).scan_entries(self.bucket)
        }


@pytest.fixture
def world(
    local_stack: LocalStack,
    dynamodb_client: DynamoDBClient,
    s3_client: S3Client,
    index_table: str,
    monkeypatch: pytest.MonkeyPatch,
) -> BackfillWorld:
    bucket = f"bf-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    for name, value in {
        **local_stack.environment(),
        **LOCAL_FUNCTION_ENVIRONMENT,
        "CACHESYNC_TABLE_NAME": index_table,
        "CACHESYNC_BUCKET_NAME": bucket,
        "CACHESYNC_BACKFILL_PAGE_SIZE": "2",
    }.items():
        monkeypatch.setenv(name, value)
    return BackfillWorld(local_stack, bucket, index_table, s3_client, dynamodb_client, monkeypatch)


@pytest.fixture
def second_table(world: BackfillWorld) -> Iterator[str]:
    """Another empty index table, for a run to compare with."""
    name = f"index-{uuid.uuid4().hex[:8]}-second"
    world.dynamodb.create_table(**create_table_request(name))
    yield name
    world.dynamodb.delete_table(TableName=name)


def batch_event(sample: str, bucket: str, *keys: str, **user_arguments: str) -> dict[str, Any]:
    """Our Batch Operations sample with one task per key (URL-encoded as S3 sends keys)."""
    event = load_event(sample)
    template = event["tasks"][0]
    tasks = []
    for number, key in enumerate(keys):
        task = {**copy.deepcopy(template), "taskId": f"task-{number}"}
        task["s3Key"] = quote_plus(key, safe="/")
        if "s3BucketArn" in task:
            task["s3BucketArn"] = f"arn:aws:s3:::{bucket}"
        else:
            task["s3Bucket"] = bucket
        tasks.append(task)
    event["tasks"] = tasks
    if user_arguments:
        event["job"]["userArguments"] = user_arguments
    return event


def invoke(handler: LambdaHandler, event: dict[str, Any], timeout_seconds: int = 60) -> Any:
    return handler(
        event, LocalLambdaContext(function_name=FUNCTION, timeout_seconds=timeout_seconds)
    )


def codes(response: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["resultCode"], r["resultString"].split(":")[0]) for r in response["results"]]


# ---------------------------------------------------------------------- S3 Batch Operations


def test_batch_operations_schema_1_indexes_each_task_then_finds_them_unchanged(
    world: BackfillWorld,
) -> None:
    # Given a valid change, one whose key has spaces, an invalid one, and a key that is not there
    world.put_documents()
    spaced = "changes/CHG-1002 rollback plan.json"
    world.put(spaced, change("CHG-1002", ["acme"]))
    keys = [VALID_CHANGES[0], spaced, INVALID_CHANGE, "changes/CHG-4040.json"]
    event = batch_event("backfill_batch_operations_v1.json", world.bucket, *keys)
    handler = world.handler()
    # When S3 Batch Operations invokes the function with those tasks
    first = invoke(handler, event)
    # Then the valid ones are indexed and the others fail permanently, one result per task
    assert first["invocationSchemaVersion"] == "1.0"
    assert first["invocationId"] == event["invocationId"]
    assert first["treatMissingKeysAs"] == "PermanentFailure"
    assert [r["taskId"] for r in first["results"]] == ["task-0", "task-1", "task-2", "task-3"]
    assert codes(first) == [
        ("Succeeded", "indexed"),
        ("Succeeded", "indexed"),
        ("PermanentFailure", "invalid"),
        ("PermanentFailure", "missing"),
    ]
    assert "status" in first["results"][2]["resultString"]
    # And the spaced key was decoded once and indexed under its real name
    assert world.store().get_document(world.bucket, spaced) is not None
    assert world.store().get_document(world.bucket, INVALID_CHANGE) is None
    # When the same tasks run again (S3 retries a task, or a second job covers the keys)
    again = invoke(handler, event)
    # Then the valid ones are already indexed
    assert codes(again)[:2] == [("Succeeded", "unchanged"), ("Succeeded", "unchanged")]


def test_batch_operations_schema_2_dry_run_then_real_run(world: BackfillWorld) -> None:
    # Given two valid changes and a task for a bucket cachesync does not index
    world.put_documents()
    keys = VALID_CHANGES[:2]
    handler = world.handler()
    dry = batch_event("backfill_batch_operations_v2.json", world.bucket, *keys, dry_run="true")
    dry["tasks"].append({**dry["tasks"][0], "taskId": "foreign", "s3Bucket": "not-ours"})
    # When the job runs with the user argument dry_run "true" (S3 passes strings)
    preview = invoke(handler, dry)
    # Then it reports what it would index, writes nothing, and refuses the foreign bucket
    assert preview["invocationSchemaVersion"] == "2.0"
    assert codes(preview) == [
        ("Succeeded", "would_index"),
        ("Succeeded", "would_index"),
        ("PermanentFailure", "bucket 'not-ours' is not indexed by cachesync (configured"),
    ]
    assert world.snapshot() == {}
    # When the job runs for real
    real = invoke(
        handler,
        batch_event("backfill_batch_operations_v2.json", world.bucket, *keys, dry_run="false"),
    )
    # Then both are indexed
    assert codes(real) == [("Succeeded", "indexed"), ("Succeeded", "indexed")]
    assert set(world.snapshot()) == set(keys)


def test_batch_operations_throttled_index_is_a_temporary_failure(
    world: BackfillWorld, local_stack: LocalStack
) -> None:
    # Given an index store whose DynamoDB throttles every write attempt it makes
    world.put_documents()
    dynamodb = local_stack.client("dynamodb")
    store = DynamoDBIndexStore(
        dynamodb, world.table, retry_policy=RetryPolicy(attempts=2, initial_wait_seconds=0.01)
    )
    indexer = ObjectIndexer(store, S3ObjectStore(world.s3))
    throttle = Fail(400, "ProvisionedThroughputExceededException", times=4)
    for operation in ("PutItem", "TransactWriteItems"):
        dynamodb.meta.events.register(f"before-send.dynamodb.{operation}", throttle)
    # One customer (a PutItem) and two customers (a transaction)
    keys = [VALID_CHANGES[0], VALID_CHANGES[1]]
    request = parse_batch_operation(
        batch_event("backfill_batch_operations_v1.json", world.bucket, *keys)
    )
    # When the tasks run while it throttles
    throttled = run_batch_operation(indexer, request, buckets={world.bucket}, deadline=None)
    # Then both are temporary failures (S3 Batch Operations retries them), naming the cause
    assert [r.result_code.value for r in throttled.results] == ["TemporaryFailure"] * 2
    assert all(
        "ProvisionedThroughputExceededException" in r.result_string for r in throttled.results
    )
    assert world.snapshot() == {}
    # When S3 retries them after the throttling stopped
    retried = run_batch_operation(indexer, request, buckets={world.bucket}, deadline=None)
    # Then they are indexed
    assert [r.result_code.value for r in retried.results] == ["Succeeded"] * 2
    assert throttle.failed == 4


# ---------------------------------------------------------------------- backfill requests


def test_a_backfill_cut_short_continues_to_the_same_index_as_one_run(
    world: BackfillWorld, second_table: str
) -> None:
    # Given six objects under changes/ (three pages of two) and one outside the prefix
    world.put_documents()
    request = load_event("backfill_request.json")
    # When invocations with little time left each get one page done, and each next one is
    # given the previous one's continuation
    short = world.handler()
    results = [invoke(short, request, timeout_seconds=5)]
    while not results[-1]["done"]:
        assert results[-1]["continuation"]
        results.append(invoke(short, {**request, "continuation": results[-1]["continuation"]}, 5))
    # And, on another table, one invocation with time enough does it all
    whole = invoke(world.handler(CACHESYNC_TABLE_NAME=second_table), request)
    # Then the short invocations each finished one page, and only the last is done
    assert [r["pages"] for r in results] == [1, 1, 1]
    assert [r["done"] for r in results] == [False, False, True]
    assert results[-1]["continuation"] is None
    assert not any(r["reinvoked"] for r in results)
    assert whole["done"]
    assert whole["pages"] == 3
    # And both ended with the same index and the same counts
    chained = world.snapshot()
    assert set(chained) == set(VALID_CHANGES)
    assert chained == world.snapshot(second_table)
    assert results[-1]["summary"] == whole["summary"]
    assert whole["summary"]["indexed"] == len(VALID_CHANGES)
    assert whole["summary"]["invalid_reasons"].keys() == {INVALID_CHANGE}


class SteppingClock:
    """A monotonic clock that advances ``step`` seconds every time it is read."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        now = self.now
        self.now += self.step
        return now


@pytest.mark.parametrize(
    ("deadline_at", "pages"),
    [
        (-100.0, 1),  # already past: one page all the same, or the chain would never progress
        (38.0, 1),  # 18 s left after a 10 s page: less than twice the slowest page
        (45.0, 2),  # 25 s left: room for another, then the deadline has passed
    ],
)
def test_pages_stop_when_twice_the_slowest_page_no_longer_fits(
    world: BackfillWorld, deadline_at: float, pages: int
) -> None:
    # Given six objects in pages of two, and a deadline on a clock that advances 10 s per
    # reading (the pacer reads it as a page starts and ends: each page measures 10 s)
    world.put_documents()
    objects = S3ObjectStore(world.s3)
    backfill = Backfill(
        ObjectIndexer(world.store(), objects), objects, bucket=world.bucket, page_size=2
    )
    deadline = Deadline(at=deadline_at, clock=SteppingClock(10.0))
    request = parse_request(BackfillRequest, load_event("backfill_request.json"))
    # When the invocation runs with no fixed margin
    result = run_backfill_invocation(
        backfill, request, deadline=deadline, reinvoke=None, stop_margin_seconds=0
    )
    # Then it stopped before the page that would not have fitted
    assert result.pages == pages
    assert not result.done
    assert result.continuation is not None


def test_a_dry_run_counts_and_writes_nothing(world: BackfillWorld) -> None:
    # Given the documents
    world.put_documents()
    # When the dry-run sample runs (changes/ and announcements/ since 2026-09-01)
    result = invoke(world.handler(), load_event("backfill_request_dry_run.json"))
    # Then it counted what it would index and wrote nothing
    assert result["done"]
    assert result["dry_run"]
    assert result["summary"]["would_index"] == len(VALID_CHANGES) + 1
    assert result["summary"]["invalid"] == 1
    assert result["summary"]["indexed"] == 0
    assert world.snapshot() == {}


@pytest.mark.parametrize(
    ("change_request", "reason"),
    [
        ({"prefixes": ["announcements/"]}, "another backfill"),
        ({"customer": "acme"}, "another backfill"),
        ({"dry_run": True}, "real run"),
    ],
)
def test_a_continuation_is_refused_by_another_request(
    world: BackfillWorld, change_request: dict[str, Any], reason: str
) -> None:
    # Given the continuation of a real backfill of changes/
    world.put_documents()
    handler = world.handler()
    request = load_event("backfill_request.json")
    continuation = invoke(handler, request, timeout_seconds=5)["continuation"]
    # When a request with other filters (or a dry run) presents it
    other = {**request, **change_request, "continuation": continuation}
    # Then it is refused, naming the continuation
    with pytest.raises(InvalidRequestError) as caught:
        invoke(handler, other)
    assert caught.value.field == "continuation"
    assert reason in caught.value.reason


def test_a_dry_runs_continuation_cannot_start_a_real_run(world: BackfillWorld) -> None:
    # Given the continuation of a dry run that would index something
    world.put_documents()
    handler = world.handler()
    dry = {**load_event("backfill_request.json"), "dry_run": True}
    continuation = invoke(handler, dry, timeout_seconds=5)["continuation"]
    # When a real run presents it, Then it is refused (the real run would skip those pages)
    with pytest.raises(InvalidRequestError) as caught:
        invoke(handler, {**dry, "dry_run": False, "continuation": continuation})
    assert "dry run" in caught.value.reason


@pytest.mark.parametrize("continuation", ["not json", '{"version": 1}', "[]"])
def test_a_garbled_continuation_is_refused(world: BackfillWorld, continuation: str) -> None:
    request = {**load_event("backfill_request.json"), "continuation": continuation}
    with pytest.raises(InvalidRequestError) as caught:
        invoke(world.handler(), request)
    assert caught.value.field == "continuation"


def test_a_malformed_backfill_request_names_the_field(world: BackfillWorld) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        invoke(world.handler(), {"prefixes": ["changes/"], "type": "memo"})
    assert caught.value.field == "type"


# ---------------------------------------------------------------------- self-invocation


@dataclass
class RecordingLambda:
    """Lambda's Invoke API on loopback: records asynchronous invocations, or refuses them."""

    invocations: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    refuse_with: tuple[int, str] | None = None


@pytest.fixture
def recording_lambda(world: BackfillWorld) -> Iterator[RecordingLambda]:
    """Points the function's Lambda client (AWS_ENDPOINT_URL_LAMBDA) at a recorder."""
    recorder = RecordingLambda()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if recorder.refuse_with is not None:
                status, code = recorder.refuse_with
                answer = json.dumps({"__type": code, "message": "refused by the test"}).encode()
                self.send_response(status)
                self.send_header("x-amzn-ErrorType", code)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                return
            # POST /2015-03-31/functions/<FunctionName>/invocations
            function = unquote(self.path.split("/functions/")[1].split("/")[0])
            invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
            recorder.invocations.append((function, invocation_type, json.loads(body)))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test asserts on what was recorded."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="recording-lambda", daemon=True)
    thread.start()
    world.monkeypatch.setenv(
        "AWS_ENDPOINT_URL_LAMBDA", f"http://127.0.0.1:{server.server_address[1]}"
    )
    yield recorder
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_self_invoke_chains_invocations_until_done(
    world: BackfillWorld, recording_lambda: RecordingLambda
) -> None:
    # Given the documents and a backfill request that invokes itself to continue
    world.put_documents()
    handler = world.handler()
    request = {**load_event("backfill_request.json"), "self_invoke": True}
    context = LocalLambdaContext(function_name=FUNCTION, timeout_seconds=5)
    # When it runs, and every invocation it queues is delivered (as Lambda would, once each)
    results = [handler(request, context)]
    delivered = 0
    while delivered < len(recording_lambda.invocations):
        _, _, payload = recording_lambda.invocations[delivered]
        delivered += 1
        results.append(handler(payload, context))
    # Then each unfinished invocation queued exactly one asynchronous invocation of itself,
    # with the same request and its continuation, and the last one finished the backfill
    assert [r["reinvoked"] for r in results] == [True, True, False]
    assert [r["done"] for r in results] == [False, False, True]
    for (function, invocation_type, payload), result in zip(
        recording_lambda.invocations, results, strict=False
    ):
        assert function == context.invoked_function_arn
        assert invocation_type == "Event"
        assert payload == {**payload, "prefixes": ["changes/"], "self_invoke": True}
        assert payload["continuation"] == result["continuation"]
    assert set(world.snapshot()) == set(VALID_CHANGES)


def test_without_self_invoke_nothing_is_queued(
    world: BackfillWorld, recording_lambda: RecordingLambda
) -> None:
    world.put_documents()
    result = invoke(world.handler(), load_event("backfill_request.json"), timeout_seconds=5)
    assert not result["done"]
    assert not result["reinvoked"]
    assert recording_lambda.invocations == []


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (429, "TooManyRequestsException", FunctionUnavailableError),
        (404, "ResourceNotFoundException", FunctionRequestError),
        (413, "RequestTooLargeException", FunctionRequestError),
    ],
)
def test_a_refused_self_invocation_fails_the_invocation(
    world: BackfillWorld,
    recording_lambda: RecordingLambda,
    status: int,
    code: str,
    error: type[Exception],
) -> None:
    # Given Lambda refuses asynchronous invocations
    world.put_documents()
    recording_lambda.refuse_with = (status, code)
    request = {**load_event("backfill_request.json"), "self_invoke": True}
    # When an unfinished invocation tries to continue
    # Then it fails with the translated error (Lambda retries it, or it reaches the DLQ)
    with pytest.raises(error) as caught:
        invoke(world.handler(), request, timeout_seconds=5)
    assert getattr(caught.value, "code", None) == code
