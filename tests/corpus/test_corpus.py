"""The bad-input corpus (tests/corpus/README.md): every case file run against its entry point.

Every case ends in a clear, named error (a failed batch item and its reason, a named exception, a
4xx problem body, one CLI error line) or in the documented acceptance, and never costs anything
else: the good records of the same batch are applied (their index entries carry their S3 ETags)
and every other index item (a bystander document indexed before) is exactly as it was.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

import pytest

from cachesync.api.keys import Scope
from cachesync.api.problems import PROBLEM_CONTENT_TYPE, TYPE_PREFIX
from cachesync.change_feed_schema import create_change_feed_table_request
from cachesync.cli import main as cli_main
from cachesync.exceptions import CacheSyncError
from cachesync.index_schema import (
    PARTITION_KEY,
    SORT_KEY,
    create_idempotency_table_request,
    create_table_request,
)
from cachesync.local import LocalStack
from cachesync.local.lambda_functions import LambdaHandler, LocalLambdaContext, load_handler
from cachesync.local.pipeline import LOCAL_FUNCTION_ENVIRONMENT
from cachesync.stores.dynamodb_change_feed import DynamoDBChangeFeedStore
from tests.corpus.cases import ENTRY_POINTS, OUTCOMES, REQUIRED_KINDS, Case, all_cases, expand
from tests.integration.api_http import ApiWorld, Reply, change, index_document
from tests.support.s3_events import (
    change_document,
    eventbridge_event,
    load_event,
    s3_notification,
    s3_record,
    sns_envelope,
    sqs_event,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

CASES = all_cases()
BYSTANDER = "changes/bystander.json"
GOOD_NAMES = ("good-a.json", "good-b.json")
MIN_CASES = 60


def _cases_of(*entry_points: str) -> list[Any]:
    return [pytest.param(case, id=case.id) for case in CASES if case.entry_point in entry_points]


# ---------------------------------------------------------------------- the corpus itself


def test_the_corpus_has_enough_cases_every_one_with_an_expectation_and_every_entry_point() -> None:
    # Given the case files
    per_entry = Counter(case.entry_point for case in CASES)
    # Then there are at least 60, every entry point has some, and no folder is unknown
    assert len(CASES) >= MIN_CASES, per_entry
    assert set(per_entry) == set(ENTRY_POINTS), per_entry
    # And every kind of bad input the issue lists is in some case
    covered = {kind for case in CASES for kind in case.kinds}
    assert not REQUIRED_KINDS - covered, REQUIRED_KINDS - covered
    # And every case says what it is, which kinds of bad input it holds, and what must happen
    for case in CASES:
        assert case.description, case.id
        assert case.kinds, case.id
        assert case.input, case.id
        assert case.expect.get("outcome") in OUTCOMES, case.id
        if case.expect["outcome"] != "applied":
            assert case.expect.get("reason_contains") or case.expect.get("status"), case.id
        else:
            assert case.expect.get("why"), f"{case.id}: an accepted input says why"


# ---------------------------------------------------------------------- index snapshots


def _index_items(client: DynamoDBClient, table: str) -> dict[tuple[str, str], Any]:
    items: dict[tuple[str, str], Any] = {}
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            items[(item[PARTITION_KEY]["S"], item[SORT_KEY]["S"])] = item
    return items


def _except(items: dict[tuple[str, str], Any], bucket: str, keys: tuple[str, ...]) -> Any:
    skipped = {f"{bucket}/{key}" for key in keys}
    return {where: item for where, item in items.items() if where[0] not in skipped}


def _document(items: dict[tuple[str, str], Any], bucket: str, key: str) -> Any:
    return items.get((f"{bucket}/{key}", "doc"))


def _assert_indexed(items: dict[tuple[str, str], Any], bucket: str, key: str, etag: str) -> None:
    document = _document(items, bucket, key)
    assert document is not None, f"{key} was not indexed"
    assert document["record_type"]["S"] == "document", (key, document["record_type"])
    assert document["etag"]["S"] == etag, key


def _errors_logged(caplog: pytest.LogCaptureFixture) -> str:
    """The error lines logged; none may be an unexpected error (those carry a traceback)."""
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    unexpected = [r.getMessage() for r in errors if r.exc_info]
    assert not unexpected, f"an unexpected error (a defect) was logged: {unexpected}"
    return "\n".join(r.getMessage() for r in errors)


# ---------------------------------------------------------------------- S3 event handlers


@dataclass
class S3World:
    """One bucket and index table for every S3 case of the module, the handlers loaded once (as
    one execution environment), and a bystander document indexed before any case ran."""

    bucket: str
    table: str
    s3: S3Client
    dynamodb: DynamoDBClient
    created: LambdaHandler
    removed: LambdaHandler

    def put(self, key: str, body: bytes) -> tuple[str, int]:
        response = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return response["ETag"].strip('"'), len(body)


@pytest.fixture(scope="module")
def s3_world(local_stack: LocalStack) -> Iterator[S3World]:
    dynamodb, s3 = local_stack.client("dynamodb"), local_stack.client("s3")
    suffix = uuid.uuid4().hex[:10]
    bucket, table = f"corpus-{suffix}", f"corpus-{suffix}"
    s3.create_bucket(Bucket=bucket)
    dynamodb.create_table(**create_table_request(table))
    environment = {
        **local_stack.environment(),
        **LOCAL_FUNCTION_ENVIRONMENT,
        "CACHESYNC_TABLE_NAME": table,
        "CACHESYNC_BUCKET_NAME": bucket,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        world = S3World(
            bucket=bucket,
            table=table,
            s3=s3,
            dynamodb=dynamodb,
            created=load_handler("s3_object_created"),
            removed=load_handler("s3_object_removed"),
        )
    etag, size = world.put(BYSTANDER, change_document("CHG-BYSTANDER"))
    world.created(
        s3_notification(s3_record("ObjectCreated:Put", bucket, BYSTANDER, etag=etag, size=size)),
        LocalLambdaContext(function_name="s3_object_created"),
    )
    yield world
    dynamodb.delete_table(TableName=table)


class S3Run:
    """One S3 case: two good objects of its own, and the case's object if it places one."""

    def __init__(self, world: S3World, case: Case) -> None:
        self.world = world
        self.case = case
        self.handler = case.input.get("handler", "created")
        self.good_keys = tuple(f"changes/{case.entry_point}/{case.name}/{k}" for k in GOOD_NAMES)
        self.etags: dict[str, str] = {}
        self.sizes: dict[str, int] = {}
        for number, key in enumerate(self.good_keys):
            self.etags[key], self.sizes[key] = world.put(key, change_document(f"CHG-GOOD-{number}"))
        if self.handler == "removed":
            # The good records are removals of indexed objects since deleted from S3.
            self.invoke_as("created", s3_notification(*self._creations()))
            for key in self.good_keys:
                world.s3.delete_object(Bucket=world.bucket, Key=key)
        self.bindings = {
            "bucket": world.bucket,
            "now": datetime.now(UTC).isoformat(),
            # Records naming no object of their own: an absent key, a plausible ETag and size.
            "key": f"changes/{case.name}/absent.json",
            "key_enc": f"changes/{case.name}/absent.json",
            "etag": "0" * 32,
            "size": "10",
        }
        placed = case.input.get("object")
        if placed is not None:
            key = expand(placed["key"], self.bindings)
            body = expand(placed["body"], self.bindings)
            etag, size = world.put(key, body if isinstance(body, bytes) else body.encode())
            self.bindings |= {
                "key": key,
                "key_enc": quote_plus(key, safe="/"),
                "etag": etag,
                "size": str(size),
            }
        self.before = self.items()

    def items(self) -> dict[tuple[str, str], Any]:
        return _index_items(self.world.dynamodb, self.world.table)

    def _creations(self) -> list[dict[str, Any]]:
        return [
            s3_record(
                "ObjectCreated:Put",
                self.world.bucket,
                key,
                etag=self.etags[key],
                size=self.sizes[key],
            )
            for key in self.good_keys
        ]

    def good_records(self) -> list[dict[str, Any]]:
        """The S3 records of the good objects (creations, or removals for the removed handler)."""
        if self.handler == "removed":
            return [
                s3_record("ObjectRemoved:Delete", self.world.bucket, key) for key in self.good_keys
            ]
        return self._creations()

    def good_eventbridge(self) -> list[dict[str, Any]]:
        if self.handler == "removed":
            return [
                eventbridge_event("Object Deleted", self.world.bucket, key)
                for key in self.good_keys
            ]
        return [
            eventbridge_event(
                "Object Created",
                self.world.bucket,
                key,
                etag=self.etags[key],
                size=self.sizes[key],
            )
            for key in self.good_keys
        ]

    def invoke_as(self, handler: str, event: dict[str, Any]) -> Any:
        function = self.world.removed if handler == "removed" else self.world.created
        name = f"s3_object_{handler}"
        return function(event, LocalLambdaContext(function_name=name))

    def invoke(self, event: dict[str, Any]) -> Any:
        return self.invoke_as(self.handler, event)

    def check_the_rest(self) -> None:
        """The good records applied, everything else (bystander included) unchanged."""
        after = self.items()
        bucket = self.world.bucket
        case_key = self.bindings["key"]
        changed = self.good_keys
        if self.case.expect.get("case_object"):
            changed = (*changed, case_key)
        assert _except(after, bucket, changed) == _except(self.before, bucket, changed)
        for key in self.good_keys:
            if self.handler == "removed":
                assert _document(after, bucket, key)["record_type"]["S"] == "tombstone", key
            else:
                _assert_indexed(after, bucket, key, self.etags[key])
        if self.case.expect.get("case_object") == "indexed":
            _assert_indexed(after, bucket, case_key, self.bindings["etag"])
        if self.case.expect.get("case_object") == "evicted":
            # An invalid document at the key: the index stops serving the key (a tombstone).
            assert _document(after, bucket, case_key)["record_type"]["S"] == "tombstone"


def _bad_body(run: S3Run) -> str:
    """The case's SQS message body: ``body`` (a text as is) or ``message`` (serialised)."""
    inp = run.case.input
    if "body" in inp:
        body = expand(inp["body"], run.bindings)
        return body if isinstance(body, str) else json.dumps(body)
    return json.dumps(expand(inp["message"], run.bindings))


def _good_bodies(run: S3Run) -> list[str]:
    if run.case.entry_point == "s3_sns_sqs":
        return [json.dumps(sns_envelope(s3_notification(r))) for r in run.good_records()]
    if run.case.entry_point == "s3_eventbridge":
        return [json.dumps(event) for event in run.good_eventbridge()]
    return [json.dumps(s3_notification(r)) for r in run.good_records()]


@pytest.mark.parametrize("case", _cases_of("s3_sqs", "s3_sns_sqs", "s3_eventbridge"))
def test_s3_event_in_sqs(case: Case, s3_world: S3World, caplog: pytest.LogCaptureFixture) -> None:
    # Given a bystander indexed, and a batch: a good message, the case's message, a good one
    run = S3Run(s3_world, case)
    if case.input.get("direct"):
        _direct_eventbridge(run)
        return
    first, last = _good_bodies(run)
    event = sqs_event(first, _bad_body(run), last)
    bad_id = event["Records"][1]["messageId"]
    # When the handler takes the batch
    response = run.invoke(event)
    # Then only the case's message failed (or none, for an accepted input), with its reason
    failed = [item["itemIdentifier"] for item in response["batchItemFailures"]]
    expect = case.expect
    if expect["outcome"] == "failed_item":
        assert failed == [bad_id]
        assert expect["reason_contains"] in _errors_logged(caplog)
    else:
        assert expect["outcome"] == "applied", case.id
        assert failed == []
    # And the good messages were applied, and nothing else changed
    run.check_the_rest()


def _direct_eventbridge(run: S3Run) -> None:
    """An EventBridge event invoking the function directly: one change; it fails alone."""
    event = expand(run.case.input["event"], run.bindings)
    expect = run.case.expect
    with pytest.raises(CacheSyncError) as caught:
        run.invoke(event)
    assert type(caught.value).__name__ == expect["error"]
    assert expect["reason_contains"] in str(caught.value)
    for good in run.good_eventbridge():
        run.invoke(good)
    run.check_the_rest()


@pytest.mark.parametrize("case", _cases_of("s3_direct"))
def test_s3_direct_notification(case: Case, s3_world: S3World) -> None:
    # Given a bystander indexed, and a direct notification: a good record, the case's, a good one
    run = S3Run(s3_world, case)
    first, last = run.good_records()
    bad = expand(case.input["records"], run.bindings)
    event = {"Records": [first, *bad, last]}
    expect = case.expect
    # When the handler takes it
    if expect["outcome"] == "applied":
        run.invoke(event)
    else:
        # Then the invocation fails (Lambda retries it, then its on-failure destination) naming
        # the bad record
        with pytest.raises(CacheSyncError) as caught:
            run.invoke(event)
        assert type(caught.value).__name__ == expect["error"], caught.value
        assert expect["reason_contains"] in str(caught.value)
    # And the good records were applied all the same, and nothing else changed
    run.check_the_rest()


# ---------------------------------------------------------------------- application functions


@dataclass
class AppWorld:
    """The application-facing functions on one bucket, index, idempotency and feed table."""

    bucket: str
    table: str
    feed_table: str
    s3: S3Client
    dynamodb: DynamoDBClient
    handlers: dict[str, LambdaHandler]

    def invoke(self, name: str, event: Any) -> Any:
        return self.handlers[name](event, LocalLambdaContext(function_name=name))

    def state(self) -> tuple[Any, Any]:
        """Everything a bad request could touch: the index's items and S3's objects."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        objects = sorted((o["Key"], o["ETag"]) for page in pages for o in page.get("Contents", []))
        return _index_items(self.dynamodb, self.table), objects


@pytest.fixture(scope="module")
def app_world(local_stack: LocalStack) -> Iterator[AppWorld]:
    dynamodb, s3 = local_stack.client("dynamodb"), local_stack.client("s3")
    suffix = uuid.uuid4().hex[:10]
    bucket, table = f"corpus-app-{suffix}", f"corpus-app-{suffix}"
    idempotency, feed = f"corpus-idem-{suffix}", f"corpus-feed-{suffix}"
    s3.create_bucket(Bucket=bucket)
    dynamodb.create_table(**create_table_request(table))
    dynamodb.create_table(**create_idempotency_table_request(idempotency))
    dynamodb.create_table(**create_change_feed_table_request(feed))
    environment = {
        **local_stack.environment(),
        **LOCAL_FUNCTION_ENVIRONMENT,
        "CACHESYNC_TABLE_NAME": table,
        "CACHESYNC_BUCKET_NAME": bucket,
        "CACHESYNC_IDEMPOTENCY_TABLE_NAME": idempotency,
        "CACHESYNC_CHANGE_FEED_TABLE_NAME": feed,
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        handlers = {
            name: load_handler(name)
            for name in ("write_through", "fallback_read", "backfill", "change_feed")
        }
    world = AppWorld(bucket, table, feed, s3, dynamodb, handlers)
    # A bystander document, written through before any case ran.
    world.invoke(
        "write_through",
        {"operation": "put", "key": BYSTANDER, "document": json.loads(change_document("CHG-B"))},
    )
    yield world
    for name in (table, idempotency, feed):
        dynamodb.delete_table(TableName=name)


def _bindings(world: AppWorld, case: Case) -> dict[str, str]:
    return {
        "bucket": world.bucket,
        "now": datetime.now(UTC).isoformat(),
        "case": case.name,
        "bystander": BYSTANDER,
    }


@pytest.mark.parametrize("case", _cases_of("write_through", "fallback_read", "backfill_request"))
def test_application_request(case: Case, app_world: AppWorld) -> None:
    # Given the index and the bucket as they are
    before = app_world.state()
    event = expand(case.input["event"], _bindings(app_world, case))
    function = "backfill" if case.entry_point == "backfill_request" else case.entry_point
    if case.expect["outcome"] == "applied":
        # An accepted payload changes its own key only
        app_world.invoke(function, event)
        items, objects = app_world.state()
        key = event["key"]
        assert _except(items, app_world.bucket, (key,)) == _except(
            before[0], app_world.bucket, (key,)
        )
        assert [o for o in objects if o[0] != key] == [o for o in before[1] if o[0] != key]
        return
    # When the function is invoked with the case's payload
    with pytest.raises(CacheSyncError) as caught:
        app_world.invoke(function, event)
    # Then it fails with the named error and its reason
    assert type(caught.value).__name__ == case.expect["error"], caught.value
    assert case.expect["reason_contains"] in str(caught.value)
    # And neither the index nor the bucket changed
    assert app_world.state() == before


@pytest.mark.parametrize("case", _cases_of("backfill_batch_operations"))
def test_batch_operations(case: Case, app_world: AppWorld) -> None:
    # Given two good objects, the case's object if it places one, and the tasks: a good one, the
    # case's, a good one
    bindings = _bindings(app_world, case)
    good_keys = [f"changes/batch/{case.name}/{name}" for name in GOOD_NAMES]
    etags = {}
    for number, key in enumerate(good_keys):
        put = app_world.s3.put_object(
            Bucket=app_world.bucket, Key=key, Body=change_document(f"CHG-BATCH-{number}")
        )
        etags[key] = put["ETag"].strip('"')
    placed = case.input.get("object")
    if placed is not None:
        body = expand(placed["body"], bindings)
        key = expand(placed["key"], bindings)
        app_world.s3.put_object(
            Bucket=app_world.bucket,
            Key=key,
            Body=body if isinstance(body, bytes) else body.encode(),
        )
        bindings["key"] = key
    good = [
        {
            "taskId": f"good-{n}",
            "s3Key": quote_plus(k, safe="/"),
            "s3VersionId": None,
            "s3BucketArn": f"arn:aws:s3:::{app_world.bucket}",
        }
        for n, k in enumerate(good_keys)
    ]
    bad = expand(case.input.get("tasks", []), bindings)
    event = {
        "invocationSchemaVersion": "1.0",
        "invocationId": "YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo",
        "job": {"id": "be4b5f8c-1a6d-4e1d-9f3a-0c1b2a3d4e5f"},
        "tasks": [good[0], *bad, good[1]],
        **expand(case.input.get("request", {}), bindings),
    }
    before = _index_items(app_world.dynamodb, app_world.table)
    expect = case.expect
    if expect["outcome"] == "raises":
        # When the payload is malformed as a whole, Then the invocation fails naming the field,
        # having written nothing
        with pytest.raises(CacheSyncError) as caught:
            app_world.invoke("backfill", event)
        assert type(caught.value).__name__ == expect["error"], caught.value
        assert expect["reason_contains"] in str(caught.value)
        assert _index_items(app_world.dynamodb, app_world.table) == before
        return
    # When the function runs the tasks
    answer = app_world.invoke("backfill", event)
    # Then the case's tasks failed permanently with their reason, the good ones succeeded
    results = {r["taskId"]: r for r in answer["results"]}
    assert [r["taskId"] for r in answer["results"]] == [t["taskId"] for t in event["tasks"]]
    for task in bad:
        assert results[task["taskId"]]["resultCode"] == expect["result_code"], results
        assert expect["reason_contains"] in results[task["taskId"]]["resultString"], results
    after = _index_items(app_world.dynamodb, app_world.table)
    for key in good_keys:
        assert results[good[good_keys.index(key)]["taskId"]]["resultCode"] == "Succeeded"
        _assert_indexed(after, app_world.bucket, key, etags[key])
    # And nothing else in the index changed (an invalid object's key may only be evicted)
    changed = (*good_keys, bindings.get("key", ""))
    assert _except(after, app_world.bucket, tuple(changed)) == _except(
        before, app_world.bucket, tuple(changed)
    )
    if "key" in bindings:
        case_item = _document(after, app_world.bucket, bindings["key"])
        assert case_item is None or case_item["record_type"]["S"] == "tombstone"


def _stream_record(world: AppWorld, key: str, sequence: int) -> dict[str, Any]:
    """The sample's first record (a document inserted) for ``key`` at ``sequence``."""
    record = copy.deepcopy(load_event("change_feed_stream.json")["Records"][0])
    pk = f"{world.bucket}/{key}"
    stream = record["dynamodb"]
    stream["Keys"]["pk"]["S"] = pk
    stream["NewImage"]["pk"]["S"] = pk
    stream["NewImage"]["object_key"]["S"] = key
    stream["NewImage"]["bucket"]["S"] = world.bucket
    stream["SequenceNumber"] = str(sequence)
    return record


@pytest.mark.parametrize("case", _cases_of("change_feed"))
def test_change_feed_stream(
    case: Case, app_world: AppWorld, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a batch: a good record, the case's, a good one (of other documents)
    first_key, last_key = (f"changes/feed/{case.name}/{name}" for name in GOOD_NAMES)
    sequence = 100 + 10 * CASES.index(case)
    first = _stream_record(app_world, first_key, sequence)
    last = _stream_record(app_world, last_key, sequence + 2)
    bad = expand(case.input["record"], _bindings(app_world, case))
    if isinstance(bad, dict) and case.input.get("base"):
        # A good record with the case's members replaced (``null``: removed).
        merged = _stream_record(app_world, f"changes/feed/{case.name}/bad.json", sequence + 1)
        for path, value in bad.items():
            target = merged
            *parents, leaf = path.split(".")
            for parent in parents:
                target = target[parent]
            if value is None:
                target.pop(leaf, None)
            else:
                target[leaf] = value
        bad = merged
    store = DynamoDBChangeFeedStore(app_world.dynamodb, app_world.feed_table)
    # When the change feed takes it
    answer = app_world.invoke("change_feed", {"Records": [first, bad, last]})
    # Then the batch stops at the case's record, reported with its reason as the one failure
    # (Lambda retries from it; bisecting and the on-failure destination take it out)
    expected_id = case.expect.get("item_identifier", str(sequence + 1))
    assert answer == {"batchItemFailures": [{"itemIdentifier": expected_id}]}
    assert case.expect["reason_contains"] in _errors_logged(caplog)
    # And the record before it was published; the one after waits for the retry
    assert store.published(f"{app_world.bucket}/{first_key}") is not None
    assert store.published(f"{app_world.bucket}/{last_key}") is None


# ---------------------------------------------------------------------- the query API, over HTTP


@dataclass
class ApiCorpus:
    """The API server (one process for every API case) and the keys the cases present."""

    world: ApiWorld
    dynamodb: DynamoDBClient
    bindings: dict[str, str]

    def items(self) -> dict[tuple[str, str], Any]:
        return _index_items(self.dynamodb, self.world.index.table_name)


@pytest.fixture(scope="module")
def api_corpus(api_world: ApiWorld, local_stack: LocalStack) -> ApiCorpus:
    index_document(api_world, BYSTANDER, change("CHG-BYSTANDER", modified=datetime.now(UTC)))
    read = api_world.key()
    write = api_world.key(scopes=(Scope.READ, Scope.WRITE))
    admin = api_world.key(scopes=(Scope.READ, Scope.WRITE, Scope.ADMIN))
    key_id, secret = read.removeprefix("csk_").split("_", 1)
    bindings = {
        "read_key": read,
        "write_key": write,
        "admin_key": admin,
        # A well-formed key whose secret is wrong (the id exists)
        "wrong_secret_key": f"csk_{key_id}_{'x' * len(secret)}",
        "bystander": BYSTANDER,
        "bucket": api_world.bucket,
    }
    return ApiCorpus(api_world, local_stack.client("dynamodb"), bindings)


def _send(corpus: ApiCorpus, request: dict[str, Any]) -> Reply:
    bindings = corpus.bindings
    headers = expand(request.get("headers", {}), bindings)
    auth = request.get("auth", "read")
    if auth != "none":
        headers.setdefault("Authorization", f"Bearer {bindings[auth + '_key']}")
    body = expand(request.get("body"), bindings)
    if "json" in request:
        body = json.dumps(expand(request["json"], bindings))
        headers.setdefault("Content-Type", "application/json")
    return corpus.world.request(
        request["method"], expand(request["path"], bindings), headers=headers, body=body
    )


def _assert_problem(reply: Reply, expect: dict[str, Any]) -> dict[str, Any]:
    assert reply.status == expect["status"], (reply.status, reply.body[:500])
    assert reply.headers["content-type"].startswith(PROBLEM_CONTENT_TYPE), reply.headers
    problem: dict[str, Any] = reply.json()
    assert problem["status"] == reply.status
    assert problem["type"] == f"{TYPE_PREFIX}{expect['problem_type']}", problem
    assert problem["title"], problem
    assert expect.get("reason_contains", "") in problem["detail"], problem
    return problem


@pytest.mark.parametrize("case", _cases_of("api"))
def test_api_request(case: Case, api_corpus: ApiCorpus) -> None:
    # Given the index as it is (a bystander document in it)
    before = api_corpus.items()
    expect = case.expect
    bulk = case.input.get("bulk")
    request = case.input
    if bulk is not None:
        # A bulk write: a good put, the case's items, a good put
        good = [
            {
                "op": "put",
                "key": f"changes/api/{case.name}/{name}",
                "document": change(f"CHG-{number}", modified=datetime.now(UTC)),
            }
            for number, name in enumerate(GOOD_NAMES)
        ]
        items = [json.dumps(good[0]), *(expand(bulk, api_corpus.bindings)), json.dumps(good[1])]
        request = {
            "method": "POST",
            "path": "/v1/documents/bulk",
            "auth": "write",
            "headers": {"Content-Type": "application/json"},
            "body": '{"items": [' + ", ".join(items) + "]}",
        }
    # When the request reaches the server
    reply = _send(api_corpus, request)
    # Then it is refused with a 4xx: a problem body from the API, or the HTTP server's own
    # refusal of a request it cannot take (never a 5xx)
    assert reply.status < 500, (reply.status, reply.body[:500])
    changed: tuple[str, ...] = ()
    if expect["outcome"] == "problem":
        _assert_problem(reply, expect)
    elif expect["outcome"] == "refused":
        assert reply.status == expect["status"], (reply.status, reply.body[:300])
    else:
        # A bulk write: the case's items failed each with its problem, the good ones are written
        assert expect["outcome"] == "failed_item", case.id
        assert reply.status == 207, reply.body[:500]
        result = reply.json()
        statuses = [item["status"] for item in result["items"]]
        assert statuses == [200, *expect["item_statuses"], 200], result
        for item in result["items"][1:-1]:
            assert item["problem"]["status"] == item["status"]
            assert expect["reason_contains"] in item["problem"]["detail"], item
        after = api_corpus.items()
        for item in (result["items"][0], result["items"][-1]):
            _assert_indexed(after, api_corpus.world.bucket, item["key"], item["receipt"]["etag"])
        changed = tuple(item["key"] for item in result["items"])
    # And the index is unchanged but for the good items
    assert _except(api_corpus.items(), api_corpus.world.bucket, changed) == _except(
        before, api_corpus.world.bucket, changed
    )


# ---------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("case", _cases_of("cli"))
def test_cli(
    case: Case,
    app_world: AppWorld,
    local_stack: LocalStack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the CLI configured for the world's bucket and index, and the case's files
    for name, value in {
        **local_stack.environment(),
        **LOCAL_FUNCTION_ENVIRONMENT,
        "CACHESYNC_TABLE_NAME": app_world.table,
        "CACHESYNC_BUCKET_NAME": app_world.bucket,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    bindings = {**_bindings(app_world, case), "tmp": str(tmp_path)}
    for name, content in case.input.get("files", {}).items():
        path = tmp_path / expand(name, bindings)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = expand(content, bindings)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    before = app_world.state()
    argv = ["cachesync", *expand(case.input["argv"], bindings)]
    monkeypatch.setattr(sys, "argv", argv)
    # When it runs
    with pytest.raises(SystemExit) as exited:
        cli_main()
    out, err = capsys.readouterr()
    # Then it exits non-zero with one error line naming the reason, and no traceback
    expect = case.expect
    assert exited.value.code == expect["exit_code"], (out, err)
    assert "Traceback" not in err, err
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == expect.get("error_lines", 1), err
    assert expect["reason_contains"] in "\n".join([*error_lines, out]), (out, err)
    # And nothing changed but the good documents of a bulk put
    items, objects = app_world.state()
    written = tuple(expand(expect.get("written", []), bindings))
    assert _except(items, app_world.bucket, written) == _except(
        before[0], app_world.bucket, written
    )
    assert [o for o in objects if o[0] not in written] == before[1]
    for key in written:
        assert _document(items, app_world.bucket, key)["record_type"]["S"] == "document", key
