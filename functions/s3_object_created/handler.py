"""Lambda entry point: S3 object-created events (SQS, SNS-in-SQS, S3, EventBridge) -> index."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from cachesync.changes import Operation
from cachesync.event_processing import S3EventProcessor
from cachesync.runtime import build_event_sync
from cachesync.settings import SyncSettings, load_settings

SERVICE = "s3_object_created"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace="cachesync", service=SERVICE)
tracer = Tracer(service=SERVICE)

settings = load_settings(SyncSettings)
processor = S3EventProcessor(
    build_event_sync(settings),
    Operation.CREATED,
    logger=logger,
    metrics=metrics,
    workers=settings.sync_workers,
)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Apply every object-created change in ``event``; report failed SQS records."""
    return processor.handle(event, context)
