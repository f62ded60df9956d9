"""The S3 event handlers against DynamoDB Local and moto server: one test per semantic rule.

Events are built from the samples in events/ with the ETag, size and key of real objects.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cachesync.changes import Operation, changes_from_message
from cachesync.exceptions import EventProcessingError
from cachesync.index_models import IndexQuery
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.s3_objects import S3ObjectStore
from cachesync.sync import S3EventSync, SyncOutcome
from tests.integration.conftest import SyncWorld
from tests.support.s3_events import (
    change_document,
    eventbridge_event,
    load_event,
    s3_notification,
    s3_record,
    sns_envelope,
    sqs_event,
)

PUT = "ObjectCreated:Put"
DELETE = "ObjectRemoved:Delete"


def put_event(world: SyncWorld, key: str, body: bytes, sequencer: str) -> dict[str, object]:
    etag, size, version = world.put(key, body)
    return s3_notification(
        s3_record(
            PUT, world.bucket, key, etag=etag, size=size, sequencer=sequencer, version_id=version
        )
    )


def failures(response: dict[str, object]) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]  # type: ignore[attr-defined]


def test_direct_s3_put_indexes_the_document(sync_world: SyncWorld) -> None:
    # Given an object and its direct S3 notification
    event = put_event(sync_world, "changes/CHG-1.json", change_document("CHG-1"), "0100")
    # When the created handler runs
    response = sync_world.invoke_created(event)
    # Then the document is indexed with the event's sequencer
    assert response["results"][0]["outcome"] == "applied"
    stored = sync_world.store.get_document(sync_world.bucket, "changes/CHG-1.json")
    assert stored is not None
    assert stored.doc_id == "CHG-1"
    assert stored.sequencer is not None
    assert stored.sequencer.startswith("0100")


def test_sqs_batch_fails_only_its_bad_records(sync_world: SyncWorld) -> None:
    # Given a batch: a good put, a body that is not JSON, an invalid document, another good put
    good1 = put_event(sync_world, "changes/a.json", change_document("A"), "01")
    bad_doc = put_event(
        sync_world, "changes/bad.json", b'{"object_type": "change", "status": "x"}', "01"
    )
    good2 = put_event(sync_world, "changes/b.json", change_document("B"), "01")
    event = sqs_event(good1, "not json", bad_doc, good2)
    ids = [r["messageId"] for r in event["Records"]]
    # When the created handler runs
    response = sync_world.invoke_created(event)
    # Then exactly the two bad records are reported, and the good ones are indexed
    assert sorted(failures(response)) == sorted([ids[1], ids[2]])
    assert sync_world.store.get_document(sync_world.bucket, "changes/a.json") is not None
    assert sync_world.store.get_document(sync_world.bucket, "changes/b.json") is not None
    assert sync_world.store.get_document(sync_world.bucket, "changes/bad.json") is None


def test_a_batch_where_every_record_fails_returns_the_failures(sync_world: SyncWorld) -> None:
    event = sqs_event("not json", {"hello": "world"})
    response = sync_world.invoke_created(event)
    assert sorted(failures(response)) == sorted(r["messageId"] for r in event["Records"])


def test_sns_in_sqs_and_eventbridge_shapes_are_applied(sync_world: SyncWorld) -> None:
    # Given one object announced through SNS-in-SQS and another through EventBridge
    via_sns = put_event(sync_world, "changes/sns.json", change_document("S"), "01")
    etag, size, _ = sync_world.put("changes/eb.json", change_document("E"))
    via_eventbridge = eventbridge_event(
        "Object Created", sync_world.bucket, "changes/eb.json", etag=etag, size=size, sequencer="02"
    )
    # When the handler receives them
    response = sync_world.invoke_created(sqs_event(sns_envelope(via_sns)))
    sync_world.invoke_created(via_eventbridge)
    # Then both are indexed
    assert failures(response) == []
    assert sync_world.store.get_document(sync_world.bucket, "changes/sns.json") is not None
    assert sync_world.store.get_document(sync_world.bucket, "changes/eb.json") is not None


@pytest.mark.parametrize(
    "key",
    [
        "customers/acme/changes/CHG 2001 (draft).json",
        "changes/a+b=c.json",
        "changes/100% done.json",
        "changes/café/résumé ünïcode.json",
        "customers/globex/changes/2026/11/22/deep/er/CHG-3001.json",
    ],
)
def test_awkward_keys_round_trip(sync_world: SyncWorld, key: str) -> None:
    # Given an object under an awkward key, announced with the key form-encoded as S3 does
    event = put_event(sync_world, key, change_document("K"), "01")
    # When the created handler runs
    sync_world.invoke_created(sqs_event(event))
    # Then the document is indexed under exactly that key
    stored = sync_world.store.get_document(sync_world.bucket, key)
    assert stored is not None
    assert stored.key == key


def test_s3_test_event_is_acknowledged(sync_world: SyncWorld) -> None:
    response = sync_world.invoke_created(sqs_event(load_event("s3_test_event.json")))
    assert failures(response) == []


@pytest.mark.parametrize(
    "event_name",
    [
        "ObjectRemoved:Delete",
        "ObjectRemoved:DeleteMarkerCreated",
        "LifecycleExpiration:Delete",
        "LifecycleExpiration:DeleteMarkerCreated",
    ],
)
def test_every_removal_kind_tombstones_the_key(sync_world: SyncWorld, event_name: str) -> None:
    # Given an indexed document whose object is then removed
    key = "changes/gone.json"
    sync_world.invoke_created(put_event(sync_world, key, change_document("G"), "0100"))
    sync_world.s3.delete_object(Bucket=sync_world.bucket, Key=key)
    # When the removal arrives (without size or eTag, as S3 sends deletions)
    removal = s3_record(event_name, sync_world.bucket, key, sequencer="0200")
    response = sync_world.invoke_removed(sqs_event(s3_notification(removal)))
    # Then the key is gone from reads and queries, and a tombstone remains
    assert failures(response) == []
    assert sync_world.store.get_document(sync_world.bucket, key) is None
    assert sync_world.store.query(IndexQuery(customer="acme")).items == []
    state = sync_world.store.get_state(sync_world.bucket, key)
    assert state is not None
    assert state.is_tombstone


def test_a_late_create_never_resurrects_a_deleted_key(sync_world: SyncWorld) -> None:
    # Given a key created (seq 0100), then deleted (seq 0200), both applied
    key = "changes/late.json"
    create = put_event(sync_world, key, change_document("L"), "0100")
    sync_world.invoke_created(create)
    sync_world.s3.delete_object(Bucket=sync_world.bucket, Key=key)
    sync_world.invoke_removed(
        s3_notification(s3_record(DELETE, sync_world.bucket, key, sequencer="0200"))
    )
    # When the create event is delivered again, late
    response = sync_world.invoke_created(create)
    # Then it is stale (the object is gone) and the key stays deleted
    assert response["results"][0]["outcome"] == "stale"
    assert sync_world.store.get_document(sync_world.bucket, key) is None


def test_a_late_create_is_refused_by_the_tombstone_even_if_s3_has_the_bytes(
    sync_world: SyncWorld,
) -> None:
    # Given an object created (seq 0100) and deleted (seq 0200), the delete applied
    key = "changes/same.json"
    body = change_document("S")
    create = put_event(sync_world, key, body, "0100")
    sync_world.s3.delete_object(Bucket=sync_world.bucket, Key=key)
    sync_world.invoke_removed(
        s3_notification(s3_record(DELETE, sync_world.bucket, key, sequencer="0200"))
    )
    # And the same bytes uploaded again (same ETag), their own event (0300) still in flight
    sync_world.put(key, body)
    # When the old create (0100) arrives late: S3 still answers its ETag
    response = sync_world.invoke_created(create)
    # Then the sequencer guard refuses it against the tombstone
    assert response["results"][0]["outcome"] == "stale"
    assert sync_world.store.get_document(sync_world.bucket, key) is None


def test_a_late_delete_never_removes_a_newer_object(sync_world: SyncWorld) -> None:
    # Given v1 (0100), a delete (0200) and a re-create v2 (0300); v2's event applied first
    key = "changes/back.json"
    sync_world.put(key, change_document("V1"))
    v2 = put_event(sync_world, key, change_document("V2", title="v2"), "0300")
    sync_world.invoke_created(v2)
    # When the delete (0200) arrives late
    response = sync_world.invoke_removed(
        s3_notification(s3_record(DELETE, sync_world.bucket, key, sequencer="0200"))
    )
    # Then it is stale and v2 stays
    assert response["results"][0]["outcome"] == "stale"
    stored = sync_world.store.get_document(sync_world.bucket, key)
    assert stored is not None
    assert stored.title == "v2"


def test_an_event_whose_object_changed_is_stale_not_failed(sync_world: SyncWorld) -> None:
    # Given an event for v1, but S3 now holds v2
    key = "changes/moved.json"
    old = put_event(sync_world, key, change_document("M", title="v1"), "0100")
    sync_world.put(key, change_document("M", title="v2"))
    # When the v1 event arrives
    response = sync_world.invoke_created(sqs_event(old))
    # Then it succeeds as stale (v2's own event will index v2) and nothing was indexed
    assert failures(response) == []
    assert sync_world.store.get_state(sync_world.bucket, key) is None


def test_a_record_of_the_other_kind_fails_alone(sync_world: SyncWorld) -> None:
    # Given a batch to the created handler with a delete record and a good put
    good = put_event(sync_world, "changes/ok.json", change_document("OK"), "01")
    wrong = s3_notification(s3_record(DELETE, sync_world.bucket, "changes/x.json", sequencer="02"))
    event = sqs_event(wrong, good)
    # When it runs
    response = sync_world.invoke_created(event)
    # Then only the misrouted record fails (it will reach the DLQ), the put is applied
    assert failures(response) == [event["Records"][0]["messageId"]]
    assert sync_world.store.get_document(sync_world.bucket, "changes/ok.json") is not None
    # And a put given to the removed handler fails too
    back = sync_world.invoke_removed(sqs_event(good))
    assert len(failures(back)) == 1


def test_an_invalid_new_version_evicts_the_old_one_and_fails(sync_world: SyncWorld) -> None:
    # Given a valid v1 indexed, then an invalid v2 uploaded
    key = "changes/poison.json"
    sync_world.invoke_created(put_event(sync_world, key, change_document("P"), "0100"))
    bad = put_event(sync_world, key, b"{not json", "0200")
    # When v2's event arrives
    response = sync_world.invoke_created(sqs_event(bad))
    # Then the record fails (DLQ, with its reason) and the index no longer serves v1
    assert len(failures(response)) == 1
    assert sync_world.store.get_document(sync_world.bucket, key) is None


def test_a_direct_event_with_a_failing_record_applies_the_others_then_raises(
    sync_world: SyncWorld,
) -> None:
    good = put_event(sync_world, "changes/d1.json", change_document("D1"), "01")["Records"][0]  # type: ignore[index]
    bad = s3_record(
        PUT, "someone-elses-bucket", "changes/d2.json", etag="e", size=1, sequencer="01"
    )
    with pytest.raises(EventProcessingError, match="someone-elses-bucket"):
        sync_world.invoke_created(s3_notification(good, bad))
    assert sync_world.store.get_document(sync_world.bucket, "changes/d1.json") is not None


def test_a_document_over_the_item_limit_is_indexed_as_metadata(sync_world: SyncWorld) -> None:
    key = "changes/huge.json"
    body = change_document("H", payload="x" * 450_000)
    sync_world.invoke_created(put_event(sync_world, key, body, "01"))
    stored = sync_world.store.get_document(sync_world.bucket, key)
    assert stored is not None
    assert stored.body_in_s3
    assert stored.body is None


def test_versioned_events_index_the_version_they_name(
    sync_world: SyncWorld,
) -> None:
    # Given a versioned bucket with v1 then v2 of one key
    sync_world.s3.put_bucket_versioning(
        Bucket=sync_world.bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    key = "changes/ver.json"
    v1 = put_event(sync_world, key, change_document("V", title="v1"), "0100")
    v2 = put_event(sync_world, key, change_document("V", title="v2"), "0200")
    # When v2's event is applied, then v1's arrives late
    sync_world.invoke_created(v2)
    late = sync_world.invoke_created(v1)
    # Then v2 stays (v1's version still exists in S3, so only the sequencer refuses it)
    assert late["results"][0]["outcome"] == "stale"
    stored = sync_world.store.get_document(sync_world.bucket, key)
    assert stored is not None
    assert stored.title == "v2"
    assert stored.version_id == v2["Records"][0]["s3"]["object"]["versionId"]  # type: ignore[index]


def test_redelivery_is_a_duplicate_costing_one_conditional_write(
    sync_world: SyncWorld, dynamodb_client: object, s3_client: object
) -> None:
    # Given a use case whose DynamoDB client counts write calls
    writes: list[str] = []
    dynamodb_client.meta.events.register(  # type: ignore[attr-defined]
        "before-call.dynamodb.*", lambda model, **_: writes.append(model.name)
    )
    sync = S3EventSync(
        DynamoDBIndexStore(dynamodb_client, sync_world.store.table_name),  # type: ignore[arg-type]
        S3ObjectStore(s3_client),  # type: ignore[arg-type]
    )
    event = put_event(
        sync_world, "changes/dup.json", change_document("D", customers=["a", "b"]), "01"
    )
    [change] = changes_from_message(event)
    sync.apply(change, Operation.CREATED)
    writes.clear()
    # When the same event is applied again
    result = sync.apply(change, Operation.CREATED)
    # Then it is a duplicate that cost one (refused) conditional write and nothing else
    assert result.outcome is SyncOutcome.DUPLICATE
    assert writes == ["TransactWriteItems"]


def test_sequencer_less_events_converge_to_s3(sync_world: SyncWorld) -> None:
    # Given events without sequencers (as moto sends them), delivered out of order
    key = "changes/noseq.json"
    e1 = put_event(sync_world, key, change_document("N", title="v1"), "unused")
    e2 = put_event(sync_world, key, change_document("N", title="v2"), "unused")
    for event in (e1, e2):
        del event["Records"][0]["s3"]["object"]["sequencer"]  # type: ignore[index]
    # When v2's event is applied, then v1's (late)
    sync_world.invoke_created(e2)
    sync_world.invoke_created(e1)
    # Then the index holds S3's current state, v2
    stored = sync_world.store.get_document(sync_world.bucket, key)
    assert stored is not None
    assert stored.title == "v2"
    # And after a delete without sequencer, a late create does not bring it back
    sync_world.s3.delete_object(Bucket=sync_world.bucket, Key=key)
    sync_world.invoke_removed(s3_notification(s3_record(DELETE, sync_world.bucket, key)))
    sync_world.invoke_created(e2)
    assert sync_world.store.get_document(sync_world.bucket, key) is None


def test_an_event_for_another_bucket_fails(sync_world: SyncWorld) -> None:
    record = s3_record(PUT, "not-our-bucket", "changes/x.json", etag="e", size=1, sequencer="01")
    response = sync_world.invoke_created(sqs_event(s3_notification(record)))
    assert len(failures(response)) == 1


def test_lag_is_measured_from_the_event_time(sync_world: SyncWorld) -> None:
    key = "changes/lag.json"
    etag, size, _ = sync_world.put(key, change_document("LAG"))
    record = s3_record(
        PUT,
        sync_world.bucket,
        key,
        etag=etag,
        size=size,
        sequencer="01",
        event_time=datetime.now(UTC) - timedelta(seconds=30),
    )
    response = sync_world.invoke_created(s3_notification(record))
    assert 30 <= response["results"][0]["lag_seconds"] < 60
    assert json.dumps(response)


def test_permanently_deleting_a_version_touches_the_index_only_if_it_serves_it(
    sync_world: SyncWorld,
) -> None:
    # Given a versioned bucket with v1 then v2 of one key, v2 indexed
    sync_world.s3.put_bucket_versioning(
        Bucket=sync_world.bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    key = "changes/versions.json"
    v1 = put_event(sync_world, key, change_document("V", title="v1"), "0100")
    v2 = put_event(sync_world, key, change_document("V", title="v2"), "0200")
    sync_world.invoke_created(v2)
    v1_id = v1["Records"][0]["s3"]["object"]["versionId"]  # type: ignore[index]
    v2_id = v2["Records"][0]["s3"]["object"]["versionId"]  # type: ignore[index]

    def removal(version_id: str, sequencer: str) -> dict[str, object]:
        record = s3_record(
            DELETE, sync_world.bucket, key, sequencer=sequencer, version_id=version_id
        )
        return s3_notification(record)

    # When the non-current v1 is deleted permanently
    sync_world.s3.delete_object(Bucket=sync_world.bucket, Key=key, VersionId=v1_id)
    kept = sync_world.invoke_removed(removal(v1_id, "0300"))
    # Then the index still serves v2
    assert kept["results"][0]["outcome"] == "stale"
    assert sync_world.store.get_document(sync_world.bucket, key) is not None
    # When v3 is indexed and then deleted permanently, making v2 current again
    v3 = put_event(sync_world, key, change_document("V", title="v3"), "0400")
    v3_id = v3["Records"][0]["s3"]["object"]["versionId"]  # type: ignore[index]
    sync_world.invoke_created(v3)
    sync_world.s3.delete_object(Bucket=sync_world.bucket, Key=key, VersionId=v3_id)
    evicted = sync_world.invoke_removed(removal(v3_id, "0500"))
    # Then the entry serving v3 is evicted: a miss, never a document S3 no longer holds
    assert evicted["results"][0]["outcome"] == "applied"
    assert sync_world.store.get_document(sync_world.bucket, key) is None
    current = sync_world.s3.head_object(Bucket=sync_world.bucket, Key=key)
    assert current["VersionId"] == v2_id
