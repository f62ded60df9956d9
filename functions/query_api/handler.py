"""Lambda entry point: the query API behind API Gateway (REST API, Lambda proxy, payload 1.0).

Every route lives in ``cachesync.api.app``; this module only wires it: settings validated at
cold start, the token secret read once (from Secrets Manager in AWS), one resolver per execution
environment (its memory cache lives as long as the environment).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from cachesync.api.wiring import build_api
from cachesync.settings import ApiSettings, load_settings

SERVICE = "query_api"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace="cachesync", service=SERVICE)
tracer = Tracer(service=SERVICE)

app = build_api(load_settings(ApiSettings), logger=logger, metrics=metrics)


# log_event=False even if POWERTOOLS_LOGGER_LOG_EVENT says otherwise: the event carries the
# caller's API key (Authorization / X-Api-Key), which is never logged.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False, clear_state=True
)
# Responses hold whole documents: kept out of the trace's metadata (X-Ray caps its size).
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Answer one API Gateway REST proxy request."""
    return app.resolve(event, context)
