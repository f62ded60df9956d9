"""S3EventProcessor over whole Lambda events: one record failing alone, metrics and log context.

The sync use case is replaced by :class:`FakeSync`, which records every change it is given and
fails the keys a test names; the Powertools Logger and Metrics are real.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
from aws_lambda_powertools import Logger, Metrics

from cachesync.changes import ObjectChange, Operation
from cachesync.event_processing import S3EventProcessor
from cachesync.exceptions import (
    EventProcessingError,
    InvalidDocumentError,
    InvalidEventError,
    ObjectUnavailableError,
    WrongOperationError,
)
from cachesync.sync import SyncOutcome, SyncResult
from tests.support.s3_events import s3_notification, s3_record, sqs_event

EVENTS_DIR: Final = Path(__file__).resolve().parents[2] / "events"
BUCKET: Final = "cachesync-documents"

# Message ids and keys of the samples, as written in their JSON.
PUT_IDS: Final = {
    "changes/CHG-1101.json": "909cd66f-0fcd-4506-9ecc-50e0b639a8ee",
    "changes/CHG-1102.json": "c78193dc-ee07-4b89-a1c8-31da175eb6fd",
    "changes/CHG-1103.json": "ffd51ad1-70fc-448f-9901-965b5d4b2ffb",
}
MIXED_NOT_JSON_ID: Final = "0aa7224e-1939-433d-a469-21e29ba15e60"
MIXED_HELLO_WORLD_ID: Final = "3c5d1bc9-1a80-4c66-8b29-d9e62d7060e0"
LAG_SECONDS: Final = 0.25


class FakeSync:
    """Stands in for :class:`S3EventSync`: records calls, fails the keys it is told to."""

    def __init__(
        self,
        failures: Mapping[str, Exception] | None = None,
        outcome: SyncOutcome = SyncOutcome.APPLIED,
        before: Any = None,
    ) -> None:
        self.calls: list[tuple[ObjectChange, Operation]] = []
        self._failures = dict(failures or {})
        self._outcome = outcome
        self._before = before
        """Called with each change before it is recorded (to make a worker wait)."""

    def apply(self, change: ObjectChange, expected: Operation) -> SyncResult:
        if self._before is not None:
            self._before(change)
        self.calls.append((change, expected))
        error = self._failures.get(change.key)
        if error is not None:
            raise error
        return SyncResult(
            bucket=change.bucket,
            key=change.key,
            operation=change.operation,
            outcome=self._outcome,
            reason="fake",
            lag_seconds=LAG_SECONDS,
        )

    @property
    def keys(self) -> list[str]:
        return [change.key for change, _ in self.calls]


@dataclass
class CapturedLogger:
    logger: Logger
    stream: io.StringIO

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]


@pytest.fixture
def log() -> Iterator[CapturedLogger]:
    # Loggers of one service share their handler: capture by swapping its stream.
    logger = Logger(service="test")
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    logger.setLevel("INFO")
    logger.clear_state()
    yield CapturedLogger(logger, stream)
    logger.clear_state()
    if previous is not None:
        handler.setStream(previous)


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    # Powertools keeps the metric set at class level: start and end each test empty.
    metrics = Metrics(namespace="test", service="test")
    metrics.clear_metrics()
    yield metrics
    metrics.clear_metrics()


def count(metrics: Metrics, name: str) -> int:
    """How many of metric ``name`` were added (each is a count of 1)."""
    metric = metrics.metric_set.get(name)
    return 0 if metric is None else len(metric["Value"])


def processor(
    sync: FakeSync,
    log: CapturedLogger,
    metrics: Metrics,
    expected: Operation = Operation.CREATED,
    workers: int = 1,
) -> S3EventProcessor:
    return S3EventProcessor(sync, expected, logger=log.logger, metrics=metrics, workers=workers)


def load_sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
    return loaded


def failed_ids(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def unavailable(key: str) -> ObjectUnavailableError:
    return ObjectUnavailableError("GetObject", BUCKET, key, "SlowDown", "please reduce your rate")


# ---------------------------------------------------------------------------- SQS


def test_mixed_batch_fails_exactly_the_two_bad_messages(
    log: CapturedLogger, metrics: Metrics
) -> None:
    # Given the SQS batch: valid put, "not json at all", {"hello": "world"}, valid put
    sync = FakeSync()
    event = load_sample("sqs_mixed_batch.json")
    # When it is processed
    response = processor(sync, log, metrics).handle(event, None)
    # Then exactly the two bad messages are reported for retry
    assert sorted(failed_ids(response)) == sorted([MIXED_NOT_JSON_ID, MIXED_HELLO_WORLD_ID])
    # And both good puts were applied, as created changes
    assert sync.keys == ["changes/CHG-1104.json", "changes/CHG-1105.json"]
    assert {expected for _, expected in sync.calls} == {Operation.CREATED}
    assert count(metrics, "EventsApplied") == 2
    assert count(metrics, "EventsFailed") == 2
    assert count(metrics, "EventsFailedInvalidEvent") == 2


def test_batch_where_every_record_fails_reports_all_and_does_not_raise(
    log: CapturedLogger, metrics: Metrics
) -> None:
    # Given a batch of three puts, and S3 unavailable for every key
    sync = FakeSync({key: unavailable(key) for key in PUT_IDS})
    # When it is processed
    response = processor(sync, log, metrics).handle(load_sample("sqs_s3_put.json"), None)
    # Then every message is reported (the batch is not failed by an exception)
    assert sorted(failed_ids(response)) == sorted(PUT_IDS.values())
    assert sync.keys == list(PUT_IDS)
    assert count(metrics, "EventsApplied") == 0
    assert count(metrics, "EventsFailed") == 3
    assert count(metrics, "EventsFailedObjectUnavailable") == 3


def test_sqs_test_event_is_acknowledged_without_applying(
    log: CapturedLogger, metrics: Metrics
) -> None:
    # Given an SQS message whose body is the s3:TestEvent
    sync = FakeSync()
    # When it is processed
    response = processor(sync, log, metrics).handle(load_sample("sqs_s3_test_event.json"), None)
    # Then it is deleted from the queue (no failure), nothing is applied and nothing failed
    assert response == {"batchItemFailures": []}
    assert sync.calls == []
    assert count(metrics, "EventsFailed") == 0
    assert any("acknowledged" in line["message"] for line in log.lines())


def test_wrong_operation_fails_only_its_record(log: CapturedLogger, metrics: Metrics) -> None:
    # Given a batch of three puts where the sync refuses one as the wrong operation
    wrong = WrongOperationError("ObjectRemoved:Delete reached the created handler")
    sync = FakeSync({"changes/CHG-1102.json": wrong})
    # When it is processed
    response = processor(sync, log, metrics).handle(load_sample("sqs_s3_put.json"), None)
    # Then only that message is reported; the others were applied
    assert failed_ids(response) == [PUT_IDS["changes/CHG-1102.json"]]
    assert sync.keys == list(PUT_IDS)
    assert count(metrics, "EventsApplied") == 2
    assert count(metrics, "EventsFailed") == 1
    assert count(metrics, "EventsFailedWrongOperation") == 1


def test_removed_handler_passes_its_operation_to_sync(
    log: CapturedLogger, metrics: Metrics
) -> None:
    # Given the removed handler's processor and an SQS delete, then an SNS-wrapped delete
    sync = FakeSync()
    handler = processor(sync, log, metrics, expected=Operation.REMOVED)
    # When both are processed
    first = handler.handle(load_sample("sqs_s3_delete.json"), None)
    second = handler.handle(load_sample("sqs_sns_s3_delete.json"), None)
    # Then each change reached sync as a removal expected by a removed handler
    assert first == second == {"batchItemFailures": []}
    assert [(c.key, c.operation, e) for c, e in sync.calls] == [
        ("changes/CHG-1101.json", Operation.REMOVED, Operation.REMOVED),
        ("announcements/ANN-2101.json", Operation.REMOVED, Operation.REMOVED),
    ]


@pytest.mark.parametrize(
    ("outcome", "metric"),
    [
        (SyncOutcome.APPLIED, "EventsApplied"),
        (SyncOutcome.DUPLICATE, "EventsDuplicate"),
        (SyncOutcome.STALE, "EventsStale"),
        (SyncOutcome.IGNORED, "EventsIgnored"),
    ],
)
def test_each_outcome_is_counted_under_its_metric(
    outcome: SyncOutcome, metric: str, log: CapturedLogger, metrics: Metrics
) -> None:
    # Given a sync that reports ``outcome`` for every change
    sync = FakeSync(outcome=outcome)
    # When a batch of three puts is processed
    processor(sync, log, metrics).handle(load_sample("sqs_s3_put.json"), None)
    # Then three of that metric are recorded, and the lag for every change that was not ignored
    assert count(metrics, metric) == 3
    lags = metrics.metric_set.get("SyncLag", {}).get("Value", [])
    assert lags == ([] if outcome is SyncOutcome.IGNORED else [LAG_SECONDS * 1000] * 3)


# ---------------------------------------------------------------------------- direct S3


def test_direct_event_applies_the_other_records_then_raises_naming_the_failed_key(
    log: CapturedLogger, metrics: Metrics
) -> None:
    # Given a direct S3 notification with two records, the first of which fails
    event = {
        "Records": [
            load_sample("s3_put.json")["Records"][0],
            load_sample("s3_copy.json")["Records"][0],
        ]
    }
    sync = FakeSync({"changes/CHG-1001.json": unavailable("changes/CHG-1001.json")})
    # When it is processed
    with pytest.raises(EventProcessingError) as raised:
        processor(sync, log, metrics).handle(event, None)
    # Then the second record was still applied
    assert sync.keys == ["changes/CHG-1001.json", "changes/CHG-1002.json"]
    assert count(metrics, "EventsApplied") == 1
    assert count(metrics, "EventsFailed") == 1
    # And the error names the failed object, and only that one
    assert len(raised.value.failures) == 1
    assert raised.value.failures[0].startswith(f"s3://{BUCKET}/changes/CHG-1001.json: ")
    assert "CHG-1002" not in str(raised.value)


def test_direct_event_that_all_applies_returns_the_results(
    log: CapturedLogger, metrics: Metrics
) -> None:
    # Given a direct S3 notification of five puts
    sync = FakeSync()
    # When it is processed
    response = processor(sync, log, metrics).handle(load_sample("s3_encoded_keys.json"), None)
    # Then each change was applied once, with its decoded key
    expected_keys = json.loads(
        (EVENTS_DIR / "expected" / "s3_encoded_keys.decoded.json").read_text()
    )
    assert sync.keys == expected_keys
    assert [result["key"] for result in response["results"]] == expected_keys
    assert {result["outcome"] for result in response["results"]} == {"applied"}


def test_direct_event_of_unknown_shape_raises_and_counts_a_failure(
    log: CapturedLogger, metrics: Metrics
) -> None:
    # Given a direct event that is no S3 notification
    sync = FakeSync()
    # When it is processed
    # Then it raises InvalidEventError (Lambda retries it, then sends it to the destination)
    with pytest.raises(InvalidEventError, match="not an S3 notification"):
        processor(sync, log, metrics).handle({"hello": "world"}, None)
    assert sync.calls == []
    assert count(metrics, "EventsFailed") == 1


def test_direct_test_event_applies_nothing(log: CapturedLogger, metrics: Metrics) -> None:
    # Given the s3:TestEvent delivered directly
    sync = FakeSync()
    # When it is processed
    response = processor(sync, log, metrics).handle(load_sample("s3_test_event.json"), None)
    # Then nothing is applied and nothing fails
    assert response == {"results": []}
    assert sync.calls == []
    assert count(metrics, "EventsFailed") == 0


# ---------------------------------------------------------------------------- EventBridge


def test_eventbridge_event_is_applied_once(log: CapturedLogger, metrics: Metrics) -> None:
    # Given an EventBridge "Object Created" event
    sync = FakeSync()
    # When it is processed
    response = processor(sync, log, metrics).handle(
        load_sample("eventbridge_object_created.json"), None
    )
    # Then its one change was applied once
    assert [(c.key, c.version_id, e) for c, e in sync.calls] == [
        ("changes/CHG-1201.json", "XpqsrXoF1rMt0h0H_MWoPgAkHuYZz2D1", Operation.CREATED)
    ]
    assert [result["key"] for result in response["results"]] == ["changes/CHG-1201.json"]
    assert count(metrics, "EventsApplied") == 1


def test_eventbridge_event_that_fails_raises(log: CapturedLogger, metrics: Metrics) -> None:
    # Given an EventBridge "Object Created" event whose object is not a valid document
    invalid = InvalidDocumentError("changes/CHG-1201.json", "not JSON")
    sync = FakeSync({"changes/CHG-1201.json": invalid})
    # When it is processed
    # Then the invocation fails, naming the object
    with pytest.raises(
        EventProcessingError, match=re.escape("s3://cachesync-documents/changes/CHG-1201.json")
    ):
        processor(sync, log, metrics).handle(load_sample("eventbridge_object_created.json"), None)
    assert count(metrics, "EventsFailedInvalidDocument") == 1


# ---------------------------------------------------------------------------- logs


def test_every_log_line_of_an_sqs_record_carries_its_key_and_message_id(
    log: CapturedLogger, metrics: Metrics
) -> None:
    # Given a batch of three puts where one fails
    sync = FakeSync({"changes/CHG-1102.json": unavailable("changes/CHG-1102.json")})
    # When it is processed
    processor(sync, log, metrics).handle(load_sample("sqs_s3_put.json"), None)
    lines = log.lines()
    # Then there is one line per record, each with that record's key, bucket and message id
    assert sorted(line["object_key"] for line in lines) == sorted(PUT_IDS)
    for line in lines:
        assert line["bucket"] == BUCKET
        assert line["message_id"] == PUT_IDS[line["object_key"]]
    # And the failure is an error naming its reason
    [failure] = [line for line in lines if line["level"] == "ERROR"]
    assert failure["object_key"] == "changes/CHG-1102.json"
    assert failure["reason"] == "ObjectUnavailableError"
    # And no key outlives its record
    assert not {"object_key", "bucket", "message_id"} & set(log.logger.get_current_keys())


def test_every_log_line_of_a_direct_event_carries_its_key(
    log: CapturedLogger, metrics: Metrics
) -> None:
    # Given a direct notification of two puts, the first of which fails
    event = {
        "Records": [
            load_sample("s3_put.json")["Records"][0],
            load_sample("s3_copy.json")["Records"][0],
        ]
    }
    sync = FakeSync({"changes/CHG-1001.json": unavailable("changes/CHG-1001.json")})
    # When it is processed
    with pytest.raises(EventProcessingError):
        processor(sync, log, metrics).handle(event, None)
    lines = log.lines()
    # Then each line names the object it is about
    assert [(line["level"], line["object_key"]) for line in lines] == [
        ("ERROR", "changes/CHG-1001.json"),
        ("INFO", "changes/CHG-1002.json"),
    ]
    assert lines[1]["sequencer"] == "006AE9D3D70A7D9224"
    assert lines[1]["event_name"] == "ObjectCreated:Copy"


def test_invalid_message_is_logged_with_its_message_id(
    log: CapturedLogger, metrics: Metrics
) -> None:
    # Given the mixed batch, whose bad messages have no object key to log
    sync = FakeSync()
    # When it is processed
    processor(sync, log, metrics).handle(load_sample("sqs_mixed_batch.json"), None)
    # Then each error line names the message that failed
    errors = [line for line in log.lines() if line["level"] == "ERROR"]
    assert sorted(line["message_id"] for line in errors) == sorted(
        [MIXED_NOT_JSON_ID, MIXED_HELLO_WORLD_ID]
    )
    assert {line["reason"] for line in errors} == {"InvalidEventError"}


# ---------------------------------------------------------------------------- unexpected errors


def test_an_unexpected_error_fails_its_record_alone_loudly_and_counted(
    log: CapturedLogger, metrics: Metrics
) -> None:
    # Given a batch of three puts where applying one raises an error that is no CacheSyncError
    sync = FakeSync({"changes/CHG-1102.json": KeyError("sequencer")})
    # When it is processed
    response = processor(sync, log, metrics).handle(load_sample("sqs_s3_put.json"), None)
    # Then only that message is reported, the others were applied
    assert failed_ids(response) == [PUT_IDS["changes/CHG-1102.json"]]
    assert count(metrics, "EventsApplied") == 2
    # And it is counted, as a failure and as an unexpected one
    assert count(metrics, "EventsFailedUnexpected") == 1
    assert count(metrics, "EventsFailed") == 1
    # And logged at ERROR with its key, message id and the exception
    [failure] = [line for line in log.lines() if line["level"] == "ERROR"]
    assert failure["object_key"] == "changes/CHG-1102.json"
    assert failure["message_id"] == PUT_IDS["changes/CHG-1102.json"]
    assert "KeyError" in failure["message"]
    assert "sequencer" in failure["message"]
    assert "KeyError" in failure["exception"]


# ---------------------------------------------------------------------------- concurrency


def _put(key: str, sequencer: str) -> dict[str, Any]:
    return s3_notification(s3_record("ObjectCreated:Put", BUCKET, key, sequencer=sequencer))


def test_records_of_one_key_are_applied_in_order_and_keys_in_parallel(
    log: CapturedLogger, metrics: Metrics
) -> None:
    # Given a batch mixing three keys, each changed several times, and a sync whose first change
    # of every key waits until the first changes of all three keys are running at once
    bodies = [
        _put("changes/A.json", "01"),
        _put("changes/B.json", "01"),
        _put("changes/A.json", "02"),
        _put("changes/C.json", "01"),
        _put("changes/B.json", "02"),
        _put("changes/A.json", "03"),
    ]
    all_started = threading.Barrier(3, timeout=5)
    threads: dict[str, set[str]] = {}

    def first_changes_meet(change: ObjectChange) -> None:
        threads.setdefault(change.key, set()).add(threading.current_thread().name)
        if change.raw_sequencer == "01":
            all_started.wait()  # raises BrokenBarrierError if the keys ran one after the other

    sync = FakeSync(before=first_changes_meet)
    event = sqs_event(*bodies)
    # When it is processed with three workers
    response = processor(sync, log, metrics, workers=3).handle(event, None)
    # Then nothing failed, the three keys ran at once, and each key's changes kept their order
    assert response == {"batchItemFailures": []}
    order = [(change.key, change.raw_sequencer) for change, _ in sync.calls]
    for key, sequencers in (("A", ["01", "02", "03"]), ("B", ["01", "02"]), ("C", ["01"])):
        assert [seq for k, seq in order if k == f"changes/{key}.json"] == sequencers
    assert all(len(names) == 1 for names in threads.values())  # one key, one worker at a time
    # And metrics and logs were written once per change, each line naming its own record
    assert count(metrics, "EventsApplied") == 6
    lines = log.lines()
    ids = [record["messageId"] for record in event["Records"]]
    keys = [body["Records"][0]["s3"]["object"]["key"] for body in bodies]
    assert [(line["message_id"], line["object_key"]) for line in lines] == list(
        zip(ids, keys, strict=True)
    )


def test_concurrent_processing_reports_the_same_failures(
    log: CapturedLogger, metrics: Metrics
) -> None:
    # Given the mixed batch and a batch of puts where one key fails, processed by four workers
    mixed = processor(FakeSync(), log, metrics, workers=4).handle(
        load_sample("sqs_mixed_batch.json"), None
    )
    sync = FakeSync({"changes/CHG-1102.json": unavailable("changes/CHG-1102.json")})
    puts = processor(sync, log, metrics, workers=4).handle(load_sample("sqs_s3_put.json"), None)
    # Then exactly the same records are reported as when processed one by one
    assert sorted(failed_ids(mixed)) == sorted([MIXED_NOT_JSON_ID, MIXED_HELLO_WORLD_ID])
    assert failed_ids(puts) == [PUT_IDS["changes/CHG-1102.json"]]
    assert count(metrics, "EventsApplied") == 4
    assert count(metrics, "EventsFailed") == 3
    # And no key outlives its record
    assert not {"object_key", "bucket", "message_id"} & set(log.logger.get_current_keys())
