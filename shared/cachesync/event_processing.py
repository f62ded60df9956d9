"""Run the sync use case over a whole Lambda event, one record failing alone.

* SQS events (the production path) go through Powertools' ``BatchProcessor``: a record that fails
  is reported in ``batchItemFailures`` and comes back after the visibility timeout, then to the
  DLQ; the others are deleted. A batch where every record fails still returns the list.
* A direct S3 notification (asynchronous invocation) applies every record, then raises
  :class:`EventProcessingError` if any failed, so Lambda retries the event (records already
  applied are duplicates the second time) and finally sends it to the on-failure destination.
* An EventBridge event carries one change; its failure is the invocation's failure.

**Concurrency.** The changes of one event are applied by up to ``workers`` threads: changes are
grouped by object key, each key's changes are applied one after the other in the order the event
lists them (the order SQS delivered the records), and different keys run in parallel. The
workers only apply changes and return what happened; every log line and every metric is written
afterwards by the invoking thread, record by record in the event's order, so Powertools' Logger
(whose appended keys are shared by all threads) and Metrics (a plain dict flushed at the end of
the invocation) are only ever used by one thread.

Every log line carries the object key (and the SQS message id) of the record at hand. Failures
are logged at ERROR and counted: ``EventsFailed`` and ``EventsFailed<Reason>`` for cachesync's
errors, ``EventsFailedUnexpected`` for anything else (a bug, or an error nobody translated).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from cachesync.changes import ObjectChange, Operation, changes_from_body, changes_per_record
from cachesync.exceptions import CacheSyncError, EventProcessingError
from cachesync.sync import SyncOutcome, SyncResult

_OUTCOME_METRICS = {
    SyncOutcome.APPLIED: "EventsApplied",
    SyncOutcome.DUPLICATE: "EventsDuplicate",
    SyncOutcome.STALE: "EventsStale",
    SyncOutcome.IGNORED: "EventsIgnored",
}
UNEXPECTED_METRIC: Final = "EventsFailedUnexpected"


class ChangeApplier(Protocol):
    """What the processor needs of the sync use case (:class:`~cachesync.sync.S3EventSync`)."""

    def apply(self, change: ObjectChange, expected: Operation) -> SyncResult:
        """Apply one change of the ``expected`` operation to the index."""
        ...


@dataclass(slots=True)
class _Applied:
    """What applying one change did: its result, or the exception it raised."""

    change: ObjectChange
    result: SyncResult | None = None
    error: Exception | None = None


@dataclass(slots=True)
class _RecordOutcome:
    """One SQS record: the changes its body announced (or why it could not be read)."""

    parse_error: Exception | None = None
    applied: list[_Applied] = field(default_factory=list)


class S3EventProcessor:
    """Applies every change in a Lambda event with ``sync``; the handler's entry point calls it."""

    def __init__(
        self,
        sync: ChangeApplier,
        expected: Operation,
        *,
        logger: Logger,
        metrics: Metrics,
        workers: int = 1,
    ) -> None:
        """``workers``: changes applied at once (different keys only); 1 applies them in turn."""
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._sync = sync
        self._expected = expected
        self._logger = logger
        self._metrics = metrics
        self._workers = workers
        # Kept for the life of the execution environment: threads are started once, at the
        # first batch, not per invocation.
        self._pool = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cachesync-sync")
            if workers > 1
            else None
        )

    def handle(self, event: Any, context: LambdaContext | None) -> dict[str, Any]:
        """Process ``event`` (SQS, direct S3 or EventBridge) and return Lambda's response."""
        if _is_sqs_event(event):
            return self._handle_sqs(event, context)
        try:
            parsed = changes_per_record(event)
        except CacheSyncError as error:
            self._record_failure(error)
            raise
        # A malformed record fails alone: the others are applied, then the invocation fails
        # naming it (Lambda retries the event; applied records are duplicates the second time).
        failures: list[str] = []
        changes: list[ObjectChange] = []
        for position, record in enumerate(parsed):
            if isinstance(record, CacheSyncError):
                self._record_failure(record)
                failures.append(f"record {position}: {record}")
            else:
                changes.extend(record)
        applied = self._apply_all(changes)
        results: list[SyncResult] = []
        for outcome in applied:
            failed = self._report(outcome)
            if failed is None and outcome.result is not None:
                results.append(outcome.result)
            else:
                failures.append(f"s3://{outcome.change.bucket}/{outcome.change.key}: {failed}")
        if failures:
            raise EventProcessingError(failures)
        return {"results": [result.model_dump(mode="json") for result in results]}

    # ------------------------------------------------------------------ SQS

    def _handle_sqs(self, event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
        records: list[dict[str, Any]] = event["Records"]
        outcomes = [self._parse(SQSRecord(record)) for record in records]
        flat = [applied for outcome in outcomes for applied in outcome.applied]
        self._apply_in_place(flat)
        by_message = {
            str(record.get("messageId")): outcome
            for record, outcome in zip(records, outcomes, strict=True)
        }
        # The batch processor only reports, in the invoking thread: it raises for a failed record
        # so that Powertools lists it in batchItemFailures exactly as before.
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        response = process_partial_response(
            event=event,
            record_handler=lambda record: self._report_record(record, by_message),
            processor=processor,
            context=context,
        )
        return dict(response)

    def _parse(self, record: SQSRecord) -> _RecordOutcome:
        try:
            changes = changes_from_body(record.body)
        except Exception as error:  # noqa: BLE001 - reported with its record, in _report_record
            return _RecordOutcome(parse_error=error)
        return _RecordOutcome(applied=[_Applied(change) for change in changes])

    def _report_record(self, record: SQSRecord, by_message: dict[str, _RecordOutcome]) -> None:
        outcome = by_message[record.message_id]
        self._logger.append_keys(message_id=record.message_id)
        try:
            if isinstance(outcome.parse_error, CacheSyncError):
                self._record_failure(outcome.parse_error)
                raise outcome.parse_error
            if outcome.parse_error is not None:
                self._record_unexpected("the message body", outcome.parse_error)
                raise outcome.parse_error
            if not outcome.applied:
                self._logger.info("s3:TestEvent or empty notification acknowledged")
            first_error: Exception | None = None
            for applied in outcome.applied:
                error = self._report(applied)
                first_error = first_error or error
            if first_error is not None:
                raise first_error
        finally:
            self._logger.remove_keys(["message_id"])

    # ------------------------------------------------------------------ applying

    def _apply_all(self, changes: Sequence[ObjectChange]) -> list[_Applied]:
        applied = [_Applied(change) for change in changes]
        self._apply_in_place(applied)
        return applied

    def _apply_in_place(self, applied: Sequence[_Applied]) -> None:
        """Apply every change, filling in its result or error; one key's changes in order."""
        by_key: dict[tuple[str, str], list[_Applied]] = {}
        for item in applied:
            by_key.setdefault((item.change.bucket, item.change.key), []).append(item)
        if self._pool is None or len(by_key) < 2:
            for queue in by_key.values():
                self._apply_queue(queue)
            return
        # list(): wait for every key, and re-raise here anything _apply_queue did not catch.
        list(self._pool.map(self._apply_queue, by_key.values()))

    def _apply_queue(self, queue: Sequence[_Applied]) -> None:
        """The changes of one key, in order. Runs in a worker: no logging, no metrics here."""
        for item in queue:
            try:
                item.result = self._sync.apply(item.change, self._expected)
            except Exception as error:  # noqa: BLE001 - carried to the invoking thread, reported there
                item.error = error

    # ------------------------------------------------------------------ reporting

    def _report(self, applied: _Applied) -> Exception | None:
        """Log and count one applied change (invoking thread only); its error, if it failed."""
        change = applied.change
        self._logger.append_keys(object_key=change.key, bucket=change.bucket)
        try:
            if isinstance(applied.error, CacheSyncError):
                self._record_failure(applied.error)
                return applied.error
            if applied.error is not None:
                self._record_unexpected(
                    f"s3://{change.bucket}/{change.key}", applied.error, change.event_name
                )
                return applied.error
            result = applied.result
            if result is None:  # every change is applied before reporting; never reached
                raise RuntimeError(f"change of s3://{change.bucket}/{change.key} was not applied")
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
            return None
        finally:
            self._logger.remove_keys(["object_key", "bucket"])

    def _record_failure(self, error: CacheSyncError) -> None:
        reason = type(error).__name__
        self._metrics.add_metric(
            name=f"EventsFailed{reason.removesuffix('Error')}", unit=MetricUnit.Count, value=1
        )
        self._metrics.add_metric(name="EventsFailed", unit=MetricUnit.Count, value=1)
        self._logger.error("change failed: %s", error, extra={"reason": reason})

    def _record_unexpected(self, what: str, error: Exception, event_name: str = "") -> None:
        """Not one of cachesync's errors: a defect. Loud, with its traceback, and counted."""
        self._metrics.add_metric(name=UNEXPECTED_METRIC, unit=MetricUnit.Count, value=1)
        self._metrics.add_metric(name="EventsFailed", unit=MetricUnit.Count, value=1)
        self._logger.error(
            "change failed unexpectedly: %s: %s: %s",
            what,
            type(error).__name__,
            error,
            extra={"reason": type(error).__name__, "event_name": event_name},
            exc_info=(type(error), error, error.__traceback__),
        )


def _is_sqs_event(event: Any) -> bool:
    if not isinstance(event, dict):
        return False
    records = event.get("Records")
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)
    )
