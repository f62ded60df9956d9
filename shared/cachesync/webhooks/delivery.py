"""Deliver one queued webhook: sign, POST, record the attempt, decide when to try again.

At least once: a message is deleted from the queue only after a 2xx (or when there is nothing
to deliver it to); its ``webhook-id`` is the same on every attempt so receivers deduplicate.
A failed attempt comes back after an exponential, fully jittered wait
(:class:`~cachesync.retry_policies.BackoffSchedule`); after ``max_attempts`` (the queue's
``maxReceiveCount``) SQS moves it to the dead-letter queue.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from cachesync.change_events import DomainEvent
from cachesync.retry_policies import BackoffSchedule
from cachesync.webhooks.http_sender import SendResult
from cachesync.webhooks.models import (
    DeliveryAttempt,
    DeliveryMessage,
    Subscription,
    SubscriptionStatus,
)
from cachesync.webhooks.signing import signed_headers


class SubscriptionStore(Protocol):
    """What delivery needs of the subscriptions store (``DynamoDBWebhookStore``)."""

    def get(self, subscription_id: str) -> Subscription | None: ...

    def record_attempt(self, attempt: DeliveryAttempt) -> None: ...

    def record_success(self, subscription_id: str) -> None: ...

    def record_failure(self, subscription_id: str, threshold: int) -> SubscriptionStatus | None: ...


class Sender(Protocol):
    """What delivery needs of the HTTP side (``HttpWebhookSender``)."""

    def post(self, url: str, body: str, headers: dict[str, str]) -> SendResult: ...


class DeliveryOutcome(BaseModel):
    """What became of one attempt: delivered, retry later, budget spent, or nothing to do."""

    model_config = ConfigDict(frozen=True)

    result: Literal["delivered", "retry", "exhausted", "skipped"]
    attempt: DeliveryAttempt | None = None
    retry_after_seconds: int | None = None
    """For ``retry``: how long the message stays hidden before its next attempt."""
    reason: str | None = None
    subscription_status: SubscriptionStatus | None = None


class WebhookDeliverer:
    """The delivery use case, over an injected store, sender, schedule and clock."""

    def __init__(
        self,
        store: SubscriptionStore,
        sender: Sender,
        *,
        schedule: BackoffSchedule,
        max_attempts: int,
        failure_threshold: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        """``max_attempts``: the queue's ``maxReceiveCount`` (the last attempt is not
        postponed); ``failure_threshold``: consecutive failed attempts that mark a
        subscription failing."""
        self._store = store
        self._sender = sender
        self._schedule = schedule
        self._max_attempts = max_attempts
        self._threshold = failure_threshold
        self._clock = clock
        self._rng = rng

    def deliver(self, message: DeliveryMessage, attempt: int) -> DeliveryOutcome:
        """Attempt ``message`` (its ``attempt``-th receive); the outcome for the queue."""
        subscription = self._store.get(message.subscription_id)
        if subscription is None:
            return DeliveryOutcome(result="skipped", reason="subscription deleted")
        if subscription.status is SubscriptionStatus.DISABLED:
            return DeliveryOutcome(result="skipped", reason="subscription disabled")
        record = self.send(subscription, message, attempt)
        if record.delivered:
            self._store.record_success(subscription.id)
            return DeliveryOutcome(
                result="delivered", attempt=record, subscription_status=SubscriptionStatus.ACTIVE
            )
        status = self._store.record_failure(subscription.id, self._threshold)
        reason = record.error or f"HTTP {record.status_code}"
        if attempt >= self._max_attempts:
            return DeliveryOutcome(
                result="exhausted", attempt=record, reason=reason, subscription_status=status
            )
        wait = math.ceil(self._schedule.delay(attempt, self._rng))
        return DeliveryOutcome(
            result="retry",
            attempt=record,
            retry_after_seconds=wait,
            reason=reason,
            subscription_status=status,
        )

    def send(
        self, subscription: Subscription, message: DeliveryMessage, attempt: int = 1
    ) -> DeliveryAttempt:
        """Sign and POST ``message`` to ``subscription`` now, and record the attempt."""
        now = self._clock()
        headers = signed_headers(message, subscription.secrets, now)
        result = self._sender.post(subscription.url, message.body(), headers)
        record = DeliveryAttempt(
            subscription_id=subscription.id,
            webhook_id=message.webhook_id,
            attempt=attempt,
            status_code=result.status_code,
            error=result.error,
            latency_ms=result.latency_ms,
            at=now,
        )
        self._store.record_attempt(record)
        return record

    def ping(self, subscription: Subscription) -> DeliveryAttempt:
        """Send a ``webhook.ping`` now; a 2xx makes a failing subscription active again (a
        failed ping is not counted: it is a check, not a delivery)."""
        record = self.send(subscription, DeliveryMessage.ping(subscription.id, self._clock()))
        if record.delivered:
            self._store.record_success(subscription.id)
        return record


def messages_for(event: DomainEvent, subscriptions: list[Subscription]) -> list[DeliveryMessage]:
    """One delivery message per subscription ``event`` matches (disabled ones left out), each
    with the event as that subscription may see it: what the change feed puts on the queue."""
    messages: list[DeliveryMessage] = []
    for subscription in subscriptions:
        if subscription.status is SubscriptionStatus.DISABLED:
            continue
        shown = subscription.view(event)
        if shown is not None:
            # The id stays the event's: a retried record gives the same webhook-id.
            messages.append(DeliveryMessage.for_event(shown, subscription.id))
    return messages
