"""Run the sync use case over a whole Lambda event, one record failing alone.

* SQS events (the production path) go through Powertools' ``BatchProcessor``: a record that fails
  is reported in ``batchItemFailures`` and comes back after the visibility timeout, then to the
  DLQ; the others are deleted. A batch where every record fails still returns the list.
* A direct S3 notification (asynchronous invocation) applies every record, then raises
  :class:`EventProcessingError` if any failed, so Lambda retries the event (records already
  applied are duplicates the second time) and finally sends it to the on-failure destination.
* An EventBridge event carries one change; its failure is the invocation's failure.

Every log line carries the object key (and the SQS message id) of the record at hand.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from cachesync.changes import ObjectChange, Operation, changes_from_body, changes_from_message
from cachesync.exceptions import CacheSyncError, EventProcessingError
from cachesync.sync import S3EventSync, SyncOutcome, SyncResult

_OUTCOME_METRICS = {
    SyncOutcome.APPLIED: "EventsApplied",
    SyncOutcome.DUPLICATE: "EventsDuplicate",
    SyncOutcome.STALE: "EventsStale",
    SyncOutcome.IGNORED: "EventsIgnored",
}


class S3EventProcessor:
    """Applies every change in a Lambda event with ``sync``; the handler's entry point calls it."""

    def __init__(
        self, sync: S3EventSync, expected: Operation, *, logger: Logger, metrics: Metrics
    ) -> None:
        self._sync = sync
        self._expected = expected
        self._logger = logger
        self._metrics = metrics

    def handle(self, event: Any, context: LambdaContext | None) -> dict[str, Any]:
        """Process ``event`` (SQS, direct S3 or EventBridge) and return Lambda's response."""
        if _is_sqs_event(event):
            processor = BatchProcessor(
                event_type=EventType.SQS, raise_on_entire_batch_failure=False
            )
            response = process_partial_response(
                event=event,
                record_handler=self._process_sqs_record,
                processor=processor,
                context=context,
            )
            return dict(response)
        try:
            changes = changes_from_message(event)
        except CacheSyncError as error:
            self._record_failure(error)
            raise
        results: list[SyncResult] = []
        failures: list[str] = []
        for change in changes:
            try:
                results.append(self._apply(change))
            except CacheSyncError as error:
                failures.append(f"s3://{change.bucket}/{change.key}: {error}")
        if failures:
            raise EventProcessingError(failures)
        return {"results": [result.model_dump(mode="json") for result in results]}

    def _process_sqs_record(self, record: SQSRecord) -> None:
        self._logger.append_keys(message_id=record.message_id)
        try:
            try:
                changes = changes_from_body(record.body)
            except CacheSyncError as error:
                self._record_failure(error)
                raise
            if not changes:
                self._logger.info("s3:TestEvent or empty notification acknowledged")
            for change in changes:
                self._apply(change)
        finally:
            self._logger.remove_keys(["message_id"])

    def _apply(self, change: ObjectChange) -> SyncResult:
        self._logger.append_keys(object_key=change.key, bucket=change.bucket)
        try:
            result = self._sync.apply(change, self._expected)
        except CacheSyncError as error:
            self._record_failure(error)
            raise
        else:
            self._metrics.add_metric(
                name=_OUTCOME_METRICS[result.outcome], unit=MetricUnit.Count, value=1
            )
            if result.outcome is not SyncOutcome.IGNORED:
                self._metrics.add_metric(
                    name="SyncLag", unit=MetricUnit.Milliseconds, value=result.lag_seconds * 1000
                )
            self._logger.info(
                "change %s",
                result.outcome.value,
                extra={
                    "reason": result.reason,
                    "event_name": change.event_name,
                    "sequencer": change.raw_sequencer,
                },
            )
            return result
        finally:
            self._logger.remove_keys(["object_key", "bucket"])

    def _record_failure(self, error: CacheSyncError) -> None:
        reason = type(error).__name__
        self._metrics.add_metric(
            name=f"EventsFailed{reason.removesuffix('Error')}", unit=MetricUnit.Count, value=1
        )
        self._metrics.add_metric(name="EventsFailed", unit=MetricUnit.Count, value=1)
        self._logger.error("change failed: %s", error, extra={"reason": reason})


def _is_sqs_event(event: Any) -> bool:
    if not isinstance(event, dict):
        return False
    records = event.get("Records")
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)
    )
