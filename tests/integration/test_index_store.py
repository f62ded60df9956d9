"""The index store against DynamoDB Local: guarded writes, tombstones, queries, TTL, limits."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from cachesync.documents import DocumentKind, parse_document
from cachesync.exceptions import InvalidQueryError, ItemTooLargeError
from cachesync.index_models import (
    IndexEntry,
    IndexQuery,
    ObjectVersion,
    Tombstone,
    WriteOutcome,
    WriteSource,
)
from cachesync.index_schema import CUSTOMER_SORT_KEY_PREFIX, PARTITION_KEY, document_pk
from cachesync.sequencer import normalise_sequencer
from cachesync.stores.dynamodb_index import DynamoDBIndexStore

BUCKET = "docs"
NOW = datetime.now(UTC).replace(microsecond=0)


def entry(
    key: str,
    *,
    seq: str | None = "0100",
    etag: str = "e1",
    customers: list[str] | None = None,
    status: str = "approved",
    modified: datetime | None = None,
    lm: datetime = NOW,
    body_extra: dict[str, object] | None = None,
    kind: str = "change",
) -> IndexEntry:
    doc: dict[str, object] = {
        "object_type": kind,
        "status": status,
        "title": f"title of {key}",
        "customers": customers if customers is not None else ["acme"],
        "modified_at": (modified or NOW - timedelta(days=1)).isoformat(),
        **(body_extra or {}),
    }
    doc["change_id" if kind == "change" else "announcement_id"] = key
    raw = json.dumps(doc)
    parsed = parse_document(key, raw, s3_last_modified=lm)
    version = ObjectVersion(
        bucket=BUCKET,
        key=key,
        etag=etag,
        size=len(raw),
        last_modified=lm,
        sequencer=normalise_sequencer(seq),
    )
    return IndexEntry(version=version, document=parsed, source=WriteSource.EVENT)


def tombstone(key: str, seq: str | None = "0200", at: datetime = NOW) -> Tombstone:
    return Tombstone(
        bucket=BUCKET,
        key=key,
        deleted_at=at,
        sequencer=normalise_sequencer(seq),
        source=WriteSource.EVENT,
    )


def keys(page_items: list) -> list[str]:  # type: ignore[type-arg]
    return [item.key for item in page_items]


def test_put_then_get_returns_the_document_with_its_body(index_store: DynamoDBIndexStore) -> None:
    # Given a document indexed from an event
    result = index_store.put_document(entry("changes/a.json", body_extra={"risk": "low"}))
    # When it is read back
    document = index_store.get_document(BUCKET, "changes/a.json")
    # Then the write applied and the body, etag and sequencer are stored
    assert result.outcome is WriteOutcome.APPLIED
    assert document is not None
    assert json.loads(document.body or "{}")["risk"] == "low"
    assert document.etag == "e1"
    assert document.sequencer == normalise_sequencer("0100")
    assert document.source is WriteSource.EVENT
    assert not document.body_in_s3


def test_an_older_sequencer_never_overwrites_newer_state(index_store: DynamoDBIndexStore) -> None:
    # Given the index holds the state of a later event
    index_store.put_document(entry("changes/a.json", seq="0200", etag="new"))
    # When an earlier event arrives late
    result = index_store.put_document(entry("changes/a.json", seq="01FF", etag="old"))
    # Then it is refused as stale and the newer state stays
    assert result.outcome is WriteOutcome.STALE
    stored = index_store.get_document(BUCKET, "changes/a.json")
    assert stored is not None
    assert stored.etag == "new"


def test_a_redelivered_event_is_a_duplicate(index_store: DynamoDBIndexStore) -> None:
    index_store.put_document(entry("changes/a.json", seq="0100"))
    result = index_store.put_document(entry("changes/a.json", seq="0100"))
    assert result.outcome is WriteOutcome.DUPLICATE


def test_sequencers_of_different_length_compare_by_right_padding(
    index_store: DynamoDBIndexStore,
) -> None:
    # Given a stored state with a long sequencer
    index_store.put_document(entry("changes/a.json", seq="0A0F", etag="long"))
    # When a shorter but greater sequencer arrives (0B > 0A0F once right-padded)
    result = index_store.put_document(entry("changes/a.json", seq="0b", etag="short"))
    # Then it wins
    assert result.outcome is WriteOutcome.APPLIED


def test_tombstone_hides_the_document_and_refuses_a_late_create(
    index_store: DynamoDBIndexStore,
) -> None:
    # Given an indexed document with two customers, then deleted
    index_store.put_document(entry("changes/a.json", seq="0100", customers=["acme", "globex"]))
    deleted = index_store.put_tombstone(tombstone("changes/a.json", seq="0200"))
    # When a create event older than the delete arrives late
    late = index_store.put_document(entry("changes/a.json", seq="0150"))
    # Then the delete applied, the late create is stale, and nothing is visible anywhere
    assert deleted.outcome is WriteOutcome.APPLIED
    assert late.outcome is WriteOutcome.STALE
    assert index_store.get_document(BUCKET, "changes/a.json") is None
    for customer in ("acme", "globex"):
        assert index_store.query(IndexQuery(customer=customer)).items == []
    assert index_store.query(IndexQuery()).items == []
    assert index_store.query(IndexQuery(status="approved")).items == []
    state = index_store.get_state(BUCKET, "changes/a.json")
    assert state is not None
    assert state.is_tombstone
    assert state.expires_at is not None


def test_a_late_delete_never_removes_a_newer_object(index_store: DynamoDBIndexStore) -> None:
    index_store.put_document(entry("changes/a.json", seq="0300"))
    result = index_store.put_tombstone(tombstone("changes/a.json", seq="0200"))
    assert result.outcome is WriteOutcome.STALE
    assert index_store.get_document(BUCKET, "changes/a.json") is not None


def test_a_newer_create_after_a_tombstone_applies(index_store: DynamoDBIndexStore) -> None:
    index_store.put_document(entry("changes/a.json", seq="0100"))
    index_store.put_tombstone(tombstone("changes/a.json", seq="0200"))
    result = index_store.put_document(entry("changes/a.json", seq="0300", etag="again"))
    assert result.outcome is WriteOutcome.APPLIED
    assert index_store.query(IndexQuery(customer="acme")).items[0].etag == "again"


def test_changing_customers_removes_the_document_from_customers_it_no_longer_names(
    index_store: DynamoDBIndexStore, dynamodb_client: object
) -> None:
    # Given a document for acme and globex
    index_store.put_document(entry("changes/a.json", seq="01", customers=["acme", "globex"]))
    # When it is updated to name globex and initech
    result = index_store.put_document(
        entry("changes/a.json", seq="02", customers=["globex", "initech"])
    )
    # Then customer queries follow, and acme's link item is gone from the table
    assert result.outcome is WriteOutcome.APPLIED
    assert index_store.query(IndexQuery(customer="acme")).items == []
    assert keys(index_store.query(IndexQuery(customer="globex")).items) == ["changes/a.json"]
    assert keys(index_store.query(IndexQuery(customer="initech")).items) == ["changes/a.json"]
    response = dynamodb_client.query(  # type: ignore[attr-defined]
        TableName=index_store.table_name,
        KeyConditionExpression="#pk = :pk AND begins_with(sk, :c)",
        ExpressionAttributeNames={"#pk": PARTITION_KEY},
        ExpressionAttributeValues={
            ":pk": {"S": document_pk(BUCKET, "changes/a.json")},
            ":c": {"S": CUSTOMER_SORT_KEY_PREFIX},
        },
        ConsistentRead=True,
    )
    # (globex, the smallest code, is the primary: the document item is its index entry)
    assert sorted(item["sk"]["S"] for item in response["Items"]) == ["customer#initech"]


def test_queries_walk_time_periods_and_pages_in_order(index_store: DynamoDBIndexStore) -> None:
    # Given 23 documents spread over 13 months (several monthly and yearly periods)
    start = NOW - timedelta(days=390)
    written = []
    for number in range(23):
        moment = start + timedelta(days=17 * number)
        key = f"changes/c{number:02d}.json"
        index_store.put_document(entry(key, modified=moment, customers=["acme"]))
        written.append(key)
    # When they are read in pages of 5, newest first, over a window covering all of them
    for query_kwargs in ({}, {"customer": "acme"}, {"status": "approved"}):
        seen: list[str] = []
        token = None
        while True:
            page = index_store.query(
                IndexQuery(
                    since=start - timedelta(days=1), limit=5, next_token=token, **query_kwargs
                )
            )
            assert len(page.items) <= 5
            seen += keys(page.items)
            token = page.next_token
            if token is None:
                break
        # Then every document comes exactly once, in descending time order
        assert seen == list(reversed(written)), query_kwargs


def test_ascending_order_and_time_window(index_store: DynamoDBIndexStore) -> None:
    for day in (1, 10, 20, 40):
        index_store.put_document(
            entry(f"changes/d{day:02d}.json", modified=NOW - timedelta(days=day))
        )
    page = index_store.query(
        IndexQuery(since=NOW - timedelta(days=25), until=NOW - timedelta(days=5), order="asc")
    )
    assert keys(page.items) == ["changes/d20.json", "changes/d10.json"]


def test_default_window_is_one_year(index_store: DynamoDBIndexStore) -> None:
    index_store.put_document(entry("changes/recent.json", modified=NOW - timedelta(days=30)))
    index_store.put_document(entry("changes/ancient.json", modified=NOW - timedelta(days=500)))
    assert keys(index_store.query(IndexQuery()).items) == ["changes/recent.json"]


def test_kind_and_status_filters(index_store: DynamoDBIndexStore) -> None:
    index_store.put_document(entry("changes/a.json", status="approved"))
    index_store.put_document(entry("changes/b.json", status="draft"))
    index_store.put_document(entry("announcements/c.json", kind="announcement", status="published"))
    assert keys(index_store.query(IndexQuery(kind=DocumentKind.ANNOUNCEMENT)).items) == [
        "announcements/c.json"
    ]
    assert keys(index_store.query(IndexQuery(customer="acme", status="draft")).items) == [
        "changes/b.json"
    ]
    assert keys(index_store.query(IndexQuery(status="approved")).items) == ["changes/a.json"]


def test_expired_entries_are_filtered_from_reads_and_queries(
    index_store_at: Callable[[datetime], DynamoDBIndexStore],
) -> None:
    # Given a completed change whose retention has passed (DynamoDB Local never deletes it)
    store = index_store_at(NOW)
    store.put_document(
        entry("changes/old.json", status="completed", modified=NOW - timedelta(days=100))
    )
    store.put_document(entry("changes/open.json", status="approved"))
    # When it is read and queried
    # Then it is not returned, while the open change is
    assert store.get_document(BUCKET, "changes/old.json") is None
    assert keys(store.query(IndexQuery(customer="acme")).items) == ["changes/open.json"]
    assert keys(store.query(IndexQuery(status="completed")).items) == []
    # And a reader whose clock is before the expiry still sees it
    earlier = index_store_at(NOW - timedelta(days=50))
    assert earlier.get_document(BUCKET, "changes/old.json") is not None


def test_body_too_large_is_stored_as_metadata_only(index_store: DynamoDBIndexStore) -> None:
    # Given a document of about 500 KB (over DynamoDB's 400 KB item limit)
    big = entry("changes/big.json", body_extra={"payload": "x" * 500_000})
    # When it is indexed
    result = index_store.put_document(big)
    # Then the metadata is indexed and flagged so readers fetch the body from S3
    stored = index_store.get_document(BUCKET, "changes/big.json")
    assert result.outcome is WriteOutcome.APPLIED
    assert stored is not None
    assert stored.body is None
    assert stored.body_in_s3
    assert keys(index_store.query(IndexQuery(customer="acme")).items) == ["changes/big.json"]


def test_a_body_just_under_the_limit_is_kept(index_store: DynamoDBIndexStore) -> None:
    index_store.put_document(entry("changes/mid.json", body_extra={"payload": "x" * 350_000}))
    stored = index_store.get_document(BUCKET, "changes/mid.json")
    assert stored is not None
    assert stored.body is not None
    assert not stored.body_in_s3


def test_metadata_too_large_is_a_clear_error(index_store: DynamoDBIndexStore) -> None:
    # Given an entry whose title alone exceeds DynamoDB's item limit (parse_document refuses
    # such a title: the store's own guard is checked on an entry built around it)
    small = entry("changes/t.json")
    huge_title = small.model_copy(
        update={"document": small.document.model_copy(update={"title": "t" * 450_000})}
    )
    # When / Then it cannot be indexed, and says so
    with pytest.raises(ItemTooLargeError):
        index_store.put_document(huge_title)


def test_a_token_from_another_query_is_refused(index_store: DynamoDBIndexStore) -> None:
    for number in range(3):
        index_store.put_document(entry(f"changes/{number}.json"))
    page = index_store.query(IndexQuery(limit=1))
    assert page.next_token is not None
    with pytest.raises(InvalidQueryError, match="another query"):
        index_store.query(IndexQuery(limit=1, customer="acme", next_token=page.next_token))
    with pytest.raises(InvalidQueryError, match="not a token"):
        index_store.query(IndexQuery(limit=1, next_token="garbage!"))


def test_sequencer_less_writes_are_ordered_by_s3_time(index_store: DynamoDBIndexStore) -> None:
    index_store.put_document(entry("changes/a.json", seq=None, etag="v2", lm=NOW))
    older = index_store.put_document(
        entry("changes/a.json", seq=None, etag="v1", lm=NOW - timedelta(seconds=5))
    )
    same = index_store.put_document(entry("changes/a.json", seq=None, etag="v2", lm=NOW))
    assert older.outcome is WriteOutcome.STALE
    assert same.outcome is WriteOutcome.DUPLICATE


def test_page_tokens_carry_only_keys_of_items_the_caller_was_shown(
    index_store: DynamoDBIndexStore,
) -> None:
    # Given documents of acme and globex between many of initech's, and statuses the query
    # leaves out between the asked ones
    for number in range(40):
        customers = ["acme"] if number % 8 == 0 else ["globex"] if number % 8 == 4 else ["initech"]
        status = "draft" if number % 3 else "approved"
        index_store.put_document(
            entry(
                f"leak/{number:02d}.json",
                customers=customers,
                status=status,
                modified=NOW - timedelta(hours=number + 1),
            )
        )
    shown: set[str] = set()
    queries = [
        IndexQuery(within_customers=("acme", "globex"), limit=2),
        IndexQuery(statuses=("approved", "completed"), kind="change", limit=2),
    ]
    for query in queries:
        token: str | None = None
        while True:
            # When a caller limited to acme and globex (or to some statuses) walks two a page
            page = index_store.query(query.model_copy(update={"next_token": token}))
            shown |= {document_pk(BUCKET, item.key) for item in page.items}
            token = page.next_token
            if token is None:
                break
            # Then the (readable, unsigned) token names only documents already shown
            payload = json.loads(base64.urlsafe_b64decode(token))
            named = {lane[PARTITION_KEY] for lane in payload["k"] if isinstance(lane, dict)}
            assert named <= shown, named - shown
