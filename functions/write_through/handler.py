"""Lambda entry point: applications write or delete documents, index first, then S3."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from cachesync.requests import WriteRequest, parse_request
from cachesync.runtime import build_writer
from cachesync.settings import WriteThroughSettings, load_settings
from cachesync.write_through import execute_write

SERVICE = "write_through"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace="cachesync", service=SERVICE)
tracer = Tracer(service=SERVICE)

writer = build_writer(load_settings(WriteThroughSettings))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Put or delete one document; returns the receipt (ETag, version, index state)."""
    request = parse_request(WriteRequest, event)
    logger.append_keys(object_key=request.key, operation=request.operation)
    receipt = execute_write(writer, request, context=context)
    return receipt.model_dump(mode="json")
