"""Lambda entry point: the index table's stream -> domain events (webhooks) and analytics."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from cachesync.change_feed_processing import ChangeFeedProcessor
from cachesync.runtime import build_change_feed
from cachesync.settings import ChangeFeedSettings, load_settings

SERVICE = "change_feed"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace="cachesync", service=SERVICE)
tracer = Tracer(service=SERVICE)

settings = load_settings(ChangeFeedSettings)
processor = ChangeFeedProcessor(build_change_feed(settings), logger=logger, metrics=metrics)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Publish what each stream record means, in order; report the first failed record."""
    return processor.handle(event)
