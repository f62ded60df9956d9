"""An event pump that behaves like Lambda's SQS event source mapping.

It long-polls each queue, invokes the function's handler with a real SQS event (batches of up to
10), deletes the messages that succeeded, and leaves the failed ones to reappear after the
visibility timeout; SQS itself moves a message to the DLQ after ``maxReceiveCount`` receives.
An invocation that raises fails its whole batch, as in Lambda.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cachesync.local.lambda_functions import LambdaHandler, LocalLambdaContext

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueRoute:
    """Messages of one queue go to one function."""

    queue_url: str
    queue_arn: str
    function_name: str
    handler: LambdaHandler


@dataclass
class PumpStats:
    """What the pump has done so far."""

    received: int = 0
    succeeded: int = 0
    failed: int = 0
    invocations: int = 0
    invocation_errors: int = 0
    by_function: dict[str, int] = field(default_factory=dict)


class EventPump:
    """Feeds SQS messages to Lambda handlers in this process."""

    def __init__(
        self,
        sqs: SQSClient,
        routes: list[QueueRoute],
        *,
        batch_size: int = 10,
        wait_seconds: int = 1,
        region: str = "us-east-1",
        on_batch: Callable[[PumpStats], None] | None = None,
    ) -> None:
        self._sqs = sqs
        self._routes = routes
        self._batch_size = batch_size
        self._wait_seconds = wait_seconds
        self._region = region
        self._on_batch = on_batch
        # One invocation at a time keeps the stats simple; Lambda's concurrency is not the
        # point of a local pump.
        self._lock = threading.Lock()
        self.stats = PumpStats()

    def poll_once(self, *, wait_seconds: int | None = None) -> int:
        """Receive and process at most one batch from each queue; the number of messages."""
        return sum(self._poll(route, wait_seconds) for route in self._routes)

    def drain(self, *, idle_polls: int = 2, timeout_seconds: float = 120.0) -> PumpStats:
        """Poll until every queue was empty ``idle_polls`` times in a row (or the timeout)."""
        deadline = time.monotonic() + timeout_seconds
        idle = 0
        while idle < idle_polls and time.monotonic() < deadline:
            idle = idle + 1 if self.poll_once(wait_seconds=0) == 0 else 0
        return self.stats

    def run(self, stop: threading.Event) -> None:
        """Poll every queue on its own thread (as Lambda's pollers do) until ``stop`` is set."""
        pollers = [
            threading.Thread(
                target=self._poll_until, args=(route, stop), name=f"pump-{route.function_name}"
            )
            for route in self._routes
        ]
        for poller in pollers:
            poller.start()
        for poller in pollers:
            poller.join()

    def _poll_until(self, route: QueueRoute, stop: threading.Event) -> None:
        while not stop.is_set():
            self._poll(route, None)

    def _poll(self, route: QueueRoute, wait_seconds: int | None) -> int:
        response = self._sqs.receive_message(
            QueueUrl=route.queue_url,
            MaxNumberOfMessages=self._batch_size,
            WaitTimeSeconds=self._wait_seconds if wait_seconds is None else wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if messages:
            with self._lock:
                self._invoke(route, messages)
        return len(messages)

    def _invoke(self, route: QueueRoute, messages: list[MessageTypeDef]) -> None:
        event = {"Records": [self._record(route, message) for message in messages]}
        context = LocalLambdaContext(function_name=route.function_name)
        self.stats.received += len(messages)
        self.stats.invocations += 1
        self.stats.by_function[route.function_name] = self.stats.by_function.get(
            route.function_name, 0
        ) + len(messages)
        try:
            response = route.handler(event, context)
        except Exception:
            logger.exception("%s failed its whole batch", route.function_name)
            self.stats.invocation_errors += 1
            self.stats.failed += len(messages)
            return
        failed_ids = {
            failure["itemIdentifier"] for failure in (response or {}).get("batchItemFailures", [])
        }
        done = [m for m in messages if m["MessageId"] not in failed_ids]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=route.queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done)
                ],
            )
        self.stats.succeeded += len(done)
        self.stats.failed += len(messages) - len(done)
        if self._on_batch is not None:
            self._on_batch(self.stats)

    def _record(self, route: QueueRoute, message: MessageTypeDef) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": {},
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": route.queue_arn,
            "awsRegion": self._region,
        }
