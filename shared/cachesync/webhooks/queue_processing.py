"""The delivery queue's records -> one delivery attempt each; failures postponed or reported.

Each SQS record is one :class:`DeliveryMessage`; its ``ApproximateReceiveCount`` is the attempt
number. A failed attempt hides the message for the backoff's wait (ChangeMessageVisibility,
at most 12 h) and reports it in ``batchItemFailures``; the attempt that spends the budget only
reports it, and SQS moves it to the dead-letter queue when it would be received once more
(``maxReceiveCount``).
"""

from __future__ import annotations

from typing import Any, Protocol

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from cachesync.exceptions import DeliveryPostponedError, InvalidEventError
from cachesync.webhooks.delivery import WebhookDeliverer
from cachesync.webhooks.models import DeliveryMessage


class DelayQueue(Protocol):
    """What processing needs of the queue (``SqsWebhookQueue``)."""

    def postpone(self, receipt_handle: str, seconds: int) -> None: ...


class DeliveryQueueProcessor:
    """Runs each queued delivery once, in the invoking thread (a receiver per message)."""

    def __init__(self, deliverer: WebhookDeliverer, queue: DelayQueue, logger: Logger) -> None:
        """``queue``: where a failed message's next attempt is postponed."""
        self._deliverer = deliverer
        self._queue = queue
        self._logger = logger

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        """Deliver every record of an SQS ``event``; the failed ones in ``batchItemFailures``."""
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        response = process_partial_response(
            event=event, record_handler=self._record, processor=processor, context=context
        )
        return dict(response)

    def _record(self, record: SQSRecord) -> None:
        try:
            message = DeliveryMessage.model_validate_json(record.body)
        except ValidationError as error:
            # Reported failed: after the budget it waits in the dead-letter queue for a look.
            raise InvalidEventError(str(error), source="webhook delivery queue") from error
        attempt = int(record.attributes.approximate_receive_count)
        outcome = self._deliverer.deliver(message, attempt)
        self._logger.info(
            "webhook delivery",
            extra={
                "webhook_id": message.webhook_id,
                "subscription_id": message.subscription_id,
                "attempt": attempt,
                "result": outcome.result,
                "status_code": outcome.attempt.status_code if outcome.attempt else None,
                "reason": outcome.reason,
                "subscription_status": outcome.subscription_status,
            },
        )
        if outcome.result == "retry":
            wait = outcome.retry_after_seconds or 0
            self._queue.postpone(record.receipt_handle, wait)
            raise DeliveryPostponedError(message.webhook_id, attempt, wait, outcome.reason or "")
        if outcome.result == "exhausted":
            raise DeliveryPostponedError(message.webhook_id, attempt, None, outcome.reason or "")
