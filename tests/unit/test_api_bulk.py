"""Bulk results as the API reports them: receipts, problems, scoped idempotency keys."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools import Logger
from pydantic import ValidationError

from cachesync.api.bulk_documents import bulk_operations, item_result, run_bulk
from cachesync.api.models import BulkItem, BulkRequest
from cachesync.api.problems import forbidden
from cachesync.bulk_writes import BulkOperation, BulkOutcome
from cachesync.exceptions import InvalidDocumentError
from cachesync.rate_limit import TokenBucket
from cachesync.write_through import DocumentWriter, WriteReceipt

DOCUMENT: dict[str, Any] = {"object_type": "change", "change_id": "C1"}


def receipt() -> WriteReceipt:
    return WriteReceipt.model_validate(
        {"operation": "put", "bucket": "b", "key": "k.json", "etag": "e", "index": "committed"}
    )


def test_a_succeeded_outcome_is_a_200_with_its_receipt_and_no_problem() -> None:
    # Given a completed put
    operation = BulkOperation(operation="put", key="k.json", document=DOCUMENT)
    # When it is reported
    result = item_result(BulkOutcome(position=3, operation=operation, receipt=receipt()))
    # Then it carries its index, status 200 and the receipt
    assert (result.index, result.key, result.op, result.status) == (3, "k.json", "put", 200)
    assert result.receipt is not None
    assert result.receipt.etag == "e"
    assert result.problem is None


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (forbidden("not yours"), 403, "forbidden"),
        (InvalidDocumentError("k.json", "no id", field="change_id"), 422, "invalid-document"),
    ],
)
def test_a_failed_outcome_is_the_problem_a_single_request_would_answer(
    error: Exception, status: int, slug: str
) -> None:
    # Given a failed delete
    operation = BulkOperation(operation="delete", key="k.json")
    # When it is reported
    result = item_result(BulkOutcome(position=0, operation=operation, error=error))  # type: ignore[arg-type]
    # Then its status and problem are those of the single route, without a receipt
    assert result.status == status
    assert result.problem is not None
    assert result.problem.type == f"urn:cachesync:problem:{slug}"
    assert result.receipt is None


def test_idempotency_keys_are_scoped_and_absent_ones_stay_absent() -> None:
    # Given a request with and without an idempotency key
    request = BulkRequest(
        items=[
            BulkItem(op="put", key="a.json", document=DOCUMENT, idempotency_key="i-1"),
            BulkItem(op="delete", key="b.json"),
        ]
    )
    # When it becomes operations under a scope
    operations = bulk_operations(request, lambda value: None if value is None else f"k1:{value}")
    # Then the key is scoped, and None stays None
    assert [o.idempotency_key for o in operations] == ["k1:i-1", None]
    assert [o.operation for o in operations] == ["put", "delete"]


def test_an_item_needs_a_document_exactly_when_it_is_a_put() -> None:
    # Given / When / Then
    with pytest.raises(ValidationError, match="a put needs a document"):
        BulkItem(op="put", key="a.json")
    with pytest.raises(ValidationError, match="a delete takes no document"):
        BulkItem(op="delete", key="a.json", document={})


def test_an_item_that_cannot_get_a_write_slot_in_time_is_its_own_429() -> None:
    # Given a writer whose write rate (one per 1000 s) is used up, and a check that passes
    limiter = TokenBucket(rate_per_second=0.001, burst=1)
    limiter.acquire()
    absent: Any = None  # the stores: never reached, the limiter refuses first
    writer = DocumentWriter(absent, absent, bucket="b", limiter=limiter)
    operations = [
        BulkOperation(operation="delete", key="a.json"),
        BulkOperation(operation="delete", key="b.json"),
    ]
    # When the bulk runs
    status, result = run_bulk(
        writer, operations, concurrency=2, check=lambda _: None, logger=Logger(service="t")
    )
    # Then each item is a 429 problem at once (no wait of 1000 s), the request a 207
    assert status == 207
    assert [item.status for item in result.items] == [429, 429]
    assert (result.succeeded, result.failed) == (0, 2)
