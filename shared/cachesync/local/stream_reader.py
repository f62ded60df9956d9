"""Reads a DynamoDB table's stream for the local stack (in AWS, an event source mapping does).

DynamoDB Local serves DynamoDB Streams like AWS: shards, iterators and ``GetRecords`` pages with
both images. Errors become :class:`~cachesync.exceptions.IndexStreamError` in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from cachesync.exceptions import IndexStreamError
from cachesync.retry_policies import DEFAULT_RETRY_POLICY, RetryPolicy, error_code

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

T = TypeVar("T")

# GetRecords' own maximum.
PAGE_LIMIT: Final = 1000


class DynamoDBStreamReader:
    """The records of one table stream, shard by shard, resuming after a sequence number."""

    def __init__(
        self,
        client: DynamoDBStreamsClient,
        stream_arn: str,
        *,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
    ) -> None:
        self._client = client
        self._stream_arn = stream_arn
        self._retry = retry_policy

    def shard_ids(self) -> list[str]:
        """Every shard of the stream, parents before their children."""
        return [shard_id for shard_id, _ in self.shards()]

    def shards(self) -> list[tuple[str, str | None]]:
        """Every shard of the stream with its parent (if the stream still has it), parents
        before their children."""
        shards: list[dict[str, Any]] = []
        start: dict[str, str] = {}
        while True:
            response = self._call(
                "DescribeStream",
                lambda start=start: self._client.describe_stream(  # type: ignore[misc]
                    StreamArn=self._stream_arn, **start
                ),
            )
            description = response["StreamDescription"]
            shards += [dict(shard) for shard in description.get("Shards", [])]
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            start = {"ExclusiveStartShardId": last}
        known = {shard["ShardId"] for shard in shards}
        ordered: dict[str, str | None] = {}
        while len(ordered) < len(shards):
            for shard in shards:
                parent = shard.get("ParentShardId")
                kept = parent if parent in known else None
                if shard["ShardId"] not in ordered and (kept is None or kept in ordered):
                    ordered[shard["ShardId"]] = kept
        return list(ordered.items())

    def records(self, shard_id: str, after_sequence: str | None = None) -> Iterator[dict[str, Any]]:
        """The shard's records available now, from its start or after ``after_sequence``."""
        position: dict[str, str] = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after_sequence}
            if after_sequence
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        response = self._call(
            "GetShardIterator",
            lambda: self._client.get_shard_iterator(
                StreamArn=self._stream_arn,
                ShardId=shard_id,
                **position,  # type: ignore[arg-type]
            ),
        )
        iterator = response.get("ShardIterator")
        while iterator:
            page = self._call(
                "GetRecords",
                lambda iterator=iterator: self._client.get_records(  # type: ignore[misc]
                    ShardIterator=iterator, Limit=PAGE_LIMIT
                ),
            )
            records = page.get("Records", [])
            yield from (dict(record) for record in records)
            if not records:
                # An open shard hands out a next iterator forever: stop at its present end.
                break
            iterator = page.get("NextShardIterator")

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        try:
            return self._retry.call(operation, fn)
        except ClientError as error:
            message = str(error.response.get("Error", {}).get("Message", error))
            raise IndexStreamError(operation, error_code(error), message) from error
        except BotoCoreError as error:
            raise IndexStreamError(operation, type(error).__name__, str(error)) from error
