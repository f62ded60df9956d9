"""Write-through and fallback reads against DynamoDB Local and moto, failures injected by hooks."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from botocore.exceptions import ConnectionClosedError

from cachesync.changes import Operation, changes_from_message
from cachesync.circuit_breaker import CircuitState
from cachesync.exceptions import (
    DocumentNotFoundError,
    IdempotencyConflictError,
    IdempotencyInProgressError,
    IndexUnavailableError,
    InvalidDocumentError,
    ObjectUnavailableError,
    WriteFailedError,
)
from cachesync.fallback_reader import FallbackReader, MissReason, ReadSource
from cachesync.index_models import IndexQuery
from cachesync.index_schema import create_idempotency_table_request
from cachesync.local import LocalStack
from cachesync.local.lambda_functions import LocalLambdaContext
from cachesync.requests import WriteRequest
from cachesync.retry_policies import RetryPolicy
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.s3_objects import S3ObjectStore
from cachesync.sync import S3EventSync, SyncOutcome
from cachesync.write_through import DocumentWriter, IndexCommit, execute_write
from tests.support.faults import Fail
from tests.support.s3_events import change_document, s3_notification, s3_record

FAST = RetryPolicy(attempts=2, initial_wait_seconds=0.001)


@dataclass
class AppWorld:
    bucket: str
    s3: Any
    dynamodb: Any
    index: DynamoDBIndexStore
    objects: S3ObjectStore
    writer: DocumentWriter
    other_s3: Any
    """Another client: an out-of-band writer, unaffected by hooks on ``s3``."""

    def reader(self, **options: Any) -> FallbackReader:
        return FallbackReader(self.index, self.objects, bucket=self.bucket, **options)

    def s3_etag(self, key: str) -> str | None:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=key).get("Contents", [])
        return next((o["ETag"].strip('"') for o in listed if o["Key"] == key), None)


@pytest.fixture
def app(local_stack: LocalStack, index_table: str) -> Iterator[AppWorld]:
    dynamodb, s3 = local_stack.client("dynamodb"), local_stack.client("s3")
    bucket = f"app-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    idempotency_table = f"idem-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(**create_idempotency_table_request(idempotency_table))
    index = DynamoDBIndexStore(dynamodb, index_table, retry_policy=FAST)
    objects = S3ObjectStore(s3, retry_policy=FAST)
    writer = DocumentWriter(
        index,
        objects,
        bucket=bucket,
        idempotency_store=DynamoDBPersistenceLayer(
            table_name=idempotency_table, boto3_client=dynamodb
        ),
    )
    yield AppWorld(bucket, s3, dynamodb, index, objects, writer, local_stack.client("s3"))
    dynamodb.delete_table(TableName=idempotency_table)


def doc(title: str, **fields: Any) -> dict[str, Any]:
    return json.loads(change_document("CHG-W", title=title, **fields))


# ---------------------------------------------------------------------- fault injection


def test_an_injected_dynamodb_fault_carries_dynamodb_s_error_code(app: AppWorld) -> None:
    # Given a throttling fault injected on the index's GetItem (DynamoDB Local on a free port)
    throttled = Fail(400, "ProvisionedThroughputExceededException")
    app.dynamodb.meta.events.register("before-send.dynamodb.GetItem", throttled)
    # When the index reads
    with pytest.raises(IndexUnavailableError) as caught:
        app.index.get_state(app.bucket, "changes/any.json")
    # Then the store saw DynamoDB's own error code (parsed from a DynamoDB-shaped body)
    assert caught.value.code == "ProvisionedThroughputExceededException"
    assert throttled.calls == FAST.attempts


def test_an_injected_s3_fault_carries_s3_s_error_code(app: AppWorld) -> None:
    # Given a fault injected on S3's PutObject
    app.s3.meta.events.register("before-send.s3.PutObject", Fail(503, "SlowDown"))
    # When the object store puts
    with pytest.raises(ObjectUnavailableError) as caught:
        app.objects.put(app.bucket, "changes/any.json", b"{}")
    # Then it saw S3's error code
    assert caught.value.code == "SlowDown"


# ---------------------------------------------------------------------- write-through


def test_a_write_is_committed_with_what_s3_stored(app: AppWorld) -> None:
    receipt = app.writer.write_document("changes/w.json", doc("v1"))
    stored = app.index.get_document(app.bucket, "changes/w.json")
    assert receipt.index is IndexCommit.COMMITTED
    assert stored is not None
    assert stored.etag == receipt.etag == app.s3_etag("changes/w.json")
    assert [i.key for i in app.index.query(IndexQuery(customer="acme")).items] == ["changes/w.json"]


def test_an_invalid_document_writes_nothing_anywhere(app: AppWorld) -> None:
    with pytest.raises(InvalidDocumentError) as caught:
        app.writer.write_document("changes/bad.json", {"object_type": "change", "status": "?"})
    assert caught.value.field == "change_id"
    assert app.s3_etag("changes/bad.json") is None
    assert app.index.get_state(app.bucket, "changes/bad.json") is None


def test_dry_run_writes_nothing(app: AppWorld) -> None:
    receipt = app.writer.write_document("changes/dry.json", doc("dry"), dry_run=True)
    assert receipt.index is IndexCommit.DRY_RUN
    assert receipt.doc_id == "CHG-W"
    assert app.s3_etag("changes/dry.json") is None
    assert app.index.get_state(app.bucket, "changes/dry.json") is None


def _s3_last_modified(app: AppWorld, key: str) -> datetime:
    modified: datetime = app.other_s3.head_object(Bucket=app.bucket, Key=key)["LastModified"]
    return modified


def _own_event(app: AppWorld, key: str, etag: str | None, size: int | None) -> SyncOutcome:
    event = s3_notification(
        s3_record("ObjectCreated:Put", app.bucket, key, etag=etag, size=size, sequencer="01")
    )
    [change] = changes_from_message(event)
    return S3EventSync(app.index, app.objects).apply(change, Operation.CREATED).outcome


def test_a_put_crossing_a_second_boundary_is_committed_with_s3_s_last_modified(
    app: AppWorld,
) -> None:
    # Given S3 answering the PutObject a second after the object's LastModified
    key = "changes/slow.json"

    def answered_a_second_later(parsed: dict[str, Any], **_: Any) -> None:
        headers = parsed["ResponseMetadata"]["HTTPHeaders"]
        later = parsedate_to_datetime(headers["date"]) + timedelta(seconds=1)
        headers["date"] = format_datetime(later, usegmt=True)

    app.s3.meta.events.register("after-call.s3.PutObject", answered_a_second_later)
    # When the document is written through
    receipt = app.writer.write_document(key, doc("slow"))
    # Then the index holds S3's LastModified, not the response's Date
    stored = app.index.get_document(app.bucket, key)
    assert receipt.index is IndexCommit.COMMITTED
    assert stored is not None
    assert stored.s3_last_modified == _s3_last_modified(app, key)
    # And the event of our own write is still a duplicate
    assert _own_event(app, key, receipt.etag, receipt.size) is SyncOutcome.DUPLICATE


def test_when_the_check_of_last_modified_fails_the_entry_stays_invisible_until_resolved(
    app: AppWorld,
) -> None:
    # Given v1 indexed, then a write of v2 whose HEAD (S3's LastModified) fails
    key = "changes/unchecked.json"
    app.writer.write_document(key, doc("v1"))
    failing_head = Fail(500, "InternalError")
    app.s3.meta.events.register("before-send.s3.HeadObject", failing_head)
    # When v2 is written through
    receipt = app.writer.write_document(key, doc("v2"))
    # Then S3 holds v2, the receipt says the index is pending, and no reader sees a guessed
    # LastModified: the entry is the invisible marker
    assert receipt.index is IndexCommit.PENDING
    assert receipt.etag == app.s3_etag(key)
    state = app.index.get_state(app.bucket, key)
    assert state is not None
    assert state.is_pending
    assert app.index.get_document(app.bucket, key) is None
    # And the event of our own write resolves it with S3's exact facts
    app.s3.meta.events.unregister("before-send.s3.HeadObject", failing_head)
    _own_event(app, key, receipt.etag, receipt.size)
    exact = app.index.get_document(app.bucket, key)
    assert exact is not None
    assert exact.etag == receipt.etag
    assert exact.s3_last_modified == _s3_last_modified(app, key)


def test_a_retried_claim_whose_answer_was_lost_rolls_back_to_the_document_s3_holds(
    app: AppWorld,
) -> None:
    # Given v1 written through, then a claim whose first UpdateItem applied but whose answer
    # was lost (the retry sees our own marker as the entry it replaced), and a failing PutObject
    key = "changes/lost-claim.json"
    app.writer.write_document(key, doc("v1"))
    lost: list[str] = []

    def answer_lost(http_response: Any, **_: Any) -> None:
        if not lost:
            lost.append("lost")
            raise ConnectionClosedError(endpoint_url="http://index")

    app.dynamodb.meta.events.register("after-call.dynamodb.UpdateItem", answer_lost)
    app.s3.meta.events.register("before-send.s3.PutObject", Fail(500, "InternalError"))
    # When v2 is written through
    with pytest.raises(WriteFailedError) as failed:
        app.writer.write_document(key, doc("v2"))
    # Then the claim was retried, and the rollback left v1 served, not a marker
    assert lost == ["lost"]
    assert failed.value.rolled_back
    served = app.index.get_document(app.bucket, key)
    assert served is not None
    assert served.etag == app.s3_etag(key)


def test_s3_failure_rolls_back_to_the_previous_document(app: AppWorld) -> None:
    # Given v1 written through
    app.writer.write_document("changes/rb.json", doc("v1"))
    before = app.index.get_document(app.bucket, "changes/rb.json")
    # When S3 fails every attempt of the next put
    app.s3.meta.events.register("before-send.s3.PutObject", Fail(500, "InternalError"))
    with pytest.raises(WriteFailedError) as caught:
        app.writer.write_document("changes/rb.json", doc("v2"))
    # Then the index serves v1 again, exactly, and S3 still holds v1
    assert caught.value.rolled_back
    after = app.index.get_document(app.bucket, "changes/rb.json")
    assert after == before
    assert after is not None
    assert after.etag == app.s3_etag("changes/rb.json")


def test_s3_failure_on_a_new_key_removes_the_entry(app: AppWorld) -> None:
    app.s3.meta.events.register("before-send.s3.PutObject", Fail(503, "SlowDown"))
    with pytest.raises(WriteFailedError):
        app.writer.write_document("changes/new.json", doc("new"))
    assert app.index.get_state(app.bucket, "changes/new.json") is None


def test_a_rollback_never_clobbers_a_newer_event(app: AppWorld) -> None:
    # Given v1 written, and while the next put fails, a newer out-of-band version's event lands
    app.writer.write_document("changes/race.json", doc("v1"))
    sync = S3EventSync(app.index, S3ObjectStore(app.other_s3))
    newer: dict[str, Any] = {}

    def newer_event_lands() -> None:
        if newer:
            return
        newer["started"] = True
        body = change_document("CHG-W", title="out-of-band")
        put = app.other_s3.put_object(Bucket=app.bucket, Key="changes/race.json", Body=body)
        event = s3_notification(
            s3_record(
                "ObjectCreated:Put",
                app.bucket,
                "changes/race.json",
                etag=put["ETag"].strip('"'),
                size=len(body),
                sequencer="0A",
            )
        )
        [change] = changes_from_message(event)
        newer["result"] = sync.apply(change, Operation.CREATED)

    failing = Fail(500, "InternalError", then=newer_event_lands)
    app.s3.meta.events.register("before-send.s3.PutObject", failing)
    with pytest.raises(WriteFailedError) as caught:
        app.writer.write_document("changes/race.json", doc("v2"))
    # Then the rollback found the marker replaced and left the newer state alone
    assert newer["result"].outcome is SyncOutcome.APPLIED
    assert not caught.value.rolled_back
    stored = app.index.get_document(app.bucket, "changes/race.json")
    assert stored is not None
    assert stored.title == "out-of-band"


def test_a_crash_between_steps_is_invisible_then_resolved_by_the_event(app: AppWorld) -> None:
    # Given a write-through that recorded its intent, put the object, and died before commit
    key = "changes/crash.json"
    app.index.begin_pending(app.bucket, key, "put")
    body = change_document("CHG-W", title="crashed")
    put = app.s3.put_object(Bucket=app.bucket, Key=key, Body=body)
    # Then nothing is visible in the index
    assert app.index.get_document(app.bucket, key) is None
    assert app.index.query(IndexQuery(customer="acme")).items == []
    # When the object's S3 event arrives
    event = s3_notification(
        s3_record(
            "ObjectCreated:Put",
            app.bucket,
            key,
            etag=put["ETag"].strip('"'),
            size=len(body),
            sequencer="01",
        )
    )
    [change] = changes_from_message(event)
    result = S3EventSync(app.index, app.objects).apply(change, Operation.CREATED)
    # Then the pending entry is resolved to what S3 holds
    assert result.outcome is SyncOutcome.APPLIED
    stored = app.index.get_document(app.bucket, key)
    assert stored is not None
    assert stored.title == "crashed"


def test_a_crash_before_the_put_is_resolved_by_the_next_read(app: AppWorld) -> None:
    # Given v1, then a write-through that died right after recording its intent
    key = "changes/crash2.json"
    app.writer.write_document(key, doc("v1"))
    app.index.begin_pending(app.bucket, key, "put")
    # When a reader comes by after the pending entry is old enough to be taken as crashed
    later = datetime.now(UTC) + timedelta(minutes=10)
    result = app.reader(clock=lambda: later).get_document(key)
    # Then it answered from S3 and its backfill resolved the entry
    assert result.source is ReadSource.S3
    assert result.miss_reason is MissReason.PENDING
    assert result.backfilled
    stored = app.index.get_document(app.bucket, key)
    assert stored is not None
    assert stored.title == "v1"


def test_idempotent_replay_returns_the_first_result_without_writing(app: AppWorld) -> None:
    puts = Fail(500, "InternalError", times=0)  # counts, never fails
    app.s3.meta.events.register("before-send.s3.PutObject", puts)
    document = doc("v1")
    first = app.writer.write_document("changes/idem.json", document, idempotency_key="k-1")
    again = app.writer.write_document("changes/idem.json", document, idempotency_key="k-1")
    assert again == first
    assert puts.calls == 1


class _Killed(BaseException):
    """Lambda killed the invocation mid-write (a timeout): no exception handler of ours runs."""


@dataclass
class _ShortInvocation(LocalLambdaContext):
    """An invocation with little time left."""

    remaining_ms: int = 1500

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def _killed(request: Any, **_: Any) -> None:
    raise _Killed


def test_a_retry_after_a_killed_invocation_proceeds_after_its_deadline(app: AppWorld) -> None:
    # Given an invocation with 1.5 s left, killed between its intent and its PutObject
    request = WriteRequest(
        operation="put", key="changes/killed.json", document=doc("v1"), idempotency_key="k-kill"
    )
    app.s3.meta.events.register("before-send.s3.PutObject", _killed)
    with pytest.raises(_Killed):
        execute_write(app.writer, request, context=_ShortInvocation(function_name="write_through"))
    app.s3.meta.events.unregister("before-send.s3.PutObject", _killed)
    retry_context = LocalLambdaContext(function_name="write_through")
    # When Lambda retries at once, the first invocation may still be running: refused
    with pytest.raises(IdempotencyInProgressError):
        execute_write(app.writer, request, context=retry_context)
    # When it retries after the killed invocation's deadline
    time.sleep(1.6)
    receipt = execute_write(app.writer, request, context=retry_context)
    # Then the retry wrote and committed the document
    assert receipt.index is IndexCommit.COMMITTED
    assert receipt.etag == app.s3_etag("changes/killed.json")


def test_outside_lambda_a_write_that_died_frees_its_key_after_the_in_progress_bound(
    app: AppWorld, local_stack: LocalStack
) -> None:
    # Given a command-line writer (no Lambda context) whose in-progress records last 1.5 s
    dynamodb = local_stack.client("dynamodb")
    idempotency_table = f"idem-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(**create_idempotency_table_request(idempotency_table))
    writer = DocumentWriter(
        app.index,
        app.objects,
        bucket=app.bucket,
        idempotency_store=DynamoDBPersistenceLayer(
            table_name=idempotency_table, boto3_client=dynamodb
        ),
        in_progress_expiry=timedelta(seconds=1.5),
    )
    request = WriteRequest(
        operation="put", key="changes/cli-died.json", document=doc("v1"), idempotency_key="k-cli"
    )
    # ... and its first write died between the intent and the PutObject
    app.s3.meta.events.register("before-send.s3.PutObject", _killed)
    with pytest.raises(_Killed):
        execute_write(writer, request)
    app.s3.meta.events.unregister("before-send.s3.PutObject", _killed)
    # When the write is retried at once, it is refused as in progress
    with pytest.raises(IdempotencyInProgressError):
        execute_write(writer, request)
    # When it is retried after the bound (not after the hour-long idempotency window)
    time.sleep(1.6)
    receipt = execute_write(writer, request)
    # Then the retry wrote and committed the document
    assert receipt.index is IndexCommit.COMMITTED
    assert receipt.etag == app.s3_etag("changes/cli-died.json")
    dynamodb.delete_table(TableName=idempotency_table)


def test_same_idempotency_key_with_another_payload_is_refused(app: AppWorld) -> None:
    app.writer.write_document("changes/idem2.json", doc("v1"), idempotency_key="k-2")
    with pytest.raises(IdempotencyConflictError, match="another payload"):
        app.writer.write_document("changes/idem2.json", doc("v2"), idempotency_key="k-2")


def test_the_event_after_our_own_write_is_a_duplicate(app: AppWorld) -> None:
    receipt = app.writer.write_document("changes/own.json", doc("mine"))
    event = s3_notification(
        s3_record(
            "ObjectCreated:Put",
            app.bucket,
            "changes/own.json",
            etag=receipt.etag,
            size=receipt.size,
            sequencer="01",
        )
    )
    [change] = changes_from_message(event)
    result = S3EventSync(app.index, app.objects).apply(change, Operation.CREATED)
    assert result.outcome is SyncOutcome.DUPLICATE


def test_delete_through_tombstones_and_the_event_agrees(app: AppWorld) -> None:
    app.writer.write_document("changes/del.json", doc("v1"))
    receipt = app.writer.delete_document("changes/del.json")
    assert receipt.index is IndexCommit.COMMITTED
    assert app.s3_etag("changes/del.json") is None
    assert app.index.get_document(app.bucket, "changes/del.json") is None
    assert app.index.query(IndexQuery(customer="acme")).items == []


def test_concurrent_writers_on_one_key_converge_to_s3(app: AppWorld) -> None:
    # Given eight writers racing on one key
    key = "changes/contended.json"
    errors: list[BaseException] = []

    def write(number: int) -> None:
        try:
            app.writer.write_document(key, doc(f"writer {number}"))
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every write succeeded and the index holds S3's final object
    assert errors == []
    stored = app.index.get_document(app.bucket, key)
    assert stored is not None
    assert stored.etag == app.s3_etag(key)


# ---------------------------------------------------------------------- fallback reads


def test_a_hit_is_served_from_the_index(app: AppWorld) -> None:
    app.writer.write_document("changes/hit.json", doc("hit"))
    gets = Fail(500, "InternalError", times=0)
    app.s3.meta.events.register("before-send.s3.GetObject", gets)
    result = app.reader().get_document("changes/hit.json")
    assert result.source is ReadSource.INDEX
    assert gets.calls == 0


def test_a_miss_reads_s3_and_backfills(app: AppWorld) -> None:
    app.s3.put_object(Bucket=app.bucket, Key="changes/miss.json", Body=change_document("M"))
    result = app.reader().get_document("changes/miss.json")
    assert (result.source, result.miss_reason, result.backfilled) == (
        ReadSource.S3,
        MissReason.ABSENT,
        True,
    )
    assert app.reader().get_document("changes/miss.json").source is ReadSource.INDEX


def test_a_fresh_pending_write_is_read_from_s3_and_left_alone(app: AppWorld) -> None:
    app.writer.write_document("changes/p.json", doc("v1"))
    app.index.begin_pending(app.bucket, "changes/p.json", "put")
    result = app.reader().get_document("changes/p.json")
    assert (result.source, result.miss_reason, result.backfilled) == (
        ReadSource.S3,
        MissReason.PENDING,
        False,
    )
    state = app.index.get_state(app.bucket, "changes/p.json")
    assert state is not None
    assert state.is_pending


def test_an_expired_entry_is_read_from_s3_and_not_backfilled(app: AppWorld) -> None:
    old = (datetime.now(UTC) - timedelta(days=200)).isoformat()
    app.writer.write_document("changes/exp.json", doc("done", status="completed", modified_at=old))
    result = app.reader().get_document("changes/exp.json")
    assert (result.source, result.miss_reason, result.backfilled) == (
        ReadSource.S3,
        MissReason.EXPIRED,
        False,
    )


def test_a_key_absent_from_s3_is_not_found_and_its_stale_entry_repaired(app: AppWorld) -> None:
    # Given a document too large for the index (metadata only), then deleted from S3 by a
    # writer whose event has not arrived
    key = "changes/ghost.json"
    app.writer.write_document(key, doc("ghost", payload="x" * 450_000))
    app.s3.delete_object(Bucket=app.bucket, Key=key)
    # When it is read: the index cannot answer (body in S3), and S3 has nothing
    with pytest.raises(DocumentNotFoundError):
        app.reader().get_document(key)
    # Then the stale entry is repaired: gone from reads and queries
    state = app.index.get_state(app.bucket, key)
    assert state is not None
    assert state.is_tombstone
    assert app.index.query(IndexQuery(customer="acme")).items == []


def test_not_found_repairs_a_stale_pending_entry(app: AppWorld) -> None:
    key = "changes/ghost2.json"
    app.index.begin_pending(app.bucket, key, "put")  # died before the put
    later = datetime.now(UTC) + timedelta(minutes=10)
    with pytest.raises(DocumentNotFoundError):
        app.reader(clock=lambda: later).get_document(key)
    state = app.index.get_state(app.bucket, key)
    assert state is not None
    assert state.is_tombstone


def test_index_outage_opens_the_breaker_then_a_probe_closes_it(app: AppWorld) -> None:
    # Given a document, and a reader whose breaker opens after 3 failures for a 30 s cool-down
    app.writer.write_document("changes/out.json", doc("v1"))
    now = [1000.0]
    reader = app.reader(breaker_failure_threshold=3, monotonic=lambda: now[0])
    outage = Fail(500, "InternalServerError")
    app.dynamodb.meta.events.register("before-send.dynamodb.GetItem", outage)
    # (the outage answers as DynamoDB would: the index sees DynamoDB's error code)
    with pytest.raises(IndexUnavailableError) as caught:
        app.index.get_state(app.bucket, "changes/out.json")
    assert caught.value.code == "InternalServerError"
    # When the index fails: reads are still answered, from S3
    for _ in range(3):
        assert reader.get_document("changes/out.json").miss_reason is MissReason.INDEX_ERROR
    # Then the breaker is open and reads skip the index entirely
    assert reader.breaker_state is CircuitState.OPEN
    calls = outage.calls
    assert reader.get_document("changes/out.json").miss_reason is MissReason.BREAKER_OPEN
    assert outage.calls == calls
    # When the index recovers and the cool-down passes, one probe closes the breaker
    outage.remaining = 0
    now[0] += 31
    assert reader.get_document("changes/out.json").source is ReadSource.INDEX
    assert reader.breaker_state is CircuitState.CLOSED


def test_a_write_whose_own_event_lands_first_is_reported_committed(app: AppWorld) -> None:
    # Given the object's own S3 event applied between our PutObject and our commit
    key = "changes/own-first.json"
    sync = S3EventSync(app.index, S3ObjectStore(app.other_s3))
    applied: list[str] = []

    def own_event_lands(**_: Any) -> None:
        if applied:
            return
        head = app.other_s3.head_object(Bucket=app.bucket, Key=key)
        event = s3_notification(
            s3_record(
                "ObjectCreated:Put",
                app.bucket,
                key,
                etag=head["ETag"].strip('"'),
                size=head["ContentLength"],
                sequencer="01",
            )
        )
        [change] = changes_from_message(event)
        applied.append(sync.apply(change, Operation.CREATED).outcome.value)

    app.s3.meta.events.register("before-call.s3.HeadObject", own_event_lands)
    # When the write-through commits
    receipt = app.writer.write_document(key, doc("mine"))
    # Then the event had replaced the marker, yet the index holds exactly our object: committed
    assert applied == ["applied"]
    assert receipt.index is IndexCommit.COMMITTED
    stored = app.index.get_document(app.bucket, key)
    assert stored is not None
    assert stored.etag == receipt.etag
