"""Managing webhook subscriptions: the one use case behind ``cachesync webhooks`` and
``/v1/webhooks``.

Who may do what: an owner with every customer (``owner_customers`` ``None``: the CLI, or an
admin key for all customers) manages every subscription; an owner limited to some customers
sees and manages only the subscriptions it created, each limited to its customers, and its
customer filter may only name them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from cachesync.change_events import EventType
from cachesync.exceptions import (
    InvalidRequestError,
    SubscriptionForbiddenError,
    SubscriptionNotFoundError,
)
from cachesync.stores.dynamodb_webhooks import SubscriptionChanges
from cachesync.webhooks.address_guard import check_url
from cachesync.webhooks.models import (
    DeliveryAttempt,
    SigningSecrets,
    Subscription,
    SubscriptionFilters,
    new_signing_secret,
    new_subscription_id,
)


class SubscriptionRepository(Protocol):
    """Where subscriptions live (``DynamoDBWebhookStore``)."""

    def create(self, subscription: Subscription) -> None: ...
    def get(self, subscription_id: str) -> Subscription | None: ...
    def list_subscriptions(self, owner_key_id: str | None = None) -> list[Subscription]: ...
    def update(self, subscription_id: str, changes: SubscriptionChanges) -> Subscription: ...
    def delete(self, subscription_id: str) -> None: ...
    def rotate_secret(
        self, before: Subscription, new_secret: str, previous_valid_until: datetime
    ) -> Subscription: ...
    def recent_attempts(
        self, subscription_id: str, now: datetime, limit: int = 20
    ) -> list[DeliveryAttempt]: ...


class Pinger(Protocol):
    """Sends a signed ``webhook.ping`` now (``WebhookDeliverer``)."""

    def ping(self, subscription: Subscription) -> DeliveryAttempt: ...


class Owner(BaseModel):
    """Who manages subscriptions: a key id and the customers it may see (``None``: all)."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    customers: tuple[str, ...] | None


class NewSubscription(BaseModel):
    """A subscription just created, with its secret (shown once)."""

    model_config = ConfigDict(frozen=True)

    subscription: Subscription
    secret: str


class SubscriptionManager:
    """Creates, lists, changes, tests and removes webhook subscriptions for an owner."""

    def __init__(
        self,
        store: SubscriptionRepository,
        pinger: Pinger,
        *,
        allow_loopback: bool,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``allow_loopback``: the local stack only (http and loopback targets allowed)."""
        self._store = store
        self._pinger = pinger
        self._allow_loopback = allow_loopback
        self._clock = clock

    def create(
        self,
        owner: Owner,
        url: str,
        event_types: Sequence[EventType],
        filters: SubscriptionFilters,
    ) -> NewSubscription:
        """Subscribe ``url``; refused when the SSRF guard refuses it or the filters name a
        customer the owner may not see."""
        if not event_types:
            raise InvalidRequestError("name at least one event type", "event_types")
        check_url(url, allow_loopback=self._allow_loopback)
        self._check_filters(owner, filters)
        subscription = Subscription(
            id=new_subscription_id(),
            url=url,
            event_types=tuple(dict.fromkeys(event_types)),
            filters=filters,
            owner_key_id=owner.key_id,
            owner_customers=owner.customers,
            created_at=self._clock(),
            secrets=SigningSecrets(current=new_signing_secret()),
        )
        self._store.create(subscription)
        return NewSubscription(subscription=subscription, secret=subscription.secrets.current)

    def list_for(self, owner: Owner) -> list[Subscription]:
        """The subscriptions ``owner`` manages, oldest first."""
        found = self._store.list_subscriptions(None if owner.customers is None else owner.key_id)
        return sorted(found, key=lambda subscription: subscription.created_at)

    def get(self, owner: Owner, subscription_id: str) -> Subscription:
        """One subscription ``owner`` manages; :class:`SubscriptionNotFoundError` otherwise
        (another owner's subscription is not acknowledged to exist)."""
        subscription = self._store.get(subscription_id)
        if subscription is None or not _manages(owner, subscription):
            raise SubscriptionNotFoundError(subscription_id)
        return subscription

    def update(
        self, owner: Owner, subscription_id: str, changes: SubscriptionChanges
    ) -> Subscription:
        """Apply a PATCH; a new URL or filter is checked as at creation."""
        self.get(owner, subscription_id)
        if changes.url is not None:
            check_url(changes.url, allow_loopback=self._allow_loopback)
        if changes.filters is not None:
            self._check_filters(owner, changes.filters)
        if changes.event_types is not None and not changes.event_types:
            raise InvalidRequestError("name at least one event type", "event_types")
        return self._store.update(subscription_id, changes)

    def delete(self, owner: Owner, subscription_id: str) -> None:
        """Remove a subscription: nothing more is delivered to it."""
        self.get(owner, subscription_id)
        self._store.delete(subscription_id)

    def rotate_secret(
        self, owner: Owner, subscription_id: str, grace: timedelta
    ) -> NewSubscription:
        """A new secret, returned once; the old one keeps signing too for ``grace``."""
        before = self.get(owner, subscription_id)
        secret = new_signing_secret()
        rotated = self._store.rotate_secret(before, secret, self._clock() + grace)
        return NewSubscription(subscription=rotated, secret=secret)

    def test(self, owner: Owner, subscription_id: str) -> DeliveryAttempt:
        """Send a signed ``webhook.ping`` now; the attempt (recorded like any other)."""
        return self._pinger.ping(self.get(owner, subscription_id))

    def deliveries(
        self, owner: Owner, subscription_id: str, limit: int = 20
    ) -> list[DeliveryAttempt]:
        """The latest delivery attempts, newest first."""
        self.get(owner, subscription_id)
        return self._store.recent_attempts(subscription_id, self._clock(), limit)

    @staticmethod
    def _check_filters(owner: Owner, filters: SubscriptionFilters) -> None:
        if owner.customers is None:
            return
        outside = [code for code in filters.customers if code not in owner.customers]
        if outside:
            raise SubscriptionForbiddenError(outside)


def _manages(owner: Owner, subscription: Subscription) -> bool:
    return owner.customers is None or subscription.owner_key_id == owner.key_id
