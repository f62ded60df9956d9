"""The change feed's Lambda batch: DynamoDB Streams records in, in order, up to the first failure.

A stream is ordered per item, and the feed decides each record against the state the previous
one left: a record may not be applied past a failed one of the same document. So the batch is
processed in order and stops at the first failure, which it reports as the batch's only failed
item: Lambda's stream checkpointing then retries from that record on (records after it that
were never tried come again; records before it are done). With ``BisectBatchOnFunctionError``,
bounded retries and an on-failure destination on the event source mapping, a record that keeps
failing ends up in that destination instead of holding up its shard forever.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from cachesync.change_feed import ChangeFeed, stream_change
from cachesync.exceptions import CacheSyncError

UNEXPECTED_METRIC = "ChangeFeedUnexpectedErrors"


class ChangeFeedProcessor:
    """Runs one Lambda event of the index stream through the change feed."""

    def __init__(self, feed: ChangeFeed, *, logger: Logger, metrics: Metrics) -> None:
        self._feed = feed
        self._logger = logger
        self._metrics = metrics

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        """Process ``event``'s records in order; Lambda's partial batch response."""
        published: Counter[str] = Counter()
        ignored = 0
        failures: list[dict[str, str]] = []
        for record in event.get("Records", []):
            sequence = _sequence_number(record)
            try:
                decision = self._feed.process(stream_change(record))
            except Exception as error:  # noqa: BLE001 - reported; the batch is retried from here
                self._failed(sequence, error, unexpected=not isinstance(error, CacheSyncError))
                failures.append({"itemIdentifier": sequence})
                break
            if decision.event is None:
                ignored += 1
                self._logger.debug("record ignored: %s", decision.ignored_because)
                continue
            published[decision.event.type.value] += 1
            self._logger.info(
                "published %s",
                decision.event.type.value,
                extra={"event_id": decision.event.id, "object_key": decision.event.key},
            )
        for event_type, count in sorted(published.items()):
            self._metrics.add_metric(
                name=f"ChangeEvents.{event_type}", unit=MetricUnit.Count, value=count
            )
        self._metrics.add_metric(name="ChangeRecordsIgnored", unit=MetricUnit.Count, value=ignored)
        return {"batchItemFailures": failures}

    def _failed(self, sequence: str, error: Exception, *, unexpected: bool) -> None:
        self._metrics.add_metric(name="ChangeFeedFailures", unit=MetricUnit.Count, value=1)
        if unexpected:
            self._metrics.add_metric(name=UNEXPECTED_METRIC, unit=MetricUnit.Count, value=1)
        self._logger.error(
            "stream record failed; the batch stops here and is retried from it: %s",
            error,
            extra={"sequence_number": sequence, "reason": type(error).__name__},
            exc_info=(type(error), error, error.__traceback__) if unexpected else None,
        )


def _sequence_number(record: Any) -> str:
    """The record's sequence number (its batch item identifier); ``""`` when it has none.

    Read before the record is parsed, from whatever shape it has: a malformed record must be
    reported (with an empty identifier Lambda retries the whole batch), never crash the batch.
    """
    stream = record.get("dynamodb") if isinstance(record, dict) else None
    sequence = stream.get("SequenceNumber") if isinstance(stream, dict) else None
    return str(sequence) if isinstance(sequence, str | int) else ""
