"""Transient AWS failures injected at the HTTP boundary (botocore's before-send hook)."""

from __future__ import annotations

from typing import Any

import pytest

from cachesync.exceptions import IndexRequestError, IndexUnavailableError
from cachesync.index_models import IndexQuery
from cachesync.retry_policies import RetryPolicy
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from tests.integration.test_index_store import entry
from tests.support.faults import Fail


def fast_store(client: Any, table: str, attempts: int = 5) -> DynamoDBIndexStore:
    return DynamoDBIndexStore(
        client, table, retry_policy=RetryPolicy(attempts=attempts, initial_wait_seconds=0.01)
    )


@pytest.mark.parametrize(
    ("code", "status", "operation"),
    [
        ("ProvisionedThroughputExceededException", 400, "PutItem"),
        ("ThrottlingException", 400, "PutItem"),
        ("RequestLimitExceeded", 400, "PutItem"),
        ("InternalServerError", 500, "PutItem"),
        ("ThrottlingException", 400, "TransactWriteItems"),
        ("ThrottlingException", 400, "Query"),
    ],
)
def test_throttling_is_absorbed_by_bounded_retries(
    dynamodb_client: Any, index_table: str, code: str, status: int, operation: str
) -> None:
    # Given DynamoDB answers the first three calls of an operation with a transient error
    fail = Fail(status, code, times=3)
    dynamodb_client.meta.events.register(f"before-send.dynamodb.{operation}", fail)
    store = fast_store(dynamodb_client, index_table)
    # When the store writes (a two-customer document is a transaction) and queries
    customers = ["acme", "globex"] if operation == "TransactWriteItems" else ["acme"]
    store.put_document(entry("changes/retried.json", customers=customers))
    page = store.query(IndexQuery(customer="acme"))
    # Then the retries absorbed the failures and nothing was lost
    assert fail.failed == 3
    assert [item.key for item in page.items] == ["changes/retried.json"]


def test_retries_are_bounded_and_surface_as_index_unavailable(
    dynamodb_client: Any, index_table: str
) -> None:
    fail = Fail(400, "ThrottlingException", times=100)
    dynamodb_client.meta.events.register("before-send.dynamodb.GetItem", fail)
    store = fast_store(dynamodb_client, index_table, attempts=4)
    with pytest.raises(IndexUnavailableError) as caught:
        store.get_document("docs", "changes/x.json")
    assert fail.failed == 4
    assert caught.value.code == "ThrottlingException"


def test_permanent_errors_are_not_retried(dynamodb_client: Any) -> None:
    # Given a table that does not exist
    calls: list[str] = []
    dynamodb_client.meta.events.register(
        "before-send.dynamodb.GetItem", lambda **_: calls.append("GetItem")
    )
    store = fast_store(dynamodb_client, "no-such-table")
    # When the store reads from it
    with pytest.raises(IndexRequestError) as caught:
        store.get_document("docs", "changes/x.json")
    # Then the error surfaces at once, as a domain error naming the AWS code
    assert caught.value.code == "ResourceNotFoundException"
    assert calls == ["GetItem"]
