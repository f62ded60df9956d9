"""Bulk writes against DynamoDB Local and moto: each operation its own saga, results in order."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from cachesync.bulk_writes import BulkOperation, BulkWriter
from cachesync.exceptions import InvalidDocumentError, WriteFailedError
from cachesync.local import LocalStack
from cachesync.retry_policies import RetryPolicy
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.s3_objects import S3ObjectStore
from cachesync.write_through import DocumentWriter
from tests.support.faults import error_response
from tests.support.s3_events import change_document

FAST = RetryPolicy(attempts=2, initial_wait_seconds=0.01, max_wait_seconds=0.02)
REFUSED_KEY = "bulk/s3-refuses.json"


def document(number: int) -> dict[str, Any]:
    return json.loads(change_document(f"CHG-B{number}"))


def refuse_one_key(request: Any, event_name: str, **_: Any) -> Any:
    """S3 refuses the PutObject of REFUSED_KEY (AccessDenied: not retried), and only that."""
    if REFUSED_KEY.split("/")[-1] in request.url:
        return error_response(request, event_name, 403, "AccessDenied")
    return None


def test_a_mixed_bulk_fails_item_by_item_and_s3_and_the_index_agree_afterwards(
    local_stack: LocalStack, index_table: str
) -> None:
    # Given a writer whose S3 refuses one key, and 24 operations: 20 valid puts, an invalid
    # document, the refused key, and a put then a delete of one key
    dynamodb, s3 = local_stack.client("dynamodb"), local_stack.client("s3")
    bucket = f"bulk-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.meta.events.register("before-send.s3.PutObject", refuse_one_key)
    index = DynamoDBIndexStore(dynamodb, index_table, retry_policy=FAST)
    writer = DocumentWriter(index, S3ObjectStore(s3, retry_policy=FAST), bucket=bucket)
    operations = [
        BulkOperation(operation="put", key=f"bulk/{n:02d}.json", document=document(n))
        for n in range(20)
    ]
    operations.insert(5, BulkOperation(operation="put", key="bulk/bad.json", document={"x": 1}))
    operations.insert(9, BulkOperation(operation="put", key=REFUSED_KEY, document=document(99)))
    operations += [
        BulkOperation(operation="put", key="bulk/short-lived.json", document=document(50)),
        BulkOperation(operation="delete", key="bulk/short-lived.json"),
    ]
    heard: list[int] = []
    # When they run, four at a time
    report = BulkWriter(writer, workers=4).run(
        operations, on_outcome=lambda outcome: heard.append(outcome.position)
    )
    # Then every operation has its outcome, in request order; only the two bad ones failed
    assert [outcome.position for outcome in report.outcomes] == list(range(24))
    assert sorted(heard) == list(range(24))
    assert report.failed == 2
    assert isinstance(report.outcomes[5].error, InvalidDocumentError)
    assert isinstance(report.outcomes[9].error, WriteFailedError)
    assert all(o.receipt is not None for o in report.outcomes if o.position not in (5, 9))
    assert [o.receipt.operation for o in report.outcomes[-2:] if o.receipt] == ["put", "delete"]
    # and S3 and the index agree on every key: present in both, or absent from both
    in_s3 = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert in_s3 == {f"bulk/{n:02d}.json" for n in range(20)}
    for operation in operations:
        indexed = index.get_document(bucket, operation.key)
        assert (indexed is not None) == (operation.key in in_s3), operation.key


def test_an_operation_needs_a_document_exactly_when_it_is_a_put() -> None:
    # Given / When / Then a put without a document and a delete with one are refused up front
    with pytest.raises(ValueError, match="a put needs a document"):
        BulkOperation(operation="put", key="a.json")
    with pytest.raises(ValueError, match="a delete takes no document"):
        BulkOperation(operation="delete", key="a.json", document={})
