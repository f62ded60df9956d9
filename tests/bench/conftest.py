"""Benchmark fixtures: one local stack, a corpus of documents in S3, SQS-shaped events for them.

The stack (DynamoDB Local + moto) is started once for the whole bench session, from the main
thread (the JVM dies with the thread that spawned it). The documents are uploaded once; every
measured run then replays the same SQS events against a fresh, empty index table, so each run does
exactly the same work: one GET and one first write per record.

The events are the production shape, built here rather than taken from moto (whose notifications
carry no ``sequencer``): an SQS record per object whose body is an S3 ``ObjectCreated:Put``
notification with the bucket, the URL-encoded key, the real ETag and size, and an increasing
hexadecimal sequencer. Sizes are tunable through ``CACHESYNC_BENCH_DOCUMENTS`` and
``CACHESYNC_BENCH_ROUNDS``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote_plus

import pytest

from cachesync.index_schema import create_table_request
from cachesync.local import LocalStack

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DOCUMENT_COUNT: Final = int(os.environ.get("CACHESYNC_BENCH_DOCUMENTS", "400"))
"""Records per measured run (each one object, one SQS record)."""
WARMUP_COUNT: Final = 10
"""Records each side processes untimed on its fresh table before the measured run."""
BATCH_SIZE: Final = 10
"""SQS records per Lambda invocation (the event source mapping's default batch size)."""
ROUNDS: Final = int(os.environ.get("CACHESYNC_BENCH_ROUNDS", "3"))
"""Measured runs per side; the median is reported."""

_CUSTOMERS: Final = ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne")
_STATUSES: Final = ("draft", "submitted", "approved", "scheduled", "in_progress", "completed")
_BASE_TIME: Final = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``bench`` marker (the project runs pytest with ``--strict-markers``)."""
    config.addinivalue_line("markers", "bench: throughput benchmark against the local stack")


@dataclass(frozen=True, slots=True)
class BenchDocument:
    """One uploaded document and the facts its event notification carries."""

    key: str
    etag: str
    size: int
    sequencer: str
    customers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BenchCorpus:
    """The uploaded documents and the SQS events announcing them, in batches."""

    bucket: str
    warmup: tuple[BenchDocument, ...]
    documents: tuple[BenchDocument, ...]
    warmup_batches: tuple[dict[str, Any], ...]
    batches: tuple[dict[str, Any], ...]

    @property
    def link_count(self) -> int:
        """Customer link items the design writes for the measured documents: one per customer
        other than the primary (the primary's entry is the document item itself)."""
        return sum(len(set(document.customers)) - 1 for document in self.documents)


def change_document(number: int, customers: tuple[str, ...]) -> dict[str, Any]:
    """A valid change record, shaped like ``events/documents/change.json``."""
    created = _BASE_TIME + timedelta(minutes=number)
    return {
        "object_type": "change",
        "change_id": f"CHG-B{number:05d}",
        "title": f"Benchmark change {number}: rotate TLS certificates on cluster {number % 17}",
        "customers": list(customers),
        "status": _STATUSES[number % len(_STATUSES)],
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "modified_at": (created + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        "scheduled_start": (created + timedelta(days=7)).isoformat().replace("+00:00", "Z"),
        "scheduled_end": (created + timedelta(days=7, hours=1)).isoformat().replace("+00:00", "Z"),
        "risk": ("low", "medium", "high")[number % 3],
    }


def customers_for(number: int) -> tuple[str, ...]:
    """One or two customers, alternating: under the index design a single-customer document is
    one conditional ``PutItem``, a two-customer one a ``TransactWriteItems`` (document item plus
    one link item), so the measured run exercises both write paths half and half."""
    first = _CUSTOMERS[number % len(_CUSTOMERS)]
    if number % 2:
        return (first,)
    return (first, _CUSTOMERS[(number + 3) % len(_CUSTOMERS)])


def _sqs_record(
    document: BenchDocument, bucket: str, queue_arn: str, event_time: datetime
) -> dict[str, Any]:
    """An SQS record whose body is the S3 ``ObjectCreated:Put`` notification of ``document``."""
    notification = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": event_time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:AROABENCH:cachesync-publisher"},
                "requestParameters": {"sourceIPAddress": "203.0.113.24"},
                "responseElements": {
                    "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
                    "x-amz-id-2": uuid.uuid4().hex,
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "cachesync-object-created",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "A2Q7ZT9KX4M1PD"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        # S3 form-encodes keys in notifications but leaves "/" as is.
                        "key": quote_plus(document.key, safe="/"),
                        "size": document.size,
                        "eTag": document.etag,
                        "sequencer": document.sequencer,
                    },
                },
            }
        ]
    }
    body = json.dumps(notification, separators=(",", ":"))
    sent = str(int(event_time.timestamp() * 1000))
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": uuid.uuid4().hex * 4,
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": sent,
            "SenderId": "AIDAJHIPRHEMV73VRJEBU",
            "ApproximateFirstReceiveTimestamp": sent,
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    }


def _batches(
    documents: tuple[BenchDocument, ...], bucket: str, queue_arn: str
) -> tuple[dict[str, Any], ...]:
    now = datetime.now(UTC)
    records = [_sqs_record(document, bucket, queue_arn, now) for document in documents]
    return tuple(
        {"Records": records[start : start + BATCH_SIZE]}
        for start in range(0, len(records), BATCH_SIZE)
    )


@pytest.fixture(scope="session")
def bench_stack() -> Iterator[LocalStack]:
    """DynamoDB Local + moto on free ports, provisioned, for the whole bench session."""
    # Session fixtures run in the main thread, which outlives the JVM as PDEATHSIG requires.
    with LocalStack() as stack:
        yield stack


@pytest.fixture(scope="session")
def bench_corpus(bench_stack: LocalStack) -> BenchCorpus:
    """Upload the warm-up and measured documents once; build their SQS events."""
    s3 = bench_stack.client("s3")
    provisioned = bench_stack.provisioned
    bucket = provisioned.bucket_name
    sequencers = itertools.count(0x0069_0000_0000_0000_00)
    uploaded: list[BenchDocument] = []
    for number in range(WARMUP_COUNT + DOCUMENT_COUNT):
        prefix = "warmup" if number < WARMUP_COUNT else "bench"
        # A space in some keys exercises the form-encoded key path (``+`` in the event).
        key = f"changes/{prefix}/CHG-B{number:05d}{' draft' if number % 5 == 0 else ''}.json"
        customers = customers_for(number)
        body = json.dumps(change_document(number, customers), indent=2).encode()
        response = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
        uploaded.append(
            BenchDocument(
                key=key,
                etag=response["ETag"].strip('"'),
                size=len(body),
                sequencer=f"{next(sequencers):018X}",
                customers=customers,
            )
        )
    warmup, documents = tuple(uploaded[:WARMUP_COUNT]), tuple(uploaded[WARMUP_COUNT:])
    queue_arn = provisioned.created_queue.arn
    return BenchCorpus(
        bucket=bucket,
        warmup=warmup,
        documents=documents,
        warmup_batches=_batches(warmup, bucket, queue_arn),
        batches=_batches(documents, bucket, queue_arn),
    )


_table_numbers = itertools.count()


@pytest.fixture(scope="session")
def fresh_table(bench_stack: LocalStack) -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty index tables (from the schema module), dropped at the end."""
    client: DynamoDBClient = bench_stack.client("dynamodb")
    created: list[str] = []

    def create() -> str:
        name = f"bench-{next(_table_numbers)}-{uuid.uuid4().hex[:6]}"
        client.create_table(**create_table_request(name))
        created.append(name)
        return name

    yield create
    remaining = set(client.list_tables()["TableNames"])
    for name in created:
        if name in remaining:  # runs drop their table once verified; failed runs leave theirs
            client.delete_table(TableName=name)


@pytest.fixture(scope="session")
def restore_environment() -> Iterator[None]:
    """Put ``os.environ`` back as it was: the handler runs read their settings from it."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
