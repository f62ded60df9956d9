"""Property: whatever the delivery order, duplicates and redeliveries, the index converges to S3.

Random histories of puts, overwrites and deletes on a few keys run against moto S3. Each event is
available from the moment of its operation; between operations a random selection of available
events is delivered (so handlers race the history, as in production), some more than once, and
the rest arrive shuffled at the end. Contents repeat, so an old event can find its ETag current
again: only the sequencer guard then stands between it and a resurrection.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachesync.sequencer import normalise_sequencer
from tests.integration.conftest import SyncWorld
from tests.support.s3_events import change_document, s3_notification, s3_record, sqs_event
from tests.support.scale import scaled

KEYS = 2
PROPERTY_SETTINGS = settings(
    max_examples=scaled(20, 500),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
operations = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=KEYS - 1),
        st.sampled_from(["put", "delete"]),
        st.integers(min_value=0, max_value=1),  # which of two contents a put writes
    ),
    min_size=1,
    max_size=12,
)
Operation = tuple[int, str, int]


@dataclass(frozen=True)
class Delivery:
    key: str
    removal: bool
    sequencer: str | None
    event: dict[str, object]


def run_history(
    world: SyncWorld,
    history: list[Operation],
    rng: random.Random,
    on_delivery: Callable[[Delivery], None],
    *,
    with_sequencers: bool,
) -> list[Delivery]:
    """Apply the history to S3, delivering available events in between; return all events."""
    prefix = f"prop/{uuid.uuid4().hex[:8]}"
    deliveries: list[Delivery] = []
    pending: list[Delivery] = []
    for number, (key_number, operation, content) in enumerate(history, start=1):
        key = f"{prefix}/changes/k{key_number}.json"
        sequencer = f"{number:018X}" if with_sequencers else None
        if operation == "put":
            body = change_document(
                f"K{key_number}", title=f"content {content}", modified_at="2026-11-01T00:00:00Z"
            )
            etag, size, _ = world.put(key, body)
            record = s3_record(
                "ObjectCreated:Put", world.bucket, key, etag=etag, size=size, sequencer=sequencer
            )
        else:
            world.s3.delete_object(Bucket=world.bucket, Key=key)
            record = s3_record("ObjectRemoved:Delete", world.bucket, key, sequencer=sequencer)
        made = Delivery(key, operation == "delete", sequencer, sqs_event(s3_notification(record)))
        deliveries.append(made)
        pending.append(made)
        rng.shuffle(pending)
        for _ in range(rng.randint(0, len(pending))):
            delivered = pending.pop()
            on_delivery(delivered)
            if rng.random() < 0.3:  # at-least-once: it may come again later
                pending.append(delivered)
    for delivered in shuffled_with_redeliveries(pending, rng):
        on_delivery(delivered)
    return deliveries


def deliver(world: SyncWorld, delivery: Delivery) -> None:
    invoke = world.invoke_removed if delivery.removal else world.invoke_created
    response = invoke(delivery.event)
    assert response["batchItemFailures"] == [], response


def shuffled_with_redeliveries(deliveries: list[Delivery], rng: random.Random) -> list[Delivery]:
    """Every event at least once, some twice or three times, in a random order."""
    again = [d for d in deliveries if rng.random() < 0.4]
    order = deliveries + again + [d for d in again if rng.random() < 0.3]
    rng.shuffle(order)
    return order


def assert_index_equals_s3(world: SyncWorld, keys: set[str]) -> None:
    for key in keys:
        listed = world.s3.list_objects_v2(Bucket=world.bucket, Prefix=key).get("Contents", [])
        in_s3 = [entry for entry in listed if entry["Key"] == key]
        indexed = world.store.get_document(world.bucket, key)
        if not in_s3:
            assert indexed is None, f"{key} deleted in S3 but indexed"
            continue
        assert indexed is not None, f"{key} in S3 but not indexed"
        assert indexed.etag == in_s3[0]["ETag"].strip('"')
        current = world.s3.get_object(Bucket=world.bucket, Key=key)["Body"].read()
        assert json.loads(indexed.body or "{}") == json.loads(current)


@PROPERTY_SETTINGS
@given(history=operations, seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_sequenced_events_converge_and_deleted_keys_stay_deleted(
    sync_world: SyncWorld, history: list[Operation], seed: int
) -> None:
    applied_deletes: dict[str, str] = {}

    def deliver_and_check(delivery: Delivery) -> None:
        deliver(sync_world, delivery)
        if delivery.removal and delivery.sequencer is not None:
            sequencer = normalise_sequencer(delivery.sequencer)
            assert sequencer is not None
            applied_deletes[delivery.key] = max(applied_deletes.get(delivery.key, ""), sequencer)
        # Then no key ever shows a state older than a delete already applied to it
        for key, deleted_at in applied_deletes.items():
            visible = sync_world.store.get_document(sync_world.bucket, key)
            assert visible is None or (visible.sequencer or "") > deleted_at, key

    # Given a history run against S3 whose events (with sequencers) are delivered as it runs,
    # shuffled and redelivered
    # When each is delivered
    deliveries = run_history(
        sync_world, history, random.Random(seed), deliver_and_check, with_sequencers=True
    )
    # And at the end the index equals S3
    assert_index_equals_s3(sync_world, {d.key for d in deliveries})


@PROPERTY_SETTINGS
@given(history=operations, seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_sequencer_less_events_converge(
    sync_world: SyncWorld, history: list[Operation], seed: int
) -> None:
    # Given a history whose events carry no sequencer (as moto and some S3 clones send them)
    # When they are delivered as it runs, shuffled, some more than once
    deliveries = run_history(
        sync_world,
        history,
        random.Random(seed),
        lambda delivery: deliver(sync_world, delivery),
        with_sequencers=False,
    )
    # Then the index equals S3
    assert_index_equals_s3(sync_world, {d.key for d in deliveries})
