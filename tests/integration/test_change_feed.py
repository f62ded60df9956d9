"""The change feed over DynamoDB Local: real index writes, the table's real stream, the feed table.

Each test writes through the index store (documents, write-through markers, rollbacks,
tombstones), reads what the index table's stream recorded, runs it through the change feed,
and checks the domain events it published and the analytics it counted.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from cachesync.change_events import DomainEvent, EventType
from cachesync.change_feed import ChangeFeed, stream_change
from cachesync.change_feed_schema import FeedAttr, create_change_feed_table_request
from cachesync.documents import parse_document
from cachesync.index_models import IndexEntry, ObjectVersion, Tombstone, WriteSource
from cachesync.index_schema import create_table_request
from cachesync.local import LocalStack
from cachesync.local.stream_reader import DynamoDBStreamReader
from cachesync.stores.dynamodb_change_feed import DynamoDBChangeFeedStore
from cachesync.stores.dynamodb_index import DynamoDBIndexStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BUCKET = "docs"
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@dataclass
class CollectingPublisher:
    """Keeps every event it is handed (a webhook fan-out stand-in with no network)."""

    events: list[DomainEvent] = field(default_factory=list)

    def publish(self, event: DomainEvent) -> None:
        self.events.append(event)


@dataclass
class FeedWorld:
    """A stream-enabled index table, its stream reader, and a change feed on a fresh table."""

    index: DynamoDBIndexStore
    reader: DynamoDBStreamReader
    store: DynamoDBChangeFeedStore
    publisher: CollectingPublisher
    feed: ChangeFeed

    def stream(self) -> list[dict[str, Any]]:
        """Every record the index's stream holds, in stream order."""
        records = [
            record for shard in self.reader.shard_ids() for record in self.reader.records(shard)
        ]
        return sorted(records, key=lambda r: int(r["dynamodb"]["SequenceNumber"]))

    def run(self, records: list[dict[str, Any]]) -> list[DomainEvent]:
        """Run ``records`` through the feed; the events it published meanwhile."""
        before = len(self.publisher.events)
        for record in records:
            self.feed.process(stream_change(record))
        return self.publisher.events[before:]


@pytest.fixture
def world(local_stack: LocalStack, dynamodb_client: DynamoDBClient) -> Iterator[FeedWorld]:
    suffix = uuid.uuid4().hex[:8]
    index_name, feed_name = f"feed-index-{suffix}", f"feed-state-{suffix}"
    created = dynamodb_client.create_table(**create_table_request(index_name))
    dynamodb_client.create_table(**create_change_feed_table_request(feed_name))
    stream_arn = created["TableDescription"]["LatestStreamArn"]
    publisher = CollectingPublisher()
    store = DynamoDBChangeFeedStore(dynamodb_client, feed_name)
    yield FeedWorld(
        index=DynamoDBIndexStore(dynamodb_client, index_name),
        reader=DynamoDBStreamReader(local_stack.client("dynamodbstreams"), stream_arn),
        store=store,
        publisher=publisher,
        feed=ChangeFeed(store, [publisher]),
    )
    dynamodb_client.delete_table(TableName=index_name)
    dynamodb_client.delete_table(TableName=feed_name)


def entry(
    key: str,
    *,
    status: str = "approved",
    customers: tuple[str, ...] = ("acme",),
    title: str = "Upgrade",
    etag: str = "e1",
    modified: datetime = START,
) -> IndexEntry:
    raw = json.dumps(
        {
            "object_type": "change",
            "change_id": f"CHG-{key}",
            "status": status,
            "title": title,
            "customers": list(customers),
            "modified_at": modified.isoformat(),
        }
    )
    version = ObjectVersion(
        bucket=BUCKET, key=key, etag=etag, size=len(raw), last_modified=modified
    )
    document = parse_document(key, raw, s3_last_modified=modified)
    return IndexEntry(version=version, document=document, source=WriteSource.EVENT)


def tombstone(key: str, at: datetime) -> Tombstone:
    return Tombstone(bucket=BUCKET, key=key, deleted_at=at, source=WriteSource.EVENT)


def test_every_kind_of_index_change_publishes_exactly_its_domain_events(world: FeedWorld) -> None:
    # Given a document indexed, its status changed, then rewritten by a write-through (new
    # body), a write-through rolled back, a second customer added, and finally deleted
    later = START + timedelta(minutes=1)
    world.index.put_document(entry("a.json"))
    world.index.put_document(entry("a.json", status="completed", etag="e2", modified=later))
    pending = world.index.begin_pending(BUCKET, "a.json", "put")
    third = START + timedelta(minutes=2)
    committed = entry("a.json", status="completed", etag="e3", modified=third, title="New")
    assert world.index.commit_document(pending, committed)
    rolled_back = world.index.begin_pending(BUCKET, "a.json", "put")
    assert world.index.rollback_pending(rolled_back)
    fourth = START + timedelta(minutes=3)
    both = entry(
        "a.json",
        status="completed",
        customers=("acme", "globex"),
        title="New",
        etag="e4",
        modified=fourth,
    )
    world.index.put_document(both)
    world.index.put_tombstone(tombstone("a.json", START + timedelta(minutes=4)))
    # When the feed reads the table's stream
    records = world.stream()
    events = world.run(records)
    # Then exactly one event per document change, in order, naming what changed
    assert [(e.type, e.changed) for e in events] == [
        (EventType.CREATED, ()),
        (EventType.UPDATED, ("status", "content")),
        (EventType.UPDATED, ("title", "content")),
        (EventType.UPDATED, ("customers", "content")),
        (EventType.DELETED, ()),
    ]
    assert events[1].document is not None
    assert events[1].document.etag == "e2"
    assert events[-1].previous is not None
    assert events[-1].previous.customers == ("acme", "globex")
    # And the stream held more records than events: markers, the rollback and link items
    assert len(records) > len(events)
    # And the whole stream delivered again publishes nothing and counts nothing twice
    counted = world.store.volume("2026-11-01", "2026-12-31")
    assert world.run(records) == []
    assert world.store.volume("2026-11-01", "2026-12-31") == counted


def _live_cells(index: DynamoDBIndexStore) -> Counter[tuple[str, str, str]]:
    """Documents per (customer, status, kind), counted from the index itself."""
    cells: Counter[tuple[str, str, str]] = Counter()
    for key, state in index.scan_entries(BUCKET):
        if state.is_tombstone or state.is_pending:
            continue
        document = index.get_document(BUCKET, key)
        assert document is not None
        for customer in document.customers:
            cells[(customer, document.status, document.kind.value)] += 1
    return cells


def test_aggregates_equal_a_recount_from_the_index_after_a_random_workload_with_retries(
    world: FeedWorld,
) -> None:
    # Given a random workload over a few keys: creations, status and customer changes,
    # write-throughs (some rolled back) and deletions, over three days
    rng = random.Random(20261201)
    moment = START
    for step in range(60):
        moment += timedelta(minutes=rng.randint(1, 90))
        key = f"k{rng.randint(0, 5)}.json"
        action = rng.random()
        document = entry(
            key,
            status=rng.choice(["draft", "approved", "completed"]),
            customers=tuple(rng.sample(["acme", "globex", "initech"], rng.randint(1, 2))),
            etag=f"e{step}",
            modified=moment,
        )
        if action < 0.55:
            world.index.put_document(document)
        elif action < 0.75:
            pending = world.index.begin_pending(BUCKET, key, "put")
            if rng.random() < 0.3:
                world.index.rollback_pending(pending)
            else:
                world.index.commit_document(pending, document)
        else:
            world.index.put_tombstone(tombstone(key, moment))
    # When the feed reads the stream with retries: random stretches delivered again
    records = world.stream()
    position = 0
    while position < len(records):
        step = rng.randint(1, 8)
        world.run(records[position : position + step])
        if rng.random() < 0.4:
            world.run(records[max(0, position - rng.randint(1, 6)) : position + step])
        position += step
    # Then per (customer, status, kind): created + entered - left - deleted == documents now
    totals: Counter[tuple[str, str, str]] = Counter()
    for row in world.store.volume("2026-11-01", "2026-12-31"):
        counters = row.counters
        net = (
            counters.get(FeedAttr.CREATED, 0)
            + counters.get(FeedAttr.ENTERED, 0)
            - counters.get(FeedAttr.LEFT, 0)
            - counters.get(FeedAttr.DELETED, 0)
        )
        totals[(row.customer, row.status, row.kind)] += net
    assert +totals == _live_cells(world.index)
    # And each event was published once, whatever the retries (ids are unique)
    ids = [event.id for event in world.publisher.events]
    assert len(ids) == len(set(ids))
