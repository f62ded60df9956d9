"""Backfill and verify on a bucket of a few thousand objects (moto server + DynamoDB Local)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cachesync.backfill import Backfill, BackfillCheckpoint, BackfillFilters, ObjectIndexer
from cachesync.changes import Operation, changes_from_message
from cachesync.documents import DocumentKind
from cachesync.index_schema import create_table_request
from cachesync.local import LocalStack
from cachesync.reconcile import DriftKind, Reconciler
from cachesync.retry_policies import RetryPolicy
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.s3_objects import S3ObjectStore
from cachesync.sync import S3EventSync
from tests.support.faults import ThrottleEachRequest
from tests.support.s3_events import s3_notification, s3_record
from tests.support.scale import scaled

CUSTOMERS = ("acme", "globex", "initech", "umbrella")
NOW = datetime.now(UTC).replace(microsecond=0)
CORPUS_SIZE = 2000
PAGE = 250
# Most tests work on a part of the corpus (a few hundred objects) to keep the suite quick.
PART = ("changes/3/", "announcements/")
# A bounded run (make test) keeps one document in PART_SAMPLE of the part and one in
# OUTSIDE_SAMPLE of the rest (about 280 in all); make soak keeps all 2,000.
PART_SAMPLE = scaled(3, 1)
OUTSIDE_SAMPLE = scaled(20, 1)
# Checkpoints within a page: every so many objects, or every so many seconds.
EVERY_OBJECTS = scaled(25, 100)
EVERY_SECONDS = scaled(3, 10)


@dataclass(frozen=True)
class Corpus:
    bucket: str
    documents: dict[str, dict[str, Any]]
    """key -> document body."""


def corpus_document(number: int) -> tuple[str, dict[str, Any]]:
    customer = CUSTOMERS[number % len(CUSTOMERS)]
    moment = NOW - timedelta(days=number % 300)
    if number % 5 == 0:
        key = f"announcements/ANN-{number:05d}.json"
        body: dict[str, Any] = {
            "object_type": "announcement",
            "announcement_id": f"ANN-{number:05d}",
            "customers": [customer],
            "status": "published",
            "modified_at": moment.isoformat(),
        }
    else:
        key = f"changes/{number % 7}/CHG-{number:05d}.json"
        body = {
            "object_type": "change",
            "change_id": f"CHG-{number:05d}",
            "customers": [customer],
            "status": "approved",
            "modified_at": moment.isoformat(),
        }
    return key, body


@pytest.fixture(scope="module")
def corpus(local_stack: LocalStack) -> Corpus:
    """A bucket of up to 2,000 documents (and two invalid objects), written once for the module."""
    s3 = local_stack.client("s3")
    bucket = f"corpus-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    everything = map(corpus_document, range(CORPUS_SIZE))
    documents = {
        key: body
        for number, (key, body) in enumerate(everything)
        # Whole runs of consecutive numbers, so that every customer keeps its documents.
        if (number // len(CUSTOMERS)) % (PART_SAMPLE if key.startswith(PART) else OUTSIDE_SAMPLE)
        == 0
    }

    def put(item: tuple[str, dict[str, Any]]) -> None:
        s3.put_object(Bucket=bucket, Key=item[0], Body=json.dumps(item[1]).encode())

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, documents.items()))
    s3.put_object(Bucket=bucket, Key="changes/0/broken.json", Body=b"{ nope")
    s3.put_object(
        Bucket=bucket,
        Key="changes/0/bad-status.json",
        Body=json.dumps({"object_type": "change", "change_id": "X", "status": "exploded"}).encode(),
    )
    return Corpus(bucket, documents)


@pytest.fixture
def index(local_stack: LocalStack, index_table: str) -> DynamoDBIndexStore:
    return DynamoDBIndexStore(local_stack.client("dynamodb"), index_table)


@pytest.fixture
def reference(dynamodb_client: Any) -> Iterator[DynamoDBIndexStore]:
    """A second index, for the result of an uninterrupted run to compare with."""
    table = f"reference-{uuid.uuid4().hex[:8]}"
    dynamodb_client.create_table(**create_table_request(table))
    yield DynamoDBIndexStore(dynamodb_client, table)
    dynamodb_client.delete_table(TableName=table)


def job(
    local_stack: LocalStack,
    store: DynamoDBIndexStore,
    bucket: str,
    workers: int = 4,
    page_size: int = PAGE,
) -> Backfill:
    objects = S3ObjectStore(local_stack.client("s3"))
    return Backfill(
        ObjectIndexer(store, objects), objects, bucket=bucket, workers=workers, page_size=page_size
    )


def indexed(store: DynamoDBIndexStore, bucket: str) -> dict[str, str | None]:
    """key -> ETag of every live document entry."""
    return {
        key: state.ordering.etag
        for key, state in store.scan_entries(bucket)
        if not state.is_tombstone and not state.is_pending
    }


def test_full_backfill_indexes_every_valid_document(
    local_stack: LocalStack, corpus: Corpus, index: DynamoDBIndexStore
) -> None:
    # When the whole bucket is backfilled
    done = job(local_stack, index, corpus.bucket).run(BackfillFilters())
    # Then every valid document is indexed, the two invalid ones are reported with reasons
    summary = done.summary
    assert done.done
    assert (summary.scanned, summary.indexed, summary.invalid, summary.failed) == (
        len(corpus.documents) + 2,
        len(corpus.documents),
        2,
        0,
    )
    assert set(summary.invalid_reasons) == {"changes/0/broken.json", "changes/0/bad-status.json"}
    assert set(indexed(index, corpus.bucket)) == set(corpus.documents)
    # And running again over a part changes nothing there
    again = job(local_stack, index, corpus.bucket).run(BackfillFilters(prefixes=PART)).summary
    assert again.indexed == 0
    assert again.unchanged == sum(1 for key in corpus.documents if key.startswith(PART))


@pytest.mark.parametrize(
    "filters",
    [
        BackfillFilters(prefixes=PART),
        BackfillFilters(prefixes=PART, customer="GLOBEX"),
        BackfillFilters(prefixes=PART, kind=DocumentKind.ANNOUNCEMENT),
        BackfillFilters(
            prefixes=PART, since=NOW - timedelta(days=30), until=NOW - timedelta(days=10)
        ),
    ],
    ids=["prefixes", "customer", "type", "time-window"],
)
def test_filters_index_exactly_the_matching_documents(
    local_stack: LocalStack, corpus: Corpus, index: DynamoDBIndexStore, filters: BackfillFilters
) -> None:
    # Given the documents the filters should select, computed from the corpus itself
    def selected(key: str, body: dict[str, Any]) -> bool:
        kind = DocumentKind(body["object_type"])
        moment = datetime.fromisoformat(body["modified_at"])
        return any(key.startswith(p) for p in filters.prefixes) and filters.matches(
            body["customers"], kind, moment
        )

    expected = {key for key, body in corpus.documents.items() if selected(key, body)}
    # When the backfill runs with the filters
    job(local_stack, index, corpus.bucket).run(filters)
    # Then exactly those are indexed
    assert expected
    assert set(indexed(index, corpus.bucket)) == expected


def test_dry_run_writes_nothing(
    local_stack: LocalStack, corpus: Corpus, index: DynamoDBIndexStore
) -> None:
    done = job(local_stack, index, corpus.bucket).run(BackfillFilters(prefixes=PART), dry_run=True)
    expected = sum(1 for key in corpus.documents if key.startswith(PART))
    assert done.summary.would_index == expected
    assert indexed(index, corpus.bucket) == {}


def test_an_interrupted_run_resumed_equals_an_uninterrupted_one(
    local_stack: LocalStack,
    corpus: Corpus,
    index: DynamoDBIndexStore,
    reference: DynamoDBIndexStore,
) -> None:
    # Given an uninterrupted run into another table
    filters = BackfillFilters(prefixes=PART)
    expected = sum(1 for key in corpus.documents if key.startswith(PART))
    small_pages = scaled(50, 100)
    job(local_stack, reference, corpus.bucket, page_size=small_pages).run(filters)
    # When another run stops after three pages (as Ctrl-C or a crash would), and resumes from
    # the checkpoint persisted as JSON
    saved: list[str] = []
    pages = iter(range(1000))
    interrupted = job(local_stack, index, corpus.bucket, page_size=small_pages)
    first = interrupted.run(
        filters,
        on_page=lambda c: saved.append(c.model_dump_json()),
        should_stop=lambda: next(pages) >= 3,
    )
    assert not first.done
    assert 0 < first.summary.scanned < expected
    checkpoint = BackfillCheckpoint.model_validate_json(saved[-1])
    resumed = interrupted.run(filters, checkpoint=checkpoint)
    # Then no finished page was redone and the index equals the uninterrupted one
    assert resumed.done
    assert resumed.summary.scanned == expected
    assert resumed.summary.indexed == expected
    assert indexed(index, corpus.bucket) == indexed(reference, corpus.bucket)


def counted_keys(corpus: Corpus, filters: BackfillFilters, checkpoint: BackfillCheckpoint) -> int:
    """How many keys a checkpoint claims as counted: the earlier prefixes', then this prefix's
    keys up to ``after_key`` (one page per prefix here)."""
    done = filters.prefixes[: checkpoint.prefix_index]
    current = filters.prefixes[checkpoint.prefix_index]
    return sum(
        1
        for key in corpus.documents
        if key.startswith(done)
        or (
            key.startswith(current)
            and checkpoint.after_key is not None
            and key <= checkpoint.after_key
        )
    )


def test_a_page_is_checkpointed_every_so_many_objects(
    local_stack: LocalStack, corpus: Corpus, index: DynamoDBIndexStore
) -> None:
    # Given pages of 1,000 keys (each prefix of the part fits in one)
    filters = BackfillFilters(prefixes=PART)
    saved: list[BackfillCheckpoint] = []
    # When a backfill runs with a checkpoint every EVERY_OBJECTS objects
    last = job(local_stack, index, corpus.bucket, workers=8, page_size=1000).run(
        filters, on_checkpoint=saved.append, checkpoint_every_objects=EVERY_OBJECTS
    )
    # Then checkpoints come within pages, each counting exactly the keys up to its after_key
    within = [c for c in saved if c.after_key is not None]
    assert last.done
    assert len(within) >= 5
    assert [c.summary.scanned for c in within] == [counted_keys(corpus, filters, c) for c in within]
    earlier = [
        counted_keys(corpus, filters, c.model_copy(update={"after_key": None})) for c in within
    ]
    assert all(
        (c.summary.scanned - before) % EVERY_OBJECTS == 0
        for c, before in zip(within, earlier, strict=True)
    )


def test_a_page_is_checkpointed_every_so_many_seconds(
    local_stack: LocalStack, corpus: Corpus, index: DynamoDBIndexStore
) -> None:
    # Given a clock that advances one second each time it is read
    ticks = iter(range(1_000_000))
    saved: list[BackfillCheckpoint] = []
    # When a backfill runs with checkpoints every EVERY_SECONDS seconds (objects: every 1,000)
    job(local_stack, index, corpus.bucket, page_size=1000).run(
        BackfillFilters(prefixes=("changes/3/",)),
        on_checkpoint=saved.append,
        checkpoint_every_objects=1000,
        checkpoint_every_seconds=EVERY_SECONDS,
        monotonic=lambda: float(next(ticks)),
    )
    # Then the seconds, not the objects, set the pace: one checkpoint per EVERY_SECONDS objects
    within = [c for c in saved if c.after_key is not None]
    assert len(within) >= 15
    assert all(c.summary.scanned <= EVERY_SECONDS * (n + 1) for n, c in enumerate(within))


def test_cancelled_within_a_page_then_resumed_equals_an_uninterrupted_run(
    local_stack: LocalStack,
    corpus: Corpus,
    index: DynamoDBIndexStore,
    reference: DynamoDBIndexStore,
) -> None:
    # Given an uninterrupted run into another table
    filters = BackfillFilters(prefixes=PART)
    expected = sum(1 for key in corpus.documents if key.startswith(PART))
    job(local_stack, reference, corpus.bucket, page_size=1000).run(filters)
    # When another run with eight workers is cancelled (Ctrl-C) after 150 objects of its first
    # page, and resumes from the last checkpoint persisted as JSON
    cancel = threading.Event()
    seen: list[object] = []
    saved: list[str] = []

    def count(outcome: object) -> None:
        seen.append(outcome)
        if len(seen) == 150:
            cancel.set()

    interrupted = job(local_stack, index, corpus.bucket, workers=8, page_size=1000)
    first = interrupted.run(
        filters,
        on_object=count,
        cancel=cancel,
        on_checkpoint=lambda c: saved.append(c.model_dump_json()),
    )
    checkpoint = BackfillCheckpoint.model_validate_json(saved[-1])
    resumed = interrupted.run(filters, checkpoint=checkpoint)
    # Then the cancelled run counted exactly the completed prefix of 150 keys, the resumed run
    # counted every other object once, and the index equals the uninterrupted one
    assert not first.done
    assert first.after_key is not None
    assert first.summary.scanned == 150 == counted_keys(corpus, filters, first)
    assert checkpoint == first
    assert resumed.done
    assert resumed.summary.scanned == expected
    assert resumed.summary.indexed + resumed.summary.unchanged == expected
    assert indexed(index, corpus.bucket) == indexed(reference, corpus.bucket)


def test_injected_throttling_is_absorbed_without_losing_objects(
    local_stack: LocalStack, corpus: Corpus, index_table: str
) -> None:
    client = local_stack.client("dynamodb")
    throttle = ThrottleEachRequest(times=2)
    client.meta.events.register("before-send.dynamodb.PutItem", throttle)
    store = DynamoDBIndexStore(
        client, index_table, retry_policy=RetryPolicy(attempts=6, initial_wait_seconds=0.001)
    )
    done = job(local_stack, store, corpus.bucket, workers=8).run(
        BackfillFilters(prefixes=("changes/1/",))
    )
    expected = {k for k in corpus.documents if k.startswith("changes/1/")}
    # Then every write was throttled twice, retried, and nothing was lost
    assert throttle.throttled == 2 * len(expected)
    assert done.summary.failed == 0
    assert set(indexed(store, corpus.bucket)) == expected


def test_backfill_racing_a_live_event_keeps_the_newer_state(
    local_stack: LocalStack, corpus: Corpus, index_table: str
) -> None:
    # Given a backfill that has read a document, and a newer version written and its event
    # applied just before the backfill's write lands
    client = local_stack.client("dynamodb")
    events_store = DynamoDBIndexStore(local_stack.client("dynamodb"), index_table)
    other_s3 = local_stack.client("s3")
    bucket = f"race-{uuid.uuid4().hex[:10]}"
    other_s3.create_bucket(Bucket=bucket)
    key = "changes/race.json"
    other_s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps({"object_type": "change", "change_id": "R", "title": "v1"}).encode(),
    )
    raced: list[str] = []

    def newer_version_lands(**_: Any) -> None:
        if raced:
            return
        body = json.dumps({"object_type": "change", "change_id": "R", "title": "v2"}).encode()
        put = other_s3.put_object(Bucket=bucket, Key=key, Body=body)
        event = s3_notification(
            s3_record(
                "ObjectCreated:Put",
                bucket,
                key,
                etag=put["ETag"].strip('"'),
                size=len(body),
                sequencer="0100",
            )
        )
        [change] = changes_from_message(event)
        raced.append(
            S3EventSync(events_store, S3ObjectStore(other_s3))
            .apply(change, Operation.CREATED)
            .outcome.value
        )

    client.meta.events.register("before-call.dynamodb.PutItem", newer_version_lands)
    store = DynamoDBIndexStore(client, index_table)
    # When the backfill's write lands
    done = job(local_stack, store, bucket).run(BackfillFilters())
    # Then the event's newer state survives and the backfill counts the key as skipped
    assert raced == ["applied"]
    assert done.summary.skipped_newer == 1
    stored = store.get_document(bucket, key)
    assert stored is not None
    assert stored.title == "v2"


def test_verify_detects_and_repairs_every_kind_of_drift(
    local_stack: LocalStack, dynamodb_client: Any, index_table: str
) -> None:
    s3 = local_stack.client("s3")
    bucket = f"drift-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    store = DynamoDBIndexStore(dynamodb_client, index_table)
    objects = S3ObjectStore(s3)

    def put(key: str, **fields: Any) -> None:
        body = {"object_type": "change", "change_id": key, "customers": ["acme"], **fields}
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body).encode())

    # Given a bucket backfilled into the index (the long-expired document is not indexed)
    for name in ("ok", "stale", "orphan", "pending"):
        put(f"changes/{name}.json")
    put(
        "changes/expired.json",
        status="completed",
        modified_at=(NOW - timedelta(days=400)).isoformat(),
    )
    Backfill(ObjectIndexer(store, objects), objects, bucket=bucket).run(BackfillFilters())
    # And drift made behind the index's back (no events)
    put("changes/missing.json")
    put("changes/stale.json", title="overwritten")
    s3.delete_object(Bucket=bucket, Key="changes/orphan.json")
    store.begin_pending(bucket, "changes/pending.json", "put")
    put(
        "changes/expired-present.json",
        status="completed",
        modified_at=(NOW - timedelta(days=85)).isoformat(),
    )
    Backfill(ObjectIndexer(store, objects), objects, bucket=bucket).run(
        BackfillFilters(prefixes=("changes/expired-present",))
    )
    later = NOW + timedelta(days=10)  # the pending write is old, the 85-day document expired
    reconciler = Reconciler(store, objects, bucket=bucket, clock=lambda: later)
    s3.put_object(Bucket=bucket, Key="changes/broken.json", Body=b"{ nope")
    # When verify runs
    report = reconciler.verify()
    # Then the invalid document is named, with its reason, and is not drift
    assert report.invalid == 1
    assert "not a JSON object" in report.invalid_reasons["changes/broken.json"]
    # Then it finds one key of each kind, and not the document expired by design
    found = {d.key: d.kind for d in report.drift}
    assert found == {
        "changes/missing.json": DriftKind.MISSING,
        "changes/stale.json": DriftKind.STALE,
        "changes/orphan.json": DriftKind.ORPHANED,
        "changes/pending.json": DriftKind.PENDING,
        "changes/expired-present.json": DriftKind.EXPIRED_PRESENT,
    }
    # When it repairs, a second verify finds no drift
    repaired = reconciler.verify(repair=True)
    assert repaired.repaired == 5
    assert repaired.repair_failures == {}
    assert reconciler.verify().drift == []
    stale = store.get_document(bucket, "changes/stale.json")
    assert stale is not None
    assert stale.title == "overwritten"
