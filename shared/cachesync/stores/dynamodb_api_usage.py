"""The API usage table: rate-limit counters and signed-request nonces, each a conditional write.

Layout: ``api_usage_schema.py``. DynamoDB error codes become cachesync errors in exactly one
function, :func:`_translate`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from cachesync.api_usage_schema import UsageAttr, nonce_item_id, rate_counter_id
from cachesync.exceptions import CacheSyncError, UsageStoreError
from cachesync.retry_policies import DEFAULT_RETRY_POLICY, RetryPolicy, error_code
from cachesync.stores.index_items import deserialize

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

T = TypeVar("T")

# Counters outlive their minute by this much: long enough for a clock a little off, short
# enough to keep the table small (DynamoDB's TTL deletes them eventually).
COUNTER_TTL_SECONDS: Final = 300
# One attempt: a counter update retried after a lost answer would count the request twice, and
# the request it gates must not wait; a failure goes to the limiter's failure mode instead.
COUNTER_RETRY_POLICY: Final = RetryPolicy(attempts=1)


class RateCount(BaseModel):
    """A request's verdict from the counters of its key and minute."""

    model_config = ConfigDict(frozen=True)

    admitted: bool
    minute_count: int
    """Requests of the minute admitted or leased (by every instance), this reservation
    included if admitted."""
    second_count: int
    """Requests of the second admitted or leased, this reservation included if admitted."""


class _ConditionRefusedError(CacheSyncError):
    """Internal: a write's condition failed; carries the item as it was."""

    def __init__(self, item: dict[str, Any]) -> None:
        self.item = item
        super().__init__("condition refused")


class DynamoDBApiUsageStore:
    """Counts requests and remembers nonces in one DynamoDB table, for every API instance."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        counter_retry_policy: RetryPolicy = COUNTER_RETRY_POLICY,
    ) -> None:
        """``retry_policy``: nonce writes (a retry recognises its own claim);
        ``counter_retry_policy``: counter updates (see :data:`COUNTER_RETRY_POLICY`)."""
        self._client = client
        self._table = table_name
        self._retry = retry_policy
        self._counter_retry = counter_retry_policy

    def count(
        self, key_id: str, epoch_second: int, *, per_minute: int, per_second: int
    ) -> RateCount:
        """Admit one request of ``key_id`` at ``epoch_second`` if neither its minute's nor its
        second's count has reached its limit, counting it; a refused request is not counted."""
        return self.lease(
            key_id,
            epoch_second,
            minute_tokens=1,
            second_tokens=1,
            per_minute=per_minute,
            per_second=per_second,
        )

    def lease(
        self,
        key_id: str,
        epoch_second: int,
        *,
        minute_tokens: int,
        second_tokens: int,
        per_minute: int,
        per_second: int,
    ) -> RateCount:
        """Reserve ``minute_tokens`` requests of ``key_id``'s minute and ``second_tokens`` of its
        second (``epoch_second``) in one conditional update, all or nothing: admitted only if
        neither count would pass its limit. ``second_tokens`` may exceed ``minute_tokens``: the
        difference is requests the caller already holds of this minute, now charged to this
        second's burst (``api/request_limits.py``). Refused, nothing is counted and the counts
        are the item's as it was."""
        minute, second = divmod(epoch_second, 60)
        second_attribute = f"{UsageAttr.SECOND_COUNT_PREFIX}{second}"
        try:
            response = self._call(
                self._counter_retry,
                "UpdateItem",
                lambda: self._client.update_item(
                    TableName=self._table,
                    Key={UsageAttr.COUNTER_ID: {"S": rate_counter_id(key_id, minute)}},
                    UpdateExpression=(
                        "ADD #n :minute_tokens, #s :second_tokens, #l :one"
                        " SET #ttl = if_not_exists(#ttl, :ttl)"
                    ),
                    ConditionExpression=(
                        # The minute's limit: a key gets per_minute requests a minute, so the
                        # count may take minute_tokens more only if it stays within it.
                        "(attribute_not_exists(#n) OR #n <= :minute_room)"
                        # The burst: and at most per_second of them in any one second.
                        " AND (attribute_not_exists(#s) OR #s <= :second_room)"
                    ),
                    ExpressionAttributeNames={
                        "#n": UsageAttr.MINUTE_COUNT,
                        "#s": second_attribute,
                        "#l": UsageAttr.LEASE_COUNT,
                        "#ttl": UsageAttr.EXPIRES_AT,
                    },
                    ExpressionAttributeValues={
                        ":one": {"N": "1"},
                        ":minute_tokens": {"N": str(minute_tokens)},
                        ":second_tokens": {"N": str(second_tokens)},
                        ":minute_room": {"N": str(per_minute - minute_tokens)},
                        ":second_room": {"N": str(per_second - second_tokens)},
                        ":ttl": {"N": str((minute + 1) * 60 + COUNTER_TTL_SECONDS)},
                    },
                    ReturnValues="UPDATED_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                ),
            )
        except _ConditionRefusedError as refused:
            return RateCount(
                admitted=False,
                minute_count=int(refused.item.get(UsageAttr.MINUTE_COUNT, 0)),
                second_count=int(refused.item.get(second_attribute, 0)),
            )
        counted = deserialize(response.get("Attributes", {}))
        return RateCount(
            admitted=True,
            minute_count=int(counted.get(UsageAttr.MINUTE_COUNT, minute_tokens)),
            second_count=int(counted.get(second_attribute, second_tokens)),
        )

    def remember(self, key_id: str, nonce: str, expires_at: int) -> bool:
        """Record ``nonce`` of ``key_id`` until ``expires_at``; ``False`` if already recorded.

        Each call writes a claim of its own: a put retried after a lost answer finds its own
        claim and is not taken for a replay.
        """
        claim = secrets.token_hex(8)
        try:
            self._call(
                self._retry,
                "PutItem",
                lambda: self._client.put_item(
                    TableName=self._table,
                    Item={
                        UsageAttr.COUNTER_ID: {"S": nonce_item_id(key_id, nonce)},
                        UsageAttr.CLAIM: {"S": claim},
                        UsageAttr.EXPIRES_AT: {"N": str(expires_at)},
                    },
                    # A nonce is used once: a replay within its window finds the item.
                    ConditionExpression="attribute_not_exists(#id)",
                    ExpressionAttributeNames={"#id": UsageAttr.COUNTER_ID},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                ),
            )
        except _ConditionRefusedError as seen:
            return seen.item.get(UsageAttr.CLAIM) == claim
        return True

    def _call(self, retry: RetryPolicy, operation: str, fn: Callable[[], T]) -> T:
        try:
            return retry.call(operation, fn)
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
        return _ConditionRefusedError(deserialize(response.get("Item") or {}))
    return UsageStoreError(operation, code, str(error.response.get("Error", {}).get("Message")))
