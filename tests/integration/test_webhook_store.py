"""The webhook store against DynamoDB Local: PATCH, listing by owner, the failure count's
conditional updates, and attempts past their TTL left out."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from cachesync.change_events import EventType
from cachesync.exceptions import SubscriptionChangedError, SubscriptionNotFoundError
from cachesync.stores.dynamodb_webhooks import DynamoDBWebhookStore, SubscriptionChanges
from cachesync.webhooks.models import (
    DeliveryAttempt,
    SigningSecrets,
    Subscription,
    SubscriptionFilters,
    SubscriptionStatus,
    new_signing_secret,
    new_subscription_id,
)
from cachesync.webhooks_schema import (
    create_deliveries_table_request,
    create_webhooks_table_request,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@pytest.fixture
def store(dynamodb_client: DynamoDBClient) -> Iterator[DynamoDBWebhookStore]:
    suffix = uuid.uuid4().hex[:8]
    table, deliveries = f"webhooks-{suffix}", f"webhook-deliveries-{suffix}"
    dynamodb_client.create_table(**create_webhooks_table_request(table))
    dynamodb_client.create_table(**create_deliveries_table_request(deliveries))
    yield DynamoDBWebhookStore(
        dynamodb_client, table, deliveries, attempt_retention=timedelta(days=7)
    )
    dynamodb_client.delete_table(TableName=table)
    dynamodb_client.delete_table(TableName=deliveries)


def subscription(owner: str = "cli", customers: tuple[str, ...] | None = None) -> Subscription:
    return Subscription(
        id=new_subscription_id(),
        url="https://hooks.example.com/in",
        event_types=(EventType.CREATED,),
        owner_key_id=owner,
        owner_customers=customers,
        created_at=datetime.now(UTC),
        secrets=SigningSecrets(current=new_signing_secret()),
    )


def test_a_subscription_round_trips_and_lists_by_owner(store: DynamoDBWebhookStore) -> None:
    # Given subscriptions of two owners, one restricted to acme
    mine = subscription("key-a", ("acme",))
    theirs = subscription("key-b")
    store.create(mine)
    store.create(theirs)
    # When read back and listed
    # Then each is as stored, and the owner filter keeps only the owner's
    assert store.get(mine.id) == mine
    assert store.get(theirs.id) == theirs
    assert [s.id for s in store.list_subscriptions("key-a")] == [mine.id]
    assert {s.id for s in store.list_subscriptions()} == {mine.id, theirs.id}
    # And an id is never reused over an existing subscription
    with pytest.raises(SubscriptionChangedError):
        store.create(mine)


def test_patch_replaces_only_the_fields_given(store: DynamoDBWebhookStore) -> None:
    # Given a subscription
    original = subscription()
    store.create(original)
    # When its URL and filters are patched
    patched = store.update(
        original.id,
        SubscriptionChanges(
            url="https://other.example.com/in",
            filters=SubscriptionFilters(statuses=("approved",)),
        ),
    )
    # Then those changed, the rest (event types, secret) did not
    assert patched.url == "https://other.example.com/in"
    assert patched.filters.statuses == ("approved",)
    assert patched.event_types == original.event_types
    assert patched.secrets == original.secrets
    # And patching or deleting an unknown id says so
    with pytest.raises(SubscriptionNotFoundError):
        store.update(new_subscription_id(), SubscriptionChanges(url="https://x.example.com/"))
    with pytest.raises(SubscriptionNotFoundError):
        store.delete(new_subscription_id())


def test_failures_mark_failing_at_the_threshold_and_a_success_resets(
    store: DynamoDBWebhookStore,
) -> None:
    # Given a subscription
    watched = subscription()
    store.create(watched)
    # When it fails three times with a threshold of 3
    statuses = [store.record_failure(watched.id, threshold=3) for _ in range(3)]
    # Then the third failure marks it failing
    assert statuses == [SubscriptionStatus.ACTIVE, SubscriptionStatus.ACTIVE, "failing"]
    # And one success makes it active with no failures counted
    store.record_success(watched.id)
    after = store.get(watched.id)
    assert after is not None
    assert (after.status, after.consecutive_failures) == (SubscriptionStatus.ACTIVE, 0)


def test_a_disabled_subscription_stays_disabled(store: DynamoDBWebhookStore) -> None:
    # Given a disabled subscription
    stopped = subscription()
    store.create(stopped)
    store.update(stopped.id, SubscriptionChanges(status=SubscriptionStatus.DISABLED))
    # When late deliveries fail past the threshold, then one succeeds
    store.record_failure(stopped.id, threshold=1)
    store.record_failure(stopped.id, threshold=1)
    store.record_success(stopped.id)
    # Then it is still disabled (only an operator re-enables it)
    after = store.get(stopped.id)
    assert after is not None
    assert after.status is SubscriptionStatus.DISABLED
    # And re-enabling resets the count
    enabled = store.update(stopped.id, SubscriptionChanges(status=SubscriptionStatus.ACTIVE))
    assert (enabled.status, enabled.consecutive_failures) == (SubscriptionStatus.ACTIVE, 0)


def test_outcomes_for_a_deleted_subscription_create_nothing(store: DynamoDBWebhookStore) -> None:
    # Given a deleted subscription
    gone = subscription()
    store.create(gone)
    store.delete(gone.id)
    # When a late failure and success are recorded
    # Then nothing reappears
    assert store.record_failure(gone.id, threshold=1) is None
    store.record_success(gone.id)
    assert store.get(gone.id) is None


def test_recent_attempts_are_newest_first_and_leave_out_expired_ones(
    store: DynamoDBWebhookStore,
) -> None:
    # Given attempts 10 days ago (past the 7-day TTL, not yet removed) and now
    sub_id = new_subscription_id()
    now = datetime.now(UTC)
    for at, code in (
        (now - timedelta(days=10), 500),
        (now - timedelta(minutes=1), 500),
        (now, 200),
    ):
        store.record_attempt(
            DeliveryAttempt(
                subscription_id=sub_id,
                webhook_id="msg_" + "a" * 32,
                attempt=1,
                status_code=code,
                latency_ms=12,
                at=at,
            )
        )
    # When the recent attempts are read
    recent = store.recent_attempts(sub_id, now)
    # Then the expired one is left out, the others come newest first
    assert [(a.status_code, a.at) for a in recent] == [
        (200, now),
        (500, now - timedelta(minutes=1)),
    ]
