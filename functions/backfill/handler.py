"""Lambda entry point: rebuild the index from S3, for S3 Batch Operations or a backfill request.

S3 Batch Operations (``LambdaInvoke``) sends tasks and gets one result per task; any other
payload is a backfill request, which lists the bucket itself and may continue in a new
invocation of this function.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from cachesync.backfill_invocation import run_backfill_invocation
from cachesync.batch_operations import (
    is_batch_operation_event,
    parse_batch_operation,
    run_batch_operation,
)
from cachesync.rate_limit import Deadline
from cachesync.requests import BackfillRequest, parse_request
from cachesync.runtime import build_backfill, build_lambda_invoker
from cachesync.settings import BackfillSettings, load_settings

SERVICE = "backfill"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace="cachesync", service=SERVICE)
tracer = Tracer(service=SERVICE)

settings = load_settings(BackfillSettings)
backfill, indexer = build_backfill(settings)
invoker = build_lambda_invoker()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Index the tasks of an S3 Batch Operations job, or run (a slice of) a backfill request."""
    deadline = Deadline.from_lambda_context(context)
    if is_batch_operation_event(event):
        batch = parse_batch_operation(event)
        logger.append_keys(job_id=batch.job.id, invocation_id=batch.invocation_id)
        response = run_batch_operation(
            indexer, batch, buckets={settings.bucket_name}, deadline=deadline
        )
        for code, count in response.counts().items():
            metrics.add_metric(name=f"BatchTasks{code.value}", unit=MetricUnit.Count, value=count)
        answer = response.to_event()
        logger.info("batch operation tasks finished", extra={"results": answer["results"]})
        return answer
    request = parse_request(BackfillRequest, event)
    result = run_backfill_invocation(
        backfill,
        request,
        deadline=deadline,
        reinvoke=partial(invoker.invoke_async, context.invoked_function_arn),
        stop_margin_seconds=settings.backfill_stop_margin_seconds,
    )
    metrics.add_metric(name="BackfillPages", unit=MetricUnit.Count, value=result.pages)
    answer = result.model_dump(mode="json")
    logger.info("backfill invocation finished", extra=answer)
    return answer
