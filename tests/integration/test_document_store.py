"""An application's documents with the cache on and off: the same scenarios, the same answers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from cachesync.document_store import CachedDocumentStore, DirectS3DocumentStore, DocumentStore
from cachesync.exceptions import DocumentNotFoundError, InvalidDocumentError
from cachesync.fallback_reader import FallbackReader
from cachesync.index_models import IndexQuery
from cachesync.local import LocalStack
from cachesync.local.stack import LOCAL_ACCESS_KEY_ID, LOCAL_REGION, LOCAL_SECRET_ACCESS_KEY
from cachesync.runtime import open_document_store
from cachesync.settings import DocumentStoreSettings
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.s3_objects import S3ObjectStore
from cachesync.write_through import DocumentWriter, IndexCommit

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

RETENTION = timedelta(days=3650)
START = datetime(2026, 2, 1, 9, tzinfo=UTC)


def change(number: int, customers: tuple[str, ...], status: str, when: datetime) -> dict[str, Any]:
    return {
        "object_type": "change",
        "change_id": f"CHG-{number}",
        "title": f"change {number}",
        "customers": list(customers),
        "status": status,
        "modified_at": when.isoformat(),
    }


def announcement(number: int, customers: tuple[str, ...], when: datetime) -> dict[str, Any]:
    return {
        "object_type": "announcement",
        "announcement_id": f"ANN-{number}",
        "title": f"announcement {number}",
        "customers": list(customers),
        "status": "published",
        "modified_at": when.isoformat(),
    }


@pytest.fixture
def bucket(s3_client: S3Client) -> str:
    name = f"docstore-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=name)
    return name


def cached(dynamodb: DynamoDBClient, s3: S3Client, table: str, bucket: str) -> CachedDocumentStore:
    index, objects = DynamoDBIndexStore(dynamodb, table), S3ObjectStore(s3)
    return CachedDocumentStore(
        FallbackReader(index, objects, bucket=bucket, retention=RETENTION),
        DocumentWriter(index, objects, bucket=bucket, retention=RETENTION),
        index,
    )


def direct(s3: S3Client, bucket: str) -> DirectS3DocumentStore:
    return DirectS3DocumentStore(S3ObjectStore(s3), bucket=bucket, retention=RETENTION)


@pytest.fixture(params=["cache on", "cache off"])
def store(
    request: pytest.FixtureRequest,
    dynamodb_client: DynamoDBClient,
    s3_client: S3Client,
    index_table: str,
    bucket: str,
) -> DocumentStore:
    if request.param == "cache on":
        return cached(dynamodb_client, s3_client, index_table, bucket)
    return direct(s3_client, bucket)


def walk(store: DocumentStore, query: IndexQuery) -> Iterator[str]:
    token = None
    while True:
        page = store.query(query.model_copy(update={"next_token": token}))
        assert len(page.items) <= query.limit
        yield from (item.key for item in page.items)
        token = page.next_token
        if token is None:
            return


def test_the_same_scenario_behaves_the_same(store: DocumentStore) -> None:
    # Given an application writing three documents and deleting one
    store.put("changes/a.json", change(1, ("acme",), "approved", START))
    store.put(
        "changes/b b+c.json", change(2, ("acme", "globex"), "draft", START + timedelta(days=1))
    )
    store.put("news/n.json", announcement(3, ("globex",), START + timedelta(days=2)))
    receipt = store.delete("changes/a.json")
    # When it reads and queries
    read = store.get("changes/b b+c.json")
    by_customer = list(walk(store, IndexQuery(customer="globex", since=START, limit=1)))
    by_status = list(walk(store, IndexQuery(statuses=("approved", "draft"), since=START)))
    # Then the answers are those of the documents S3 holds, whichever way they were found
    assert receipt.operation == "delete"
    assert json.loads(read.body)["change_id"] == "CHG-2"
    assert by_customer == ["news/n.json", "changes/b b+c.json"]
    assert by_status == ["changes/b b+c.json"]
    with pytest.raises(DocumentNotFoundError):
        store.get("changes/a.json")
    # and an invalid document is refused before anything is written
    with pytest.raises(InvalidDocumentError):
        store.put("changes/bad.json", {"object_type": "change"})
    with pytest.raises(DocumentNotFoundError):
        store.get("changes/bad.json")


def test_queries_answer_the_same_with_the_cache_on_and_off(
    dynamodb_client: DynamoDBClient, s3_client: S3Client, index_table: str, bucket: str
) -> None:
    # Given 40 documents written through the cache (so the index and S3 both hold them)
    on = cached(dynamodb_client, s3_client, index_table, bucket)
    off = direct(s3_client, bucket)
    customers = (("acme",), ("globex",), ("acme", "initech"), ("initech",))
    statuses = ("draft", "approved", "scheduled", "completed")
    for number in range(40):
        when = START + timedelta(days=5 * number, minutes=number)
        body = (
            announcement(number, customers[number % 4], when)
            if number % 7 == 6
            else change(number, customers[number % 4], statuses[number % 4], when)
        )
        on.put(f"docs/{number:02d}.json", body)
    on.delete("docs/03.json")
    # When the same queries are walked both ways, in pages of 7
    queries = [
        IndexQuery(since=START, limit=7),
        IndexQuery(customer="acme", since=START, limit=7, order="asc"),
        IndexQuery(status="approved", since=START, limit=7),
        IndexQuery(statuses=("draft", "completed"), since=START, limit=7),
        IndexQuery(kind="announcement", since=START, limit=7),
        IndexQuery(within_customers=("globex", "initech"), since=START, limit=7),
        IndexQuery(since=START + timedelta(days=30), until=START + timedelta(days=90), limit=7),
    ]
    # Then every query gives the same documents in the same order
    for query in queries:
        with_cache, without = list(walk(on, query)), list(walk(off, query))
        assert with_cache, query
        assert with_cache == without, query


def test_the_switch_comes_from_the_settings(local_stack: LocalStack, bucket: str) -> None:
    # Given the application's settings with the cache off, then on
    options = {
        service: {
            "endpoint_url": endpoint,
            "region_name": LOCAL_REGION,
            "aws_access_key_id": LOCAL_ACCESS_KEY_ID,
            "aws_secret_access_key": LOCAL_SECRET_ACCESS_KEY,
        }
        for service, endpoint in (
            ("dynamodb", local_stack.dynamodb_endpoint),
            ("s3", local_stack.moto_endpoint),
        )
    }
    base = {"table_name": "unused-table", "bucket_name": bucket, "retention_days": 3650}
    off = open_document_store(
        DocumentStoreSettings.model_validate({**base, "cache_enabled": "false"}),
        client_options=options,
    )
    on = open_document_store(DocumentStoreSettings.model_validate(base), client_options=options)
    # When the application writes with the cache off
    receipt = off.put("x.json", change(1, ("acme",), "approved", START))
    # Then S3 alone was written (the index table does not even exist), and the same code
    # reads it back
    assert isinstance(off, DirectS3DocumentStore)
    assert isinstance(on, CachedDocumentStore)
    assert receipt.index == IndexCommit.BYPASSED
    assert json.loads(off.get("x.json").body)["change_id"] == "CHG-1"
