"""Webhook subscriptions: which events they match, and the messages delivered to them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cachesync.change_events import DocumentSnapshot, DomainEvent, EventType
from cachesync.documents import DocumentKind
from cachesync.index_models import WriteSource
from cachesync.webhooks.delivery import messages_for
from cachesync.webhooks.models import (
    DeliveryMessage,
    SigningSecrets,
    Subscription,
    SubscriptionFilters,
    SubscriptionStatus,
    new_signing_secret,
    new_subscription_id,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def snapshot(
    *,
    customers: tuple[str, ...] = ("acme",),
    status: str = "approved",
    kind: DocumentKind = DocumentKind.CHANGE,
) -> DocumentSnapshot:
    return DocumentSnapshot(
        bucket="docs",
        key="changes/a.json",
        kind=kind,
        doc_id="CHG-1",
        title="Upgrade",
        status=status,
        customers=customers,
        index_time=NOW,
        etag="e1",
        version_id=None,
        size=10,
        s3_last_modified=NOW,
        source=WriteSource.EVENT,
    )


def event(
    event_type: EventType = EventType.CREATED,
    *,
    document: DocumentSnapshot | None = None,
    previous: DocumentSnapshot | None = None,
) -> DomainEvent:
    if event_type is EventType.CREATED and document is None:
        document = snapshot()
    return DomainEvent(
        id="evt_" + "0" * 32,
        type=event_type,
        occurred_at=NOW,
        bucket="docs",
        key="changes/a.json",
        document=document,
        previous=previous,
    )


def subscription(
    *,
    event_types: tuple[EventType, ...] = tuple(EventType),
    filters: SubscriptionFilters | None = None,
    owner_customers: tuple[str, ...] | None = None,
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE,
) -> Subscription:
    return Subscription(
        id=new_subscription_id(),
        url="https://hooks.example.com/in",
        event_types=event_types,
        filters=filters or SubscriptionFilters(),
        owner_key_id="cli",
        owner_customers=owner_customers,
        status=status,
        created_at=NOW,
        secrets=SigningSecrets(current=new_signing_secret()),
    )


def test_a_subscription_without_filters_matches_every_event_type_it_names() -> None:
    # Given a subscription to creations only
    only_created = subscription(event_types=(EventType.CREATED,))
    # When a creation and an update come
    # Then only the creation matches
    assert only_created.matches(event(EventType.CREATED))
    assert not only_created.matches(
        event(EventType.UPDATED, document=snapshot(), previous=snapshot(status="draft"))
    )


@pytest.mark.parametrize(
    ("filters", "document", "expected"),
    [
        (SubscriptionFilters(customers=("acme",)), snapshot(customers=("acme", "zeta")), True),
        (SubscriptionFilters(customers=("globex",)), snapshot(customers=("acme",)), False),
        (SubscriptionFilters(kinds=("announcement",)), snapshot(), False),
        (
            SubscriptionFilters(kinds=("announcement",)),
            snapshot(kind=DocumentKind.ANNOUNCEMENT),
            True,
        ),
        (SubscriptionFilters(statuses=("approved", "completed")), snapshot(), True),
        (SubscriptionFilters(statuses=("draft",)), snapshot(), False),
        (
            SubscriptionFilters(customers=("acme",), statuses=("draft",)),
            snapshot(),
            False,
        ),
    ],
)
def test_filters_match_customers_kinds_and_statuses(
    filters: SubscriptionFilters, document: DocumentSnapshot, expected: bool
) -> None:
    # Given a subscription with filters
    filtered = subscription(filters=filters)
    # When a document is created
    # Then it matches exactly when every non-empty filter does
    assert filtered.matches(event(document=document)) is expected


def test_a_restricted_owner_only_ever_matches_its_customers_documents() -> None:
    # Given a subscription of a key restricted to acme, with no customer filter
    restricted = subscription(owner_customers=("acme",))
    # When documents of acme and of globex are created
    # Then only acme's matches
    assert restricted.matches(event(document=snapshot(customers=("acme",))))
    assert not restricted.matches(event(document=snapshot(customers=("globex",))))
    # And a filter naming another customer cannot widen what the owner sees
    widened = subscription(
        owner_customers=("acme",), filters=SubscriptionFilters(customers=("globex",))
    )
    assert not widened.matches(event(document=snapshot(customers=("globex",))))


def test_a_deletion_matches_on_the_previous_document() -> None:
    # Given a subscription to acme's approved changes
    approved = subscription(
        filters=SubscriptionFilters(customers=("acme",), statuses=("approved",))
    )
    # When an approved acme document is deleted (no document after the change)
    deleted = event(EventType.DELETED, document=None, previous=snapshot())
    # Then it matches on the deleted document's fields
    assert approved.matches(deleted)
    assert not approved.matches(
        event(EventType.DELETED, document=None, previous=snapshot(customers=("globex",)))
    )


def test_a_restricted_owner_sees_a_document_leave_as_a_deletion_of_what_it_saw() -> None:
    # Given a subscription of a key restricted to acme
    restricted = subscription(owner_customers=("acme",))
    # When a document stops naming acme (now globex's only)
    moved = event(
        EventType.UPDATED,
        document=snapshot(customers=("globex",)),
        previous=snapshot(customers=("acme",)),
    )
    shown = restricted.view(moved)
    # Then acme is told its document is gone, and never shown globex's version
    assert shown is not None
    assert shown.type is EventType.DELETED
    assert shown.document is None
    assert shown.previous is not None
    assert shown.previous.customers == ("acme",)
    assert "globex" not in DeliveryMessage.for_event(shown, restricted.id).body()


def test_a_restricted_owner_sees_a_document_arrive_as_a_creation_without_its_past() -> None:
    # Given a subscription of a key restricted to acme
    restricted = subscription(owner_customers=("acme",))
    # When a globex document comes to name acme
    arrived = event(
        EventType.UPDATED,
        document=snapshot(customers=("acme",)),
        previous=snapshot(customers=("globex",)),
    )
    shown = restricted.view(arrived)
    # Then it is a creation for acme, with no trace of the version acme could not see
    assert shown is not None
    assert shown.type is EventType.CREATED
    assert shown.previous is None
    assert shown.changed == ()
    assert "globex" not in DeliveryMessage.for_event(shown, restricted.id).body()
    # And an owner of every customer gets the update as it is
    assert subscription().view(arrived) == arrived


def test_the_webhook_id_is_stable_per_event_and_subscription() -> None:
    # Given one event and two subscriptions
    created = event()
    first, second = subscription(), subscription()
    # When its messages are built twice
    again = DeliveryMessage.for_event(created, first.id)
    once = DeliveryMessage.for_event(created, first.id)
    other = DeliveryMessage.for_event(created, second.id)
    # Then the same pair gives the same id and body; another subscription another id
    assert once.webhook_id == again.webhook_id
    assert once.body() == again.body()
    assert other.webhook_id != once.webhook_id
    assert once.webhook_id.startswith("msg_")


def test_the_payload_follows_standard_webhooks() -> None:
    # Given a creation's message
    message = DeliveryMessage.for_event(event(), subscription().id)
    # When its body is read as JSON
    body = json.loads(message.body())
    # Then it has type, timestamp and data (the document and the event id)
    assert set(body) == {"type", "timestamp", "data"}
    assert body["type"] == "document.created"
    assert body["data"]["id"] == "evt_" + "0" * 32
    assert body["data"]["document"]["customers"] == ["acme"]
    # And the message survives the queue (its SQS body) unchanged
    assert DeliveryMessage.model_validate_json(message.model_dump_json()).body() == message.body()


def test_messages_for_leaves_out_disabled_and_unmatched_subscriptions() -> None:
    # Given an active match, a disabled match and an active non-match
    active = subscription()
    disabled = subscription(status=SubscriptionStatus.DISABLED)
    other = subscription(filters=SubscriptionFilters(customers=("globex",)))
    # When a creation is fanned out
    messages = messages_for(event(), [active, disabled, other])
    # Then only the active match gets a message
    assert [m.subscription_id for m in messages] == [active.id]


def test_the_previous_secret_signs_only_during_its_grace() -> None:
    # Given secrets rotated with a grace ending in an hour
    secrets = SigningSecrets(
        current=new_signing_secret(),
        previous=new_signing_secret(),
        previous_valid_until=NOW + timedelta(hours=1),
    )
    # When asked before and after the grace
    # Then both sign before, only the current one after
    assert secrets.signing(NOW) == (secrets.current, secrets.previous)
    assert secrets.signing(NOW + timedelta(hours=1)) == (secrets.current,)
