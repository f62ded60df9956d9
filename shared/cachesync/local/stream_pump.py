"""A stream pump that behaves like Lambda's DynamoDB Streams event source mapping.

It reads each shard of a table's stream in order, invokes the function's handler with real
DynamoDB Streams Lambda events (batches of up to ``batch_size`` records), and on a reported
failure (``batchItemFailures``) resumes from the failed record, as Lambda checkpoints a stream.
After ``max_attempts`` failed invocations on the same record it skips past it and logs it (what
the event source mapping's on-failure destination receives in AWS). New shards (after a split)
are picked up when the shard list is read again.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from cachesync.local.lambda_functions import LambdaHandler, LocalLambdaContext
from cachesync.local.stream_reader import DynamoDBStreamReader

logger = logging.getLogger(__name__)

# As the event source mapping's MaximumRetryAttempts would be set (infra/): then skipped.
MAX_ATTEMPTS: Final = 3
# DynamoDB Local (3.x) does delete TTL-expired items, and streams each such removal with this
# event name (its SDK's enum has no name for it) and no userIdentity. AWS streams it as a
# REMOVE by the DynamoDB service principal: the pump hands the handler AWS's shape.
_LOCAL_TTL_EVENT_NAME: Final = "UNKNOWN_TO_SDK_VERSION"
_TTL_USER_IDENTITY: Final = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


@dataclass
class StreamPumpStats:
    """What the pump has done so far."""

    records: int = 0
    invocations: int = 0
    failed_invocations: int = 0
    skipped: list[str] = field(default_factory=list)
    """Sequence numbers given up on after ``max_attempts`` (the on-failure destination's)."""


class StreamPump:
    """Feeds one table stream's records to one Lambda handler in this process."""

    def __init__(
        self,
        reader: DynamoDBStreamReader,
        handler: LambdaHandler,
        *,
        function_name: str,
        stream_arn: str,
        batch_size: int = 100,
        max_attempts: int = MAX_ATTEMPTS,
        region: str = "us-east-1",
    ) -> None:
        self._reader = reader
        self._handler = handler
        self._function_name = function_name
        self._stream_arn = stream_arn
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._region = region
        self._positions: dict[str, str | None] = {}
        """Per shard: the last sequence number done (``None``: from its start)."""
        self._attempts: dict[str, int] = {}
        self.stats = StreamPumpStats()

    def poll_once(self) -> int:
        """Deliver every record available now, shard by shard; the number delivered."""
        delivered = 0
        # A shard whose parent failed a record waits (as Lambda reads a child only once its
        # parent is done): its later records of the same item must not be applied first.
        blocked: set[str] = set()
        for shard, parent in self._reader.shards():
            if parent in blocked:
                blocked.add(shard)
                continue
            records = list(self._reader.records(shard, self._positions.get(shard)))
            for start in range(0, len(records), self._batch_size):
                batch = records[start : start + self._batch_size]
                done = self._invoke(shard, batch)
                delivered += done
                if done < len(batch):
                    blocked.add(shard)
                    break  # the shard resumes from its failed record at the next poll
        return delivered

    def drain(self, *, idle_polls: int = 2) -> StreamPumpStats:
        """Poll until nothing was delivered ``idle_polls`` times in a row."""
        idle = 0
        while idle < idle_polls:
            idle = idle + 1 if self.poll_once() == 0 else 0
        return self.stats

    def run(self, stop: threading.Event, *, interval_seconds: float = 0.2) -> None:
        """Poll until ``stop`` is set (a stream has no long poll: wait between empty polls)."""
        while not stop.is_set():
            try:
                delivered = self.poll_once()
            except Exception:
                logger.exception("the stream pump of %s failed a poll", self._function_name)
                delivered = 0
            if delivered == 0:
                stop.wait(interval_seconds)

    def _invoke(self, shard: str, records: list[dict[str, Any]]) -> int:
        """Invoke the handler with ``records``; how many of them are done."""
        event = {"Records": [self._lambda_record(record) for record in records]}
        self.stats.invocations += 1
        try:
            response = self._handler(event, LocalLambdaContext(function_name=self._function_name))
        except Exception:
            logger.exception("%s failed its whole batch", self._function_name)
            response = {
                "batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]
            }
        failures = [f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])]
        sequences = [record["dynamodb"]["SequenceNumber"] for record in records]
        if not failures:
            self._done(shard, sequences[-1], len(records))
            return len(records)
        self.stats.failed_invocations += 1
        # Lambda resumes from the lowest failed sequence number.
        failed = min(failures, key=int)
        index = sequences.index(failed) if failed in sequences else 0
        if index:
            self._done(shard, sequences[index - 1], index)
        self._attempts[failed] = self._attempts.get(failed, 0) + 1
        if self._attempts[failed] < self._max_attempts:
            return index
        logger.error(
            "%s gave up on stream record %s after %d attempts",
            self._function_name,
            failed,
            self._attempts[failed],
        )
        self.stats.skipped.append(failed)
        self._done(shard, failed, 1)
        return index + 1

    def _done(self, shard: str, sequence: str, count: int) -> None:
        self._positions[shard] = sequence
        self.stats.records += count

    def _lambda_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """A GetRecords record as Lambda delivers it (epoch seconds, event source fields)."""
        stream = dict(record["dynamodb"])
        created = stream.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            stream["ApproximateCreationDateTime"] = created.timestamp()
        fields = {name: value for name, value in record.items() if name != "dynamodb"}
        if fields.get("eventName") == _LOCAL_TTL_EVENT_NAME and "NewImage" not in stream:
            fields["eventName"] = "REMOVE"
            fields["userIdentity"] = dict(_TTL_USER_IDENTITY)
        return {
            **fields,
            "dynamodb": stream,
            "eventSource": "aws:dynamodb",
            "eventSourceARN": self._stream_arn,
            "awsRegion": self._region,
        }
