"""Lambda entry point: the webhook delivery queue (SQS, ReportBatchItemFailures) -> POSTs."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from cachesync.settings import WebhookDeliverySettings, load_settings
from cachesync.webhooks.queue_processing import DeliveryQueueProcessor
from cachesync.webhooks.wiring import build_delivery_queue, build_webhooks

SERVICE = "webhook_delivery"
logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)

settings = load_settings(WebhookDeliverySettings)
processor = DeliveryQueueProcessor(
    build_webhooks(settings).deliverer, build_delivery_queue(settings), logger
)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Deliver each queued webhook once; report the failed ones (postponed or spent)."""
    return processor.handle(event, context)
