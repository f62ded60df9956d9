"""The local stream pump over DynamoDB Local's real stream: order, checkpoints and retries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from cachesync.index_schema import create_table_request
from cachesync.local import LocalStack
from cachesync.local.stream_pump import StreamPump
from cachesync.local.stream_reader import DynamoDBStreamReader
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from tests.integration.test_change_feed import entry


@dataclass
class RecordingHandler:
    """A handler that keeps the sequence numbers it saw and fails chosen records a few times."""

    fail: dict[str, int]
    """Sequence number -> how many more times to report it failed."""
    seen: list[str]

    def __call__(self, event: dict[str, Any], _context: Any) -> dict[str, Any]:
        for record in event["Records"]:
            sequence = record["dynamodb"]["SequenceNumber"]
            assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], float)
            if self.fail.get(sequence, 0) > 0:
                self.fail[sequence] -= 1
                return {"batchItemFailures": [{"itemIdentifier": sequence}]}
            self.seen.append(sequence)
        return {"batchItemFailures": []}


Stream = tuple[DynamoDBIndexStore, DynamoDBStreamReader, str]


@pytest.fixture
def stream(local_stack: LocalStack) -> Iterator[Stream]:
    dynamodb = local_stack.client("dynamodb")
    name = f"pump-{uuid.uuid4().hex[:8]}"
    arn = dynamodb.create_table(**create_table_request(name))["TableDescription"]["LatestStreamArn"]
    reader = DynamoDBStreamReader(local_stack.client("dynamodbstreams"), arn)
    yield DynamoDBIndexStore(dynamodb, name), reader, arn
    dynamodb.delete_table(TableName=name)


def test_records_arrive_once_in_order_and_a_failed_one_is_retried_before_the_rest(
    stream: Stream,
) -> None:
    # Given six single-customer documents indexed (six stream records)
    index, reader, arn = stream
    for number in range(6):
        index.put_document(entry(f"d{number}.json"))
    sequences = [
        r["dynamodb"]["SequenceNumber"] for s in reader.shard_ids() for r in reader.records(s)
    ]
    # And a handler that fails the third record twice
    handler = RecordingHandler(fail={sequences[2]: 2}, seen=[])
    pump = StreamPump(reader, handler, function_name="change_feed", stream_arn=arn, batch_size=4)
    # When the pump drains the stream
    stats = pump.drain()
    # Then every record was handled once, in stream order, the failed one before the rest
    assert handler.seen == sequences
    assert stats.failed_invocations == 2
    assert stats.skipped == []
    # And nothing more arrives until the index changes again
    assert pump.poll_once() == 0
    index.put_document(entry("late.json"))
    assert pump.poll_once() == 1
    assert len(handler.seen) == len(sequences) + 1


def test_a_record_that_keeps_failing_is_skipped_after_the_attempts_and_named(
    stream: Stream,
) -> None:
    # Given three records and a handler that always fails the second
    index, reader, arn = stream
    for number in range(3):
        index.put_document(entry(f"p{number}.json"))
    sequences = [
        r["dynamodb"]["SequenceNumber"] for s in reader.shard_ids() for r in reader.records(s)
    ]
    handler = RecordingHandler(fail={sequences[1]: 1_000}, seen=[])
    pump = StreamPump(reader, handler, function_name="change_feed", stream_arn=arn, max_attempts=3)
    # When the pump drains the stream
    stats = pump.drain()
    # Then the poison record is given up on after three attempts and the others are handled
    assert stats.skipped == [sequences[1]]
    assert handler.seen == [sequences[0], sequences[2]]
