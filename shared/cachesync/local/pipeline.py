"""The local pipeline: S3 -> SQS -> event pump -> the real Lambda handlers -> the index."""

from __future__ import annotations

from typing import Final

from cachesync.local.env_file import export_to_process_environment
from cachesync.local.event_pump import EventPump, QueueRoute
from cachesync.local.lambda_functions import load_handler
from cachesync.local.stack import LocalStack

CREATED_FUNCTION: Final = "s3_object_created"
REMOVED_FUNCTION: Final = "s3_object_removed"

# Functions run locally log warnings and errors (Lambda's INFO lines would drown them).
LOCAL_FUNCTION_ENVIRONMENT: Final = {"POWERTOOLS_LOG_LEVEL": "WARNING"}


def build_event_pump(
    stack: LocalStack,
    *,
    wait_seconds: int = 1,
    extra_environment: dict[str, str] | None = None,
) -> EventPump:
    """An event pump feeding the stack's queues to the S3 event handlers, loaded afresh with
    the stack's settings."""
    export_to_process_environment(
        {**stack.environment(), **LOCAL_FUNCTION_ENVIRONMENT, **(extra_environment or {})}
    )
    provisioned = stack.provisioned
    routes = [
        QueueRoute(
            queue_url=provisioned.created_queue.url,
            queue_arn=provisioned.created_queue.arn,
            function_name=CREATED_FUNCTION,
            handler=load_handler(CREATED_FUNCTION),
        ),
        QueueRoute(
            queue_url=provisioned.removed_queue.url,
            queue_arn=provisioned.removed_queue.arn,
            function_name=REMOVED_FUNCTION,
            handler=load_handler(REMOVED_FUNCTION),
        ),
    ]
    return EventPump(stack.client("sqs"), routes, wait_seconds=wait_seconds)
