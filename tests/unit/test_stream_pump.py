"""The local stream pump's shard order, with an in-memory stream (no server)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from cachesync.local.stream_pump import StreamPump
from cachesync.local.stream_reader import DynamoDBStreamReader


def record(sequence: int) -> dict[str, Any]:
    return {
        "eventName": "MODIFY",
        "dynamodb": {
            "SequenceNumber": str(sequence),
            "ApproximateCreationDateTime": datetime(2026, 12, 1, tzinfo=UTC),
        },
    }


class SplitStream:
    """A parent shard and the child it split into, records in memory."""

    def __init__(self) -> None:
        self.records_of = {"parent": [record(1), record(2)], "child": [record(3)]}

    def shards(self) -> list[tuple[str, str | None]]:
        return [("parent", None), ("child", "parent")]

    def records(self, shard_id: str, after_sequence: str | None = None) -> list[dict[str, Any]]:
        after = int(after_sequence or 0)
        return [
            r for r in self.records_of[shard_id] if int(r["dynamodb"]["SequenceNumber"]) > after
        ]


def test_a_child_shard_waits_while_its_parent_has_a_failed_record() -> None:
    # Given a split stream and a handler that fails record 2 (in the parent) once
    seen: list[str] = []
    failures = {"2": 1}

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        for item in event["Records"]:
            sequence = item["dynamodb"]["SequenceNumber"]
            if failures.get(sequence, 0):
                failures[sequence] -= 1
                return {"batchItemFailures": [{"itemIdentifier": sequence}]}
            seen.append(sequence)
        return {"batchItemFailures": []}

    pump = StreamPump(
        cast(DynamoDBStreamReader, SplitStream()),
        handler,
        function_name="change_feed",
        stream_arn="arn:stream",
    )
    # When it polls once, then again
    pump.poll_once()
    after_first = list(seen)
    pump.poll_once()
    # Then the child's record waited for the parent's retried one: stream order is kept
    assert after_first == ["1"]
    assert seen == ["1", "2", "3"]
