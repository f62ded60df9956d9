"""Lambda entry point: read a document from the index, or from S3 when the index cannot answer."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from cachesync.requests import ReadRequest, parse_request
from cachesync.runtime import build_reader
from cachesync.settings import FallbackReadSettings, load_settings

SERVICE = "fallback_read"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace="cachesync", service=SERVICE)
tracer = Tracer(service=SERVICE)

reader = build_reader(load_settings(FallbackReadSettings), logger=logger, metrics=metrics)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Return the document at ``event["key"]`` and where it was read from."""
    request = parse_request(ReadRequest, event)
    logger.append_keys(object_key=request.key)
    return reader.get_document(request.key, consistent=request.consistent).model_dump(mode="json")
