"""The write_through and fallback_read entry points, invoked with the samples in events/."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from cachesync.exceptions import InvalidDocumentError, InvalidRequestError
from cachesync.index_schema import create_idempotency_table_request
from cachesync.local import LocalStack
from cachesync.local.lambda_functions import LambdaHandler, LocalLambdaContext, load_handler
from cachesync.local.pipeline import LOCAL_FUNCTION_ENVIRONMENT
from tests.support.s3_events import load_event


@pytest.fixture
def functions(
    local_stack: LocalStack, index_table: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, LambdaHandler]:
    dynamodb = local_stack.client("dynamodb")
    bucket = f"fn-{uuid.uuid4().hex[:12]}"
    local_stack.client("s3").create_bucket(Bucket=bucket)
    idempotency = f"idem-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(**create_idempotency_table_request(idempotency))
    for name, value in {
        **local_stack.environment(),
        **LOCAL_FUNCTION_ENVIRONMENT,
        "CACHESYNC_TABLE_NAME": index_table,
        "CACHESYNC_BUCKET_NAME": bucket,
        "CACHESYNC_IDEMPOTENCY_TABLE_NAME": idempotency,
    }.items():
        monkeypatch.setenv(name, value)
    return {name: load_handler(name) for name in ("write_through", "fallback_read")}


def invoke(functions: dict[str, LambdaHandler], name: str, event: Any) -> Any:
    return functions[name](event, LocalLambdaContext(function_name=name))


def test_put_read_delete_through_the_functions(functions: dict[str, LambdaHandler]) -> None:
    # Given the console samples
    put = invoke(functions, "write_through", load_event("write_through_put.json"))
    replay = invoke(functions, "write_through", load_event("write_through_put.json"))
    read = invoke(functions, "fallback_read", load_event("fallback_read.json"))
    deleted = invoke(functions, "write_through", load_event("write_through_delete.json"))
    # Then the put committed once (the replay returned the same receipt), the read hit the index
    assert put["index"] == "committed"
    assert replay == put
    assert read["source"] == "index"
    assert read["etag"] == put["etag"]
    assert deleted["index"] == "committed"


def test_dry_run_sample_reports_without_writing(functions: dict[str, LambdaHandler]) -> None:
    receipt = invoke(functions, "write_through", load_event("write_through_put_dry_run.json"))
    assert receipt["index"] == "dry_run"
    assert receipt["kind"] == "announcement"


def test_invalid_sample_is_refused_with_the_field(functions: dict[str, LambdaHandler]) -> None:
    with pytest.raises(InvalidDocumentError) as caught:
        invoke(functions, "write_through", load_event("write_through_invalid.json"))
    assert caught.value.field == "status"


def test_a_malformed_request_names_the_field(functions: dict[str, LambdaHandler]) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        invoke(functions, "write_through", {"operation": "upsert", "key": "k"})
    assert caught.value.field == "operation"
