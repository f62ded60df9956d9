"""The change feed's webhook publisher: one delivery message per matching subscription.

Subscriptions are read with a scan (they are few) and kept for a short while per process, so a
busy stream does not scan once per record: a new or changed subscription is seen within
``refresh_seconds``. The queue send comes before the change feed commits the record, so a lost
send is retried with the record (and the same ``webhook-id``: receivers deduplicate).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from cachesync.change_events import DomainEvent
from cachesync.webhooks.delivery import messages_for
from cachesync.webhooks.models import DeliveryMessage, Subscription


class SubscriptionSource(Protocol):
    """Where subscriptions are (``DynamoDBWebhookStore``)."""

    def list_subscriptions(self, owner_key_id: str | None = None) -> list[Subscription]:
        """Every subscription (of one owner, if given)."""
        ...


class DeliveryQueue(Protocol):
    """Where delivery messages go (``SqsWebhookQueue``)."""

    def send(self, message: DeliveryMessage) -> str:
        """Enqueue ``message``; its queue message id."""
        ...


class WebhookFanOut:
    """Publishes each domain event to the delivery queue, once per matching subscription."""

    def __init__(
        self,
        subscriptions: SubscriptionSource,
        queue: DeliveryQueue,
        *,
        refresh_seconds: float = 10.0,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._subscriptions = subscriptions
        self._queue = queue
        self._refresh_seconds = refresh_seconds
        self._timer = timer
        self._known: list[Subscription] = []
        self._read_at: float | None = None

    def publish(self, event: DomainEvent) -> None:
        """Enqueue one delivery of ``event`` per subscription it matches."""
        for message in messages_for(event, self._current()):
            self._queue.send(message)

    def _current(self) -> list[Subscription]:
        now = self._timer()
        if self._read_at is None or now - self._read_at >= self._refresh_seconds:
            self._known = self._subscriptions.list_subscriptions()
            self._read_at = now
        return self._known
