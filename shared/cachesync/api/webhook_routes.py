"""The webhook subscription routes (``/v1/webhooks``): admin scope, per owner.

Registered by ``create_app`` with its admin guard; every route calls one method of
:class:`~cachesync.webhooks.subscriptions.SubscriptionManager`. Secrets appear only in the
answers that create them (creation, rotation), never in a listing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Final, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field

from cachesync.api.keys import Principal
from cachesync.api.problems import PROBLEM_CONTENT_TYPE
from cachesync.change_events import EventType
from cachesync.stores.dynamodb_webhooks import SubscriptionChanges
from cachesync.webhooks.models import (
    DeliveryAttempt,
    Subscription,
    SubscriptionFilters,
    SubscriptionStatus,
)
from cachesync.webhooks.subscriptions import Owner, SubscriptionManager

MAX_GRACE_SECONDS: Final = 30 * 86400


class SubscriptionView(BaseModel):
    """A subscription as the API shows it (never its secrets)."""

    model_config = ConfigDict(frozen=True)

    id: str
    url: str
    event_types: list[EventType]
    filters: SubscriptionFilters
    status: SubscriptionStatus
    consecutive_failures: int
    owner_key_id: str
    created_at: datetime

    @classmethod
    def of(cls, subscription: Subscription) -> SubscriptionView:
        """The view of ``subscription``."""
        return cls(
            id=subscription.id,
            url=subscription.url,
            event_types=list(subscription.event_types),
            filters=subscription.filters,
            status=subscription.status,
            consecutive_failures=subscription.consecutive_failures,
            owner_key_id=subscription.owner_key_id,
            created_at=subscription.created_at,
        )


class SubscriptionList(BaseModel):
    """The subscriptions the caller manages."""

    items: list[SubscriptionView]


class CreatedSubscription(BaseModel):
    """A new subscription and its signing secret: shown once, store it now."""

    subscription: SubscriptionView
    secret: str


class RotatedSecret(BaseModel):
    """A subscription's new signing secret (shown once) and how long the old one still signs."""

    subscription: SubscriptionView
    secret: str
    previous_secret_valid_until: datetime | None


class SubscriptionRequest(BaseModel):
    """What ``POST /v1/webhooks`` takes."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=2048)
    event_types: list[EventType] = Field(default_factory=lambda: list(EventType), min_length=1)
    filters: SubscriptionFilters = SubscriptionFilters()


class SubscriptionPatch(BaseModel):
    """What ``PATCH /v1/webhooks/{id}`` takes: the fields given are replaced."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=8, max_length=2048)
    event_types: list[EventType] | None = Field(default=None, min_length=1)
    filters: SubscriptionFilters | None = None
    status: Literal["active", "disabled"] | None = None
    """``active`` re-enables (and clears the failure count), ``disabled`` pauses; ``failing`` is
    the delivery's to set."""


class AttemptList(BaseModel):
    """Recent delivery attempts, newest first."""

    items: list[DeliveryAttempt]


class TestResult(BaseModel):
    """What the receiver answered to a signed ``webhook.ping``."""

    delivered: bool
    webhook_id: str
    status_code: int | None
    latency_ms: int
    error: str | None


def register_webhook_routes(
    app: APIGatewayRestResolver,
    manager: Callable[[], SubscriptionManager],
    *,
    guard: Any,
    principal: Callable[[], Principal],
    problem_responses: dict[int, OpenAPIResponse],
) -> None:
    """Add the ``/v1/webhooks`` routes to ``app``, each behind ``guard`` (admin scope)."""

    def owner() -> Owner:
        caller = principal()
        return Owner(key_id=caller.key_id, customers=caller.customers)

    def ok(model: BaseModel, status: int = 200) -> Response[Any]:
        return Response(
            status_code=status, content_type="application/json", body=model.model_dump_json()
        )

    def responses(model: type[BaseModel] | None, status: int = 200) -> dict[int, OpenAPIResponse]:
        answer: OpenAPIResponse = (
            {"description": "Done", "content": {"application/json": {"model": model}}}
            if model is not None
            else {"description": "Done (no body)"}
        )
        problems: dict[int, OpenAPIResponse] = {
            code: {"description": description, "content": {PROBLEM_CONTENT_TYPE: {}}}
            for code, description in (
                (404, "No such subscription (or not the caller's)"),
                (409, "Changed meanwhile (another rotation): retry"),
                (422, "A URL the SSRF guard refuses (not https, or not a public address)"),
            )
        }
        return {status: answer, **problems, **problem_responses}

    @app.post(
        "/v1/webhooks",
        middlewares=[guard],
        summary="Subscribe to document events",
        description="Deliveries are signed per Standard Webhooks with the returned secret.",
        responses=responses(CreatedSubscription, 201),
        tags=["webhooks"],
    )
    def create_subscription(request: Annotated[SubscriptionRequest, Body()]) -> Response[Any]:
        created = manager().create(owner(), request.url, request.event_types, request.filters)
        body = CreatedSubscription(
            subscription=SubscriptionView.of(created.subscription), secret=created.secret
        )
        return ok(body, 201)

    @app.get(
        "/v1/webhooks",
        middlewares=[guard],
        summary="List subscriptions",
        responses=responses(SubscriptionList),
        tags=["webhooks"],
    )
    def list_subscriptions() -> Response[Any]:
        found = manager().list_for(owner())
        return ok(SubscriptionList(items=[SubscriptionView.of(s) for s in found]))

    @app.get(
        "/v1/webhooks/<subscription_id>",
        middlewares=[guard],
        summary="Read a subscription",
        responses=responses(SubscriptionView),
        tags=["webhooks"],
    )
    def get_subscription(subscription_id: str) -> Response[Any]:
        return ok(SubscriptionView.of(manager().get(owner(), subscription_id)))

    @app.patch(
        "/v1/webhooks/<subscription_id>",
        middlewares=[guard],
        summary="Change a subscription",
        description="URL, event types, filters, or status (active re-enables, disabled pauses).",
        responses=responses(SubscriptionView),
        tags=["webhooks"],
    )
    def patch_subscription(
        subscription_id: str, patch: Annotated[SubscriptionPatch, Body()]
    ) -> Response[Any]:
        changes = SubscriptionChanges(
            url=patch.url,
            event_types=tuple(patch.event_types) if patch.event_types is not None else None,
            filters=patch.filters,
            status=SubscriptionStatus(patch.status) if patch.status else None,
        )
        return ok(SubscriptionView.of(manager().update(owner(), subscription_id, changes)))

    @app.delete(
        "/v1/webhooks/<subscription_id>",
        middlewares=[guard],
        summary="Remove a subscription",
        responses=responses(None, 204),
        tags=["webhooks"],
    )
    def delete_subscription(subscription_id: str) -> Response[Any]:
        manager().delete(owner(), subscription_id)
        return Response(status_code=204, body=None)

    @app.post(
        "/v1/webhooks/<subscription_id>/test",
        middlewares=[guard],
        summary="Send a signed test ping",
        responses=responses(TestResult),
        tags=["webhooks"],
    )
    def test_subscription(subscription_id: str) -> Response[Any]:
        attempt = manager().test(owner(), subscription_id)
        return ok(
            TestResult(
                delivered=attempt.delivered,
                webhook_id=attempt.webhook_id,
                status_code=attempt.status_code,
                latency_ms=attempt.latency_ms,
                error=attempt.error,
            )
        )

    @app.post(
        "/v1/webhooks/<subscription_id>/rotate-secret",
        middlewares=[guard],
        summary="Rotate the signing secret",
        description="A new secret, shown once; the old one also signs for grace_seconds.",
        responses=responses(RotatedSecret),
        tags=["webhooks"],
    )
    def rotate_subscription_secret(
        subscription_id: str,
        grace_seconds: Annotated[int, Query(ge=0, le=MAX_GRACE_SECONDS)] = 86400,
    ) -> Response[Any]:
        rotated = manager().rotate_secret(
            owner(), subscription_id, timedelta(seconds=grace_seconds)
        )
        secrets = rotated.subscription.secrets
        return ok(
            RotatedSecret(
                subscription=SubscriptionView.of(rotated.subscription),
                secret=rotated.secret,
                previous_secret_valid_until=secrets.previous_valid_until,
            )
        )

    @app.get(
        "/v1/webhooks/<subscription_id>/deliveries",
        middlewares=[guard],
        summary="Recent delivery attempts",
        responses=responses(AttemptList),
        tags=["webhooks"],
    )
    def list_deliveries(
        subscription_id: str, limit: Annotated[int, Query(ge=1, le=100)] = 20
    ) -> Response[Any]:
        return ok(AttemptList(items=manager().deliveries(owner(), subscription_id, limit)))
