"""The local pipeline: S3 -> SQS -> event pump -> the real Lambda handlers -> the index, and
the change feed after it: the index's stream -> stream pump -> ``change_feed`` -> the webhook
delivery queue -> event pump -> ``webhook_delivery`` -> the subscribers."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Final

from cachesync.local.env_file import export_to_process_environment
from cachesync.local.event_pump import EventPump, QueueRoute
from cachesync.local.lambda_functions import load_handler
from cachesync.local.stack import LocalStack
from cachesync.local.stream_pump import StreamPump
from cachesync.local.stream_reader import DynamoDBStreamReader

CREATED_FUNCTION: Final = "s3_object_created"
REMOVED_FUNCTION: Final = "s3_object_removed"
CHANGE_FEED_FUNCTION: Final = "change_feed"
WEBHOOK_DELIVERY_FUNCTION: Final = "webhook_delivery"

# Functions run locally log warnings and errors (Lambda's INFO lines would drown them).
LOCAL_FUNCTION_ENVIRONMENT: Final = {"POWERTOOLS_LOG_LEVEL": "WARNING"}
# Webhooks on a developer's machine: a new subscription is seen by the feed within a second,
# and a failed delivery comes back within seconds (not AWS's minutes to hours), so retries can
# be watched at a local receiver.
LOCAL_WEBHOOK_ENVIRONMENT: Final = {
    "CACHESYNC_WEBHOOK_SUBSCRIPTIONS_REFRESH_SECONDS": "1",
    "CACHESYNC_WEBHOOK_RETRY_BASE_SECONDS": "2",
    "CACHESYNC_WEBHOOK_RETRY_MAX_SECONDS": "60",
}
# A stream has no long poll: an empty read waits this long. Reading a stream on DynamoDB Local
# costs a few milliseconds; a short wait keeps a change's delivery well under a second.
STREAM_POLL_SECONDS: Final = 0.05
STOP_TIMEOUT_SECONDS: Final = 10.0

logger = logging.getLogger(__name__)


def _export(stack: LocalStack, extra_environment: dict[str, str] | None) -> None:
    """Configure this process as the functions' Lambda configuration would be (before a
    handler is loaded: it reads its settings when imported)."""
    export_to_process_environment(
        {
            **stack.environment(),
            **LOCAL_FUNCTION_ENVIRONMENT,
            **LOCAL_WEBHOOK_ENVIRONMENT,
            **(extra_environment or {}),
        }
    )


def build_event_pump(
    stack: LocalStack,
    *,
    wait_seconds: int = 1,
    extra_environment: dict[str, str] | None = None,
) -> EventPump:
    """An event pump feeding the stack's queues to the S3 event handlers, loaded afresh with
    the stack's settings."""
    _export(stack, extra_environment)
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


def build_stream_pump(
    stack: LocalStack, *, extra_environment: dict[str, str] | None = None
) -> StreamPump:
    """A stream pump feeding the index table's stream to the ``change_feed`` handler."""
    _export(stack, extra_environment)
    stream_arn = stack.provisioned.index_stream_arn
    return StreamPump(
        DynamoDBStreamReader(stack.client("dynamodbstreams"), stream_arn),
        load_handler(CHANGE_FEED_FUNCTION),
        function_name=CHANGE_FEED_FUNCTION,
        stream_arn=stream_arn,
    )


def build_webhook_pump(
    stack: LocalStack,
    *,
    wait_seconds: int = 1,
    extra_environment: dict[str, str] | None = None,
) -> EventPump:
    """An event pump of its own for the webhook delivery queue -> ``webhook_delivery``: a slow
    receiver never holds up the S3 events (the pump runs one invocation at a time)."""
    _export(stack, extra_environment)
    queue = stack.provisioned.webhook_delivery_queue
    route = QueueRoute(
        queue_url=queue.url,
        queue_arn=queue.arn,
        function_name=WEBHOOK_DELIVERY_FUNCTION,
        handler=load_handler(WEBHOOK_DELIVERY_FUNCTION),
    )
    return EventPump(stack.client("sqs"), [route], wait_seconds=wait_seconds)


@dataclass
class LocalPipeline:
    """The three pumps of ``cachesync local up``, each on its own thread until :meth:`stop`."""

    events: EventPump
    """S3 event queues -> ``s3_object_created`` / ``s3_object_removed``."""
    stream: StreamPump
    """The index table's stream -> ``change_feed``."""
    webhooks: EventPump
    """The webhook delivery queue -> ``webhook_delivery``."""
    stream_poll_seconds: float = STREAM_POLL_SECONDS
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        """Start pumping (daemon threads: a pump stuck in a call never blocks the exit)."""
        self._threads = [
            threading.Thread(target=self.events.run, args=(self._stop,), name="event-pump"),
            threading.Thread(
                target=self.stream.run,
                args=(self._stop,),
                kwargs={"interval_seconds": self.stream_poll_seconds},
                name="stream-pump",
            ),
            threading.Thread(target=self.webhooks.run, args=(self._stop,), name="webhook-pump"),
        ]
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop the pumps; each finishes its current batch (SQS long polls end within their
        wait). Safe to call more than once."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout)
            if thread.is_alive():
                logger.warning("%s did not stop within %.0f s", thread.name, timeout)
        self._threads = []

    def __enter__(self) -> LocalPipeline:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def build_local_pipeline(
    stack: LocalStack,
    *,
    wait_seconds: int = 1,
    extra_environment: dict[str, str] | None = None,
) -> LocalPipeline:
    """The local pipeline of ``stack``, its handlers loaded with the stack's settings."""
    return LocalPipeline(
        events=build_event_pump(
            stack, wait_seconds=wait_seconds, extra_environment=extra_environment
        ),
        stream=build_stream_pump(stack, extra_environment=extra_environment),
        webhooks=build_webhook_pump(
            stack, wait_seconds=wait_seconds, extra_environment=extra_environment
        ),
    )
