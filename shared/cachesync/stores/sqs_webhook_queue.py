"""The webhook delivery queue (SQS): enqueue a delivery, postpone a failed one.

SQS error codes become cachesync errors in exactly one function, :func:`_translate`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from cachesync.exceptions import (
    CacheSyncError,
    WebhookStoreRequestError,
    WebhookStoreUnavailableError,
)
from cachesync.retry_policies import DEFAULT_RETRY_POLICY, RetryPolicy, error_code
from cachesync.retry_policies import is_transient_aws_error as _is_transient
from cachesync.webhooks.models import DeliveryMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

T = TypeVar("T")

MAX_VISIBILITY_SECONDS: Final = 43_200
"""SQS's ceiling on a message's visibility timeout (12 hours)."""


class SqsWebhookQueue:
    """The SQS queue that carries one message per (event, subscription) to the delivery
    function, through an injected client."""

    def __init__(
        self, client: SQSClient, queue_url: str, *, retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY
    ) -> None:
        """``queue_url``: the delivery queue (its redrive policy names the dead-letter queue)."""
        self._client = client
        self._url = queue_url
        self._retry = retry_policy

    def send(self, message: DeliveryMessage) -> str:
        """Enqueue ``message``; its SQS message id."""
        response = self._call(
            "SendMessage",
            lambda: self._client.send_message(
                QueueUrl=self._url, MessageBody=message.model_dump_json()
            ),
        )
        return response["MessageId"]

    def postpone(self, receipt_handle: str, seconds: int) -> None:
        """Keep a received message hidden for ``seconds`` from now (at most 12 hours): it comes
        back then for its next attempt."""
        timeout = max(0, min(seconds, MAX_VISIBILITY_SECONDS))
        self._call(
            "ChangeMessageVisibility",
            lambda: self._client.change_message_visibility(
                QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=timeout
            ),
        )

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        try:
            return self._retry.call(operation, fn)
        except ClientError as error:
            raise _translate(operation, error, self._url) from error
        except BotoCoreError as error:
            raise WebhookStoreUnavailableError(
                operation, type(error).__name__, f"queue {self._url}: {error}"
            ) from error


def _translate(operation: str, error: ClientError, queue_url: str) -> CacheSyncError:
    """The one place SQS error codes of the delivery queue become cachesync errors."""
    code = error_code(error)
    message = f"queue {queue_url}: {error.response.get('Error', {}).get('Message', error)}"
    if _is_transient(error):
        return WebhookStoreUnavailableError(operation, code, message)
    return WebhookStoreRequestError(operation, code, message)
