"""The change feed table: what the feed published per document, and the analytics counters.

Layout: ``change_feed_schema.py``. A record's published state and its counters are written in
one transaction, conditioned on the record being newer than what was published: a stream record
delivered again changes nothing and counts nothing twice. DynamoDB error codes become cachesync
errors in exactly one function, :func:`_translate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from cachesync.change_analytics import LagIncrement, VolumeIncrement
from cachesync.change_events import DocumentSnapshot, Published
from cachesync.change_feed_schema import (
    LAG_MARK,
    PARTITION_KEY,
    SORT_KEY,
    VOLUME_MARK,
    FeedAttr,
    lag_sort_key,
    month_pk,
    published_key,
    volume_sort_key,
)
from cachesync.exceptions import CacheSyncError, ChangeFeedStoreError
from cachesync.ordering import format_time
from cachesync.retry_policies import DEFAULT_RETRY_POLICY, RetryPolicy, error_code
from cachesync.stores.index_items import deserialize, serialize

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import QueryInputTypeDef, TransactWriteItemTypeDef

T = TypeVar("T")

# Descriptive attributes of a volume item, so readers need not parse its sort key.
_DAY, _CUSTOMER, _STATUS, _KIND = "day", "customer", "status", "kind"


class VolumeRow(BaseModel):
    """The counters of one day, customer, status and kind."""

    model_config = ConfigDict(frozen=True)

    day: str
    customer: str
    status: str
    kind: str
    counters: dict[str, int]


class LagRow(BaseModel):
    """The sync-lag figures of one day."""

    model_config = ConfigDict(frozen=True)

    day: str
    counters: dict[str, int]


class _AlreadyAppliedError(CacheSyncError):
    """Internal: the transaction's condition failed, the record was applied before."""


class DynamoDBChangeFeedStore:
    """Reads and writes the change feed table with an injected DynamoDB client."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
    ) -> None:
        """``retry_policy``: transient errors; a retried commit that finds its own earlier
        success fails its condition and is reported as already applied."""
        self._client = client
        self._table = table_name
        self._retry = retry_policy

    def published(self, document_pk: str) -> Published | None:
        """What the feed last published for the document at index ``document_pk`` (consistent)."""
        response = self._call(
            "GetItem",
            lambda: self._client.get_item(
                TableName=self._table,
                Key=serialize(published_key(document_pk)),
                ConsistentRead=True,
            ),
        )
        raw = response.get("Item")
        if not raw:
            return None
        item = deserialize(raw)
        snapshot = item.get(FeedAttr.SNAPSHOT)
        return Published(
            snapshot=DocumentSnapshot.model_validate_json(snapshot) if snapshot else None,
            sequence=int(item[FeedAttr.SEQUENCE]),
        )

    def commit(
        self,
        document_pk: str,
        published: Published,
        volume: list[VolumeIncrement],
        lag: LagIncrement | None,
        now: datetime,
    ) -> bool:
        """Record ``published`` for the document and add its counters, all or nothing;
        ``False`` if a record at or after its sequence was committed before (a retry)."""
        state: dict[str, Any] = {
            **published_key(document_pk),
            FeedAttr.SEQUENCE: published.sequence,
            FeedAttr.UPDATED_AT: format_time(now),
        }
        if published.snapshot is not None:
            state[FeedAttr.SNAPSHOT] = published.snapshot.model_dump_json()
        items: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": serialize(state),
                    # Stream records of one item come in order, but a batch may be delivered
                    # again: only a newer record replaces the published state (and, in this
                    # transaction, adds its counters), so nothing is counted twice.
                    "ConditionExpression": "attribute_not_exists(#seq) OR #seq < :seq",
                    "ExpressionAttributeNames": {"#seq": FeedAttr.SEQUENCE},
                    "ExpressionAttributeValues": {":seq": {"N": str(published.sequence)}},
                }
            }
        ]
        for increment in volume:
            described = {
                _DAY: increment.day,
                _CUSTOMER: increment.customer,
                _STATUS: increment.status,
                _KIND: increment.kind,
            }
            sort_key = volume_sort_key(
                increment.day, increment.customer, increment.status, increment.kind
            )
            items.append(self._counter_update(increment.day, sort_key, increment.adds, described))
        if lag is not None:
            items.append(
                self._counter_update(lag.day, lag_sort_key(lag.day), lag.adds(), {_DAY: lag.day})
            )
        try:
            self._call(
                "TransactWriteItems",
                lambda: self._client.transact_write_items(TransactItems=items),
            )
        except _AlreadyAppliedError:
            return False
        return True

    def volume(self, since_day: str, until_day: str) -> list[VolumeRow]:
        """Every volume row of the days from ``since_day`` to ``until_day`` (inclusive)."""
        return [
            VolumeRow(
                day=item[_DAY],
                customer=item[_CUSTOMER],
                status=item[_STATUS],
                kind=item[_KIND],
                counters=_counters(item),
            )
            for item in self._days(since_day, until_day)
            if f"#{VOLUME_MARK}#" in item[SORT_KEY]
        ]

    def lag(self, since_day: str, until_day: str) -> list[LagRow]:
        """The sync-lag rows of the days from ``since_day`` to ``until_day`` (inclusive)."""
        return [
            LagRow(day=item[_DAY], counters=_counters(item))
            for item in self._days(since_day, until_day)
            if item[SORT_KEY].endswith(f"#{LAG_MARK}")
        ]

    def _days(self, since_day: str, until_day: str) -> Iterator[dict[str, Any]]:
        for month in _months(since_day, until_day):
            request: QueryInputTypeDef = {
                "TableName": self._table,
                "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :from AND :to",
                "ExpressionAttributeNames": {"#pk": PARTITION_KEY, "#sk": SORT_KEY},
                "ExpressionAttributeValues": {
                    ":pk": {"S": month_pk(month)},
                    ":from": {"S": f"{since_day}#"},
                    # "~" sorts after every character a sort key holds after the day.
                    ":to": {"S": f"{until_day}#~"},
                },
            }
            while True:
                response = self._call("Query", partial(self._client.query, **request))
                yield from (deserialize(raw) for raw in response.get("Items", []))
                if "LastEvaluatedKey" not in response:
                    break
                request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _counter_update(
        self, day: str, sort_key: str, adds: dict[str, int], described: dict[str, str]
    ) -> TransactWriteItemTypeDef:
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        additions: list[str] = []
        for number, (name, amount) in enumerate(sorted(adds.items())):
            names[f"#a{number}"], values[f":a{number}"] = name, {"N": str(amount)}
            additions.append(f"#a{number} :a{number}")
        assignments: list[str] = []
        for number, (name, value) in enumerate(sorted(described.items())):
            names[f"#d{number}"], values[f":d{number}"] = name, {"S": value}
            assignments.append(f"#d{number} = :d{number}")
        return {
            "Update": {
                "TableName": self._table,
                "Key": serialize({PARTITION_KEY: month_pk(day), SORT_KEY: sort_key}),
                "UpdateExpression": f"ADD {', '.join(additions)} SET {', '.join(assignments)}",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        try:
            return self._retry.call(operation, fn)
        except ClientError as error:
            raise _translate(operation, error) from error
        except BotoCoreError as error:
            raise ChangeFeedStoreError(operation, type(error).__name__, str(error)) from error


def _counters(item: dict[str, Any]) -> dict[str, int]:
    return {
        name: int(value)
        for name, value in item.items()
        if name not in (PARTITION_KEY, SORT_KEY, _DAY, _CUSTOMER, _STATUS, _KIND)
    }


def _months(since_day: str, until_day: str) -> list[str]:
    """The ``YYYY-MM-01`` of every month from ``since_day``'s to ``until_day``'s."""
    year, month = int(since_day[:4]), int(since_day[5:7])
    end = (int(until_day[:4]), int(until_day[5:7]))
    months: list[str] = []
    while (year, month) <= end:
        months.append(f"{year:04d}-{month:02d}-01")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _translate(operation: str, error: ClientError) -> CacheSyncError:
    """The one place DynamoDB error codes of the change feed table become cachesync errors."""
    code = error_code(error)
    message = str(error.response.get("Error", {}).get("Message", error))
    if code == "TransactionCanceledException":
        # botocore adds the modelled CancellationReasons to the response.
        response: dict[str, Any] = dict(error.response)
        reasons: list[dict[str, Any]] = response.get("CancellationReasons", [])
        if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
            return _AlreadyAppliedError("the record was committed before")
        message = f"{message} (reasons: {[r.get('Code') for r in reasons]})"
    return ChangeFeedStoreError(operation, code, message)
