"""Model-based convergence, bounded: seeded histories against the real local servers.

The same histories, executor and checker as ``make soak`` (``tests/convergence``; properties in
``tests/convergence/checker.py``), run in this process on the session's local stack: a fixed
range of seeds here, 10,000 in the soak. Two more tests show that the checker can fail: on a
model alone, and on a world whose removed handler drops deletions while reporting success.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from cachesync.current_state import index_entry
from cachesync.documents import DEFAULT_RETENTION
from cachesync.index_models import Tombstone, WriteOutcome, WriteSource
from cachesync.local import LocalStack
from cachesync.local.lambda_functions import LambdaHandler
from cachesync.stores.s3_objects import StoredObject
from tests.convergence.checker import Checker
from tests.convergence.executor import run_history
from tests.convergence.history import Body, History, Op, generate
from tests.convergence.model import S3Model
from tests.convergence.runner import replay_command
from tests.convergence.world import World
from tests.integration.conftest import SyncWorld
from tests.support.s3_events import (
    change_document,
    eventbridge_event,
    s3_notification,
    s3_record,
    sqs_event,
)

HISTORIES = 20  # 20-30 s on a busy make-test worker; the soak runs 10,000
FIRST_SEED = 1


@pytest.fixture
def world(local_stack: LocalStack) -> Iterator[World]:
    """Its hooks and environment last as long as the one test that uses it."""
    with World(stack=local_stack) as opened:
        yield opened


def test_seeded_histories_never_diverge(world: World) -> None:
    # Given a fixed range of seeded histories (S3 writes, write-throughs and API writes with
    # injected faults and crashes, reads, queries, backfills, and their events delivered
    # duplicated, reordered, delayed, lost and redriven, through every event shape)
    divergences = []
    checks = 0
    # When each runs against the local servers and is checked as it runs and at quiescence
    for seed in range(FIRST_SEED, FIRST_SEED + HISTORIES):
        outcome = run_history(world, generate(seed))
        divergences += outcome.divergences
        checks += outcome.stats["checks"]
    # Then no property was broken (each failing seed names its replay command)
    report = [f"{d.property} (seed {d.seed}, step {d.step}): {d.detail}" for d in divergences]
    report += sorted({replay_command(d.seed) for d in divergences})
    assert not divergences, "\n".join(report)
    assert checks >= HISTORIES  # the checker looked at something in every history


def test_a_seed_always_generates_the_same_history() -> None:
    # Given two seeds
    # When each generates its history twice
    first, again, other = generate(12345), generate(12345), generate(12346)
    # Then a seed is a history (replays are exact), and another seed another history
    assert first == again
    assert first.describe() == again.describe()
    assert other != first


def test_the_checker_reports_a_read_of_a_version_deleted_before(tmp_path: Any) -> None:
    # Given a model where S3 stored v1 at a key, then deleted it, and the index took the
    # deletion in
    model = S3Model("bucket", "p/", versioned=False)
    now = datetime.now(UTC)
    body = json.dumps({"object_type": "change", "customers": ["acme"]}).encode()
    model.record_put("p/k", '"e1"', None, body, now)
    deletion = model.record_delete(
        "p/k", requested_version=None, version_id=None, delete_marker=False, at=now
    )
    checker = Checker(seed=77, model=model)
    checker.deletion_taken_in("p/k", deletion.number)
    # When a read returns v1, and another a version S3 never stored
    checker.check_read("read", "p/k", "e1", None, json.loads(body))
    checker.check_read("read", "p/k", "e9", None, {})
    # Then both are divergences of seed 77, each naming its property
    assert [(d.seed, d.property) for d in checker.divergences] == [
        (77, "no_resurrection"),
        (77, "stored"),
    ]


def _drops_deletions(handler: LambdaHandler) -> LambdaHandler:
    """A broken removed handler: reports every SQS record applied, applies none of them."""

    def broken(event: dict[str, Any], context: Any) -> Any:
        records = event.get("Records", [])
        is_sqs = bool(records) and records[0].get("eventSource") == "aws:sqs"
        text = json.dumps(event)
        if "ObjectRemoved" in text or "Object Deleted" in text:
            return {"batchItemFailures": []} if is_sqs else None
        return handler(event, context)

    return broken


def test_the_checker_catches_a_handler_that_drops_deletions(local_stack: LocalStack) -> None:
    # Given a world whose removed handler acknowledges deletions without applying them
    valid = Body(title="v1", customers=("a",))
    history = History(
        seed=4242,
        versioned=False,
        sequencers=True,
        keys=1,
        ops=(
            Op("s3_put", body=valid),
            Op("deliver", count=10),
            Op("read"),
            Op("s3_delete"),
            Op("deliver", count=10),
            Op("redrive"),
            Op("deliver", count=10),
            Op("read"),
        ),
    )
    with World(stack=local_stack, handler_wrapper=_drops_deletions) as broken_world:
        # When the history runs
        outcome = run_history(broken_world, history)
    # Then the read after the deletion is reported as a resurrection (during the run: the
    # final verify repairs the index, so only a history property can see it), with the seed
    properties = {d.property for d in outcome.divergences}
    assert "no_resurrection" in properties, outcome.divergences
    assert all(d.seed == 4242 for d in outcome.divergences)


def test_a_late_event_for_a_noncurrent_version_does_not_undo_a_delete_in_the_same_second(
    sync_world: SyncWorld,
) -> None:
    """Found by the soak (seed 28 of the bounded run): a late event for an old version on a
    versioned bucket resurrected a key deleted through the write-through within the same second
    (a sequencer against a sequencer-less tombstone: the clock tied, and the event won)."""
    # Given a versioned bucket where v1 was put, then deleted through the write-through: S3
    # holds a delete marker, the index a tombstone without sequencer, at v1's LastModified
    sync_world.s3.put_bucket_versioning(
        Bucket=sync_world.bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    key = "changes/late.json"
    etag, size, version_id = sync_world.put(key, change_document("LATE", title="v1"))
    last_modified = sync_world.s3.head_object(Bucket=sync_world.bucket, Key=key)["LastModified"]
    sync_world.s3.delete_object(Bucket=sync_world.bucket, Key=key)
    tombstone = Tombstone(
        bucket=sync_world.bucket,
        key=key,
        deleted_at=last_modified,
        source=WriteSource.WRITE_THROUGH,
    )
    assert sync_world.store.put_tombstone(tombstone).outcome is WriteOutcome.APPLIED
    # When v1's created event (with its sequencer and version id) arrives late
    record = s3_record(
        "ObjectCreated:Put",
        sync_world.bucket,
        key,
        etag=etag,
        size=size,
        sequencer="0055AED6DCD90281E5",
        version_id=version_id,
    )
    reply = sync_world.invoke_created(sqs_event(s3_notification(record)))
    # Then it is stale: the key stays deleted in the index, as in S3
    assert reply["batchItemFailures"] == []
    assert sync_world.store.get_document(sync_world.bucket, key) is None


@pytest.mark.parametrize(
    "sequencer", ["0055AED6DCD90281E5", None], ids=["sequenced", "unsequenced"]
)
def test_the_same_content_written_twice_is_indexed_at_s3s_current_version(
    sync_world: SyncWorld, sequencer: str | None
) -> None:
    """Found by the soak (seed 149 of the 10,000): on a versioned bucket the same content was
    written twice within a second; the index kept the first version's id although S3's current
    object is the second (same ETag, same second: the event was taken for a duplicate)."""
    # Given a versioned bucket holding one content twice (versions A then B, same ETag), and
    # an index entry for A written without sequencer (a write-through) in B's second
    sync_world.s3.put_bucket_versioning(
        Bucket=sync_world.bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    key = "changes/twice.json"
    body = change_document("TWICE", title="same")
    etag, size, version_a = sync_world.put(key, body)
    _, _, version_b = sync_world.put(key, body)
    head = sync_world.s3.head_object(Bucket=sync_world.bucket, Key=key)
    assert head["VersionId"] == version_b
    first = StoredObject(
        bucket=sync_world.bucket,
        key=key,
        body=body,
        etag=etag,
        version_id=version_a,
        size=size,
        last_modified=head["LastModified"],
    )
    written = index_entry(first, source=WriteSource.WRITE_THROUGH, retention=DEFAULT_RETENTION)
    sync_world.store.put_document(written)
    # When B's created event arrives
    record = s3_record(
        "ObjectCreated:Put",
        sync_world.bucket,
        key,
        etag=etag,
        size=size,
        sequencer=sequencer,
        version_id=version_b,
    )
    reply = sync_world.invoke_created(sqs_event(s3_notification(record)))
    # Then the index serves S3's current version, B
    assert reply["batchItemFailures"] == []
    indexed = sync_world.store.get_document(sync_world.bucket, key)
    assert indexed is not None
    assert indexed.version_id == version_b


def test_an_eventbridge_delete_marker_deletes_the_key_though_it_was_recreated_since(
    sync_world: SyncWorld,
) -> None:
    """Found by the soak (seed 1592 of the 10,000): an EventBridge "Object Deleted" event with
    deletion-type "Delete Marker Created" was taken for the permanent deletion of one version
    (its name lacked the deletion type); the key existing again by then, the deletion was judged
    stale and the index kept serving the version deleted before."""
    # Given a versioned bucket where v1 was put (and indexed without sequencer, by a
    # write-through), then deleted (a delete marker), then put again (v2)
    sync_world.s3.put_bucket_versioning(
        Bucket=sync_world.bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    key = "changes/marker.json"
    body = change_document("MARKER", title="v1")
    etag, size, version_1 = sync_world.put(key, body)
    head = sync_world.s3.head_object(Bucket=sync_world.bucket, Key=key)
    first = StoredObject(
        bucket=sync_world.bucket,
        key=key,
        body=body,
        etag=etag,
        version_id=version_1,
        size=size,
        last_modified=head["LastModified"],
    )
    written = index_entry(first, source=WriteSource.WRITE_THROUGH, retention=DEFAULT_RETENTION)
    sync_world.store.put_document(written)
    marker = sync_world.s3.delete_object(Bucket=sync_world.bucket, Key=key)["VersionId"]
    sync_world.put(key, change_document("MARKER", title="v2"))
    # When the delete marker's EventBridge event arrives (through SQS)
    event = eventbridge_event(
        "Object Deleted",
        sync_world.bucket,
        key,
        sequencer="0055AED6DCD90281E5",
        version_id=marker,
    )
    event["detail"]["reason"] = "DeleteObject"
    event["detail"]["deletion-type"] = "Delete Marker Created"
    reply = sync_world.invoke_removed(sqs_event(event, queue="cachesync-object-removed"))
    # Then v1, deleted before, is no longer served (v2's own event will index v2)
    assert reply["batchItemFailures"] == []
    indexed = sync_world.store.get_document(sync_world.bucket, key)
    assert indexed is None or indexed.version_id != version_1
