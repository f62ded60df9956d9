"""Composition root of webhook delivery: settings in, the wired deliverer and stores out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cachesync import aws_clients
from cachesync.exceptions import ConfigurationError
from cachesync.retry_policies import BackoffSchedule
from cachesync.settings import WebhookDeliverySettings, variable_name
from cachesync.stores.dynamodb_webhooks import DynamoDBWebhookStore
from cachesync.stores.sqs_webhook_queue import SqsWebhookQueue
from cachesync.webhooks.delivery import WebhookDeliverer
from cachesync.webhooks.http_sender import HttpWebhookSender


@dataclass(frozen=True)
class WebhookComponents:
    """The store and the deliverer built from one set of settings."""

    store: DynamoDBWebhookStore
    deliverer: WebhookDeliverer


def build_webhooks(
    settings: WebhookDeliverySettings, dynamodb_options: Mapping[str, Any] | None = None
) -> WebhookComponents:
    """The subscription store and the deliverer (``dynamodb_options``: client arguments)."""
    store = DynamoDBWebhookStore(
        aws_clients.client("dynamodb", **(dynamodb_options or {})),
        settings.webhooks_table_name,
        settings.webhook_deliveries_table_name,
        attempt_retention=timedelta(days=settings.webhook_attempt_retention_days),
    )
    sender = HttpWebhookSender(
        connect_timeout=settings.webhook_connect_timeout_seconds,
        read_timeout=settings.webhook_read_timeout_seconds,
        max_response_bytes=settings.webhook_max_response_bytes,
        allow_loopback=settings.webhook_allow_loopback,
    )
    deliverer = WebhookDeliverer(
        store,
        sender,
        schedule=BackoffSchedule(
            base_seconds=settings.webhook_retry_base_seconds,
            max_seconds=settings.webhook_retry_max_seconds,
        ),
        max_attempts=settings.webhook_max_attempts,
        failure_threshold=settings.webhook_failure_threshold,
    )
    return WebhookComponents(store=store, deliverer=deliverer)


def build_delivery_queue(settings: WebhookDeliverySettings) -> SqsWebhookQueue:
    """The delivery queue; the function cannot postpone a retry without it."""
    if settings.webhook_delivery_queue_url is None:
        raise ConfigurationError(
            variable_name("webhook_delivery_queue_url"), "required by webhook delivery"
        )
    return SqsWebhookQueue(aws_clients.client("sqs"), settings.webhook_delivery_queue_url)
