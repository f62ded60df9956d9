"""Webhook subscriptions, the messages delivered to them, and the record of each attempt."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from cachesync.change_events import DocumentSnapshot, DomainEvent, EventType

SUBSCRIPTION_ID_PREFIX: Final = "sub_"
WEBHOOK_ID_PREFIX: Final = "msg_"
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the format's prefix, not a secret
PING_EVENT_TYPE: Final = "webhook.ping"
"""The event type of ``cachesync webhooks test``: every subscription receives it."""
# 32 random bytes: the HMAC-SHA256 key size (Standard Webhooks allows 24 to 64).
_SECRET_BYTES: Final = 32


class SubscriptionStatus(StrEnum):
    """``failing``: the last deliveries kept failing (still attempted, see docs/WEBHOOKS.md);
    ``disabled``: nothing is sent until re-enabled."""

    ACTIVE = "active"
    FAILING = "failing"
    DISABLED = "disabled"


class SubscriptionFilters(BaseModel):
    """Which documents a subscription wants; an empty tuple matches any value."""

    model_config = ConfigDict(frozen=True)

    customers: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()


class SigningSecrets(BaseModel):
    """The secret deliveries are signed with, and during a rotation's grace the one before."""

    model_config = ConfigDict(frozen=True)

    current: str = Field(pattern=r"^whsec_[A-Za-z0-9+/=]+$")
    previous: str | None = None
    previous_valid_until: datetime | None = None

    def signing(self, now: datetime) -> tuple[str, ...]:
        """The secrets to sign with at ``now``: the current one, then the previous in grace."""
        if (
            self.previous is not None
            and self.previous_valid_until is not None
            and now < self.previous_valid_until
        ):
            return (self.current, self.previous)
        return (self.current,)


class Subscription(BaseModel):
    """One webhook subscription: where to POST which document events, signed with what."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=r"^sub_[0-9a-f]{24}$")
    url: str = Field(min_length=8, max_length=2048)
    event_types: tuple[EventType, ...] = Field(min_length=1)
    filters: SubscriptionFilters = SubscriptionFilters()
    owner_key_id: str
    """The API key that created it (an admin key; ``cli`` from the command line)."""
    owner_customers: tuple[str, ...] | None
    """The owner key's customers; ``None``: every customer. A restricted owner's subscription
    matches only documents naming one of them, whatever its filters say."""
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE
    consecutive_failures: int = Field(default=0, ge=0)
    created_at: datetime
    secrets: SigningSecrets

    def matches(self, event: DomainEvent) -> bool:
        """Whether ``event`` is delivered to this subscription (as :meth:`view` shows it)."""
        return self.view(event) is not None

    def view(self, event: DomainEvent) -> DomainEvent | None:
        """``event`` as this subscription receives it, or ``None`` when it is not delivered.

        An owner limited to some customers sees only documents naming one of them: a document
        that comes to name one is a creation for it, one that stops naming them a deletion (of
        the version it could see), and a version it may not see is never in the payload. Filters
        then apply to the document after the change (the deleted one for a deletion).
        """
        document = event.document if event.document and self._may_see(event.document) else None
        previous = event.previous if event.previous and self._may_see(event.previous) else None
        if document is not None and previous is None and event.previous is not None:
            shown = event.model_copy(
                update={"type": EventType.CREATED, "previous": None, "changed": ()}
            )
        elif document is None and previous is not None and event.document is not None:
            shown = event.model_copy(
                update={"type": EventType.DELETED, "document": None, "changed": ()}
            )
        elif document is None and previous is None:
            return None
        else:
            shown = event
        subject = shown.document or shown.previous
        if shown.type not in self.event_types or subject is None or not self._wants(subject):
            return None
        return shown

    def _may_see(self, document: DocumentSnapshot) -> bool:
        if self.owner_customers is None:
            return True
        return any(customer in self.owner_customers for customer in document.customers)

    def _wants(self, document: DocumentSnapshot) -> bool:
        wanted = self.filters
        if wanted.customers and not any(c in wanted.customers for c in document.customers):
            return False
        if wanted.kinds and document.kind not in wanted.kinds:
            return False
        return not (wanted.statuses and document.status not in wanted.statuses)


class WebhookPayload(BaseModel):
    """The JSON body of a delivery, per Standard Webhooks: ``type``, ``timestamp``, ``data``."""

    model_config = ConfigDict(frozen=True)

    type: str
    timestamp: datetime
    data: dict[str, Any]


class DeliveryMessage(BaseModel):
    """One (event, subscription) pair on the delivery queue: the SQS message body."""

    model_config = ConfigDict(frozen=True)

    webhook_id: str = Field(pattern=r"^msg_[0-9a-f]{32}$")
    """Stable across retries (derived from the event and subscription ids): receivers
    deduplicate on the ``webhook-id`` header."""
    subscription_id: str
    event_type: str
    payload: WebhookPayload

    def body(self) -> str:
        """The exact bytes POSTed (and signed): the same text on every attempt."""
        return json.dumps(
            self.payload.model_dump(mode="json"), separators=(",", ":"), sort_keys=True
        )

    @classmethod
    def for_event(cls, event: DomainEvent, subscription_id: str) -> DeliveryMessage:
        """The message delivering ``event`` to the subscription ``subscription_id``."""
        return cls(
            webhook_id=webhook_id(event.id, subscription_id),
            subscription_id=subscription_id,
            event_type=event.type.value,
            payload=WebhookPayload(
                type=event.type.value,
                timestamp=event.occurred_at,
                data=event.model_dump(mode="json", exclude={"type", "occurred_at"}),
            ),
        )

    @classmethod
    def ping(cls, subscription_id: str, now: datetime) -> DeliveryMessage:
        """A ``webhook.ping`` for ``subscription_id`` (each ping its own webhook id)."""
        return cls(
            webhook_id=webhook_id(f"ping_{secrets.token_hex(16)}", subscription_id),
            subscription_id=subscription_id,
            event_type=PING_EVENT_TYPE,
            payload=WebhookPayload(
                type=PING_EVENT_TYPE, timestamp=now, data={"subscription_id": subscription_id}
            ),
        )


class DeliveryAttempt(BaseModel):
    """One POST of a message: its HTTP status, or the error that prevented an answer."""

    model_config = ConfigDict(frozen=True)

    subscription_id: str
    webhook_id: str
    attempt: int = Field(ge=1)
    status_code: int | None = None
    error: str | None = None
    latency_ms: int = Field(ge=0)
    at: datetime

    @property
    def delivered(self) -> bool:
        """A 2xx answer: the receiver took it."""
        return self.status_code is not None and 200 <= self.status_code < 300


def webhook_id(event_id: str, subscription_id: str) -> str:
    """The ``webhook-id`` of ``event_id`` delivered to ``subscription_id`` (deterministic)."""
    digest = hashlib.sha256(f"{event_id}\n{subscription_id}".encode()).hexdigest()
    return f"{WEBHOOK_ID_PREFIX}{digest[:32]}"


def new_subscription_id() -> str:
    """A fresh random subscription id (96 bits)."""
    return f"{SUBSCRIPTION_ID_PREFIX}{secrets.token_hex(12)}"


def new_signing_secret() -> str:
    """A fresh ``whsec_`` secret: base64 of 32 random bytes, as Standard Webhooks defines."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()
