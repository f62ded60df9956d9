"""Rate-limit counters in the API usage table: one conditional UpdateItem per request.

Layout: ``api_usage_schema.py``. DynamoDB error codes become cachesync errors in exactly one
function, :func:`_translate`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from cachesync.api_usage_schema import UsageAttr, rate_counter_id
from cachesync.exceptions import CacheSyncError, UsageStoreError
from cachesync.retry_policies import DEFAULT_RETRY_POLICY, RetryPolicy, error_code
from cachesync.stores.index_items import deserialize

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

T = TypeVar("T")

# Counters outlive their minute by this much: long enough for a clock a little off, short
# enough to keep the table small (DynamoDB's TTL deletes them eventually).
COUNTER_TTL_SECONDS: Final = 300


class RateCount(BaseModel):
    """A request's verdict from the counters of its key and minute."""

    model_config = ConfigDict(frozen=True)

    admitted: bool
    minute_count: int
    """Admitted requests of the minute, this one included if admitted."""
    second_count: int
    """Admitted requests of the second, this one included if admitted."""


class _LimitReachedError(CacheSyncError):
    """Internal: the condition refused the increment; carries the counter item as it was."""

    def __init__(self, item: dict[str, Any]) -> None:
        self.item = item
        super().__init__("limit reached")


class DynamoDBRateLimitStore:
    """Counts requests per key, minute and second in one DynamoDB table."""

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

    def count(
        self, key_id: str, epoch_second: int, *, per_minute: int, per_second: int
    ) -> RateCount:
        """Admit one request of ``key_id`` at ``epoch_second`` if neither its minute's nor its
        second's count has reached its limit, counting it; a refused request is not counted."""
        minute, second = divmod(epoch_second, 60)
        second_attribute = f"{UsageAttr.SECOND_COUNT_PREFIX}{second}"
        try:
            response = self._call(
                "UpdateItem",
                lambda: self._client.update_item(
                    TableName=self._table,
                    Key={UsageAttr.COUNTER_ID: {"S": rate_counter_id(key_id, minute)}},
                    UpdateExpression="ADD #n :one, #s :one SET #ttl = if_not_exists(#ttl, :ttl)",
                    ConditionExpression=(
                        # The minute's limit: a key gets per_minute requests a minute.
                        "(attribute_not_exists(#n) OR #n < :per_minute)"
                        # The burst: and at most per_second of them in any one second.
                        " AND (attribute_not_exists(#s) OR #s < :per_second)"
                    ),
                    ExpressionAttributeNames={
                        "#n": UsageAttr.MINUTE_COUNT,
                        "#s": second_attribute,
                        "#ttl": UsageAttr.EXPIRES_AT,
                    },
                    ExpressionAttributeValues={
                        ":one": {"N": "1"},
                        ":per_minute": {"N": str(per_minute)},
                        ":per_second": {"N": str(per_second)},
                        ":ttl": {"N": str((minute + 1) * 60 + COUNTER_TTL_SECONDS)},
                    },
                    ReturnValues="UPDATED_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                ),
            )
        except _LimitReachedError as reached:
            return RateCount(
                admitted=False,
                minute_count=int(reached.item.get(UsageAttr.MINUTE_COUNT, 0)),
                second_count=int(reached.item.get(second_attribute, 0)),
            )
        counted = deserialize(response.get("Attributes", {}))
        return RateCount(
            admitted=True,
            minute_count=int(counted.get(UsageAttr.MINUTE_COUNT, 1)),
            second_count=int(counted.get(second_attribute, 1)),
        )

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        try:
            return self._retry.call(operation, fn)
        except ClientError as error:
            raise _translate(operation, error) from error
        except BotoCoreError as error:
            raise UsageStoreError(operation, type(error).__name__, str(error)) from error


def _translate(operation: str, error: ClientError) -> CacheSyncError:
    """The one place DynamoDB error codes of the usage table become cachesync errors."""
    code = error_code(error)
    if code == "ConditionalCheckFailedException":
        # botocore adds the modelled Item (ReturnValuesOnConditionCheckFailure) to the response.
        response: dict[str, Any] = dict(error.response)
        return _LimitReachedError(deserialize(response.get("Item") or {}))
    return UsageStoreError(operation, code, str(error.response.get("Error", {}).get("Message")))
