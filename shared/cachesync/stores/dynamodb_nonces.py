"""Nonces of signed requests in the API usage table: a conditional PutItem per request.

Layout: ``api_usage_schema.py``. DynamoDB error codes become cachesync errors in exactly one
function, :func:`_translate`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from cachesync.api_usage_schema import UsageAttr, nonce_item_id
from cachesync.exceptions import CacheSyncError, UsageStoreError
from cachesync.retry_policies import DEFAULT_RETRY_POLICY, RetryPolicy, error_code

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

T = TypeVar("T")


class _SeenError(CacheSyncError):
    """Internal: the nonce's item already exists."""


class DynamoDBNonceStore:
    """Remembers each key's nonces until they expire."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
    ) -> None:
        self._client = client
        self._table = table_name
        self._retry = retry_policy

    def remember(self, key_id: str, nonce: str, expires_at: int) -> bool:
        """Record ``nonce`` of ``key_id`` until ``expires_at``; ``False`` if already recorded.

        A put retried after a lost answer finds its own item and reads as a replay: the request
        is refused and the client's retry, with a new nonce, goes through.
        """
        try:
            self._call(
                "PutItem",
                lambda: self._client.put_item(
                    TableName=self._table,
                    Item={
                        UsageAttr.COUNTER_ID: {"S": nonce_item_id(key_id, nonce)},
                        UsageAttr.EXPIRES_AT: {"N": str(expires_at)},
                    },
                    # A nonce is used once: a replay within its window finds the item.
                    ConditionExpression="attribute_not_exists(#id)",
                    ExpressionAttributeNames={"#id": UsageAttr.COUNTER_ID},
                ),
            )
        except _SeenError:
            return False
        return True

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        try:
            return self._retry.call(operation, fn)
        except ClientError as error:
            raise _translate(operation, error) from error
        except BotoCoreError as error:
            raise UsageStoreError(operation, type(error).__name__, str(error)) from error


def _translate(operation: str, error: ClientError) -> CacheSyncError:
    """The one place DynamoDB error codes of the nonce items become cachesync errors."""
    code = error_code(error)
    if code == "ConditionalCheckFailedException":
        return _SeenError("nonce already used")
    return UsageStoreError(operation, code, str(error.response.get("Error", {}).get("Message")))
