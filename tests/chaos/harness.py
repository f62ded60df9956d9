"""What the chaos experiments share: counting retries, percentiles, verify, polling."""

from __future__ import annotations

import http.client
import json
import logging
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cachesync.reconcile import Reconciler
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.s3_objects import S3ObjectStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


class RetryCounter(logging.Handler):
    """Counts the retries of :mod:`cachesync.retry_policies` (one warning per retry)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._lock_count = threading.Lock()
        self.retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("retrying"):
            with self._lock_count:
                self.retries += 1


@contextmanager
def counting_retries() -> Iterator[RetryCounter]:
    """A :class:`RetryCounter` attached to the retry policy's logger for the block."""
    counter = RetryCounter()
    logger = logging.getLogger("cachesync.retry_policies")
    previous = logger.level
    logger.setLevel(logging.WARNING)
    logger.addHandler(counter)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
        logger.setLevel(previous)


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank); 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def latency_figures(seconds: list[float]) -> dict[str, float]:
    """p50, p99 and max in milliseconds."""
    return {
        "p50_ms": round(percentile(seconds, 0.5) * 1000, 1),
        "p99_ms": round(percentile(seconds, 0.99) * 1000, 1),
        "max_ms": round(max(seconds, default=0.0) * 1000, 1),
        "mean_ms": round(statistics.fmean(seconds) * 1000, 1) if seconds else 0.0,
    }


def verify_drift(
    dynamodb: DynamoDBClient, s3: S3Client, *, table: str, bucket: str
) -> tuple[dict[str, int], dict[str, int]]:
    """``verify`` (no repair) of ``bucket`` against ``table`` on direct clients (no proxy):
    drift per kind, and the objects/entries/invalid totals."""
    report = Reconciler(
        DynamoDBIndexStore(dynamodb, table), S3ObjectStore(s3), bucket=bucket
    ).verify()
    totals = {"objects": report.objects, "entries": report.entries, "invalid": report.invalid}
    return report.counts(), totals


def queue_depth(sqs: SQSClient, url: str) -> int:
    """Visible plus in-flight messages of a queue."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def reset_moto(endpoint_url: str) -> None:
    """Clear every moto backend of this process (``/moto-api/reset``): moto keeps its state in
    module-level backends, so each experiment's fresh moto server would otherwise still hold the
    buckets, objects and queues of the experiments before it."""
    host, _, port = endpoint_url.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", "/moto-api/reset")
        connection.getresponse().read()
    finally:
        connection.close()


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    """Poll ``condition`` until true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def recent_documents(count: int, *, prefix: str = "changes/CHAOS") -> list[tuple[str, bytes]]:
    """``count`` valid change documents modified now (well within the retention: no document
    is indexed already expired, which ``verify`` would report as ``expired_present``)."""
    now = datetime.now(UTC).isoformat()
    customers = ("acme", "globex", "initech")
    documents = []
    for number in range(count):
        body = {
            "object_type": "change",
            "change_id": f"CHG-C{number:05d}",
            "title": f"Chaos change {number}",
            "customers": [customers[number % len(customers)]],
            "status": "approved",
            "created_at": now,
            "modified_at": now,
        }
        documents.append((f"{prefix}-{number:05d}.json", json.dumps(body).encode()))
    return documents
