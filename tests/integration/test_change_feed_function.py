"""The change_feed Lambda handler on events/change_feed_stream.json against DynamoDB Local.

The handler module is imported afresh, so its settings come from the environment the test sets.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cachesync.change_feed_schema import create_change_feed_table_request
from cachesync.local import LocalStack
from cachesync.local.lambda_functions import LambdaHandler, LocalLambdaContext, load_handler
from cachesync.local.pipeline import LOCAL_FUNCTION_ENVIRONMENT
from cachesync.stores.dynamodb_change_feed import DynamoDBChangeFeedStore
from tests.support.s3_events import load_event

FUNCTION = "change_feed"


@pytest.fixture
def feed_table(local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"feed-{uuid.uuid4().hex[:8]}"
    dynamodb = local_stack.client("dynamodb")
    dynamodb.create_table(**create_change_feed_table_request(name))
    environment = {
        **local_stack.environment(),
        **LOCAL_FUNCTION_ENVIRONMENT,
        "CACHESYNC_CHANGE_FEED_TABLE_NAME": name,
        "POWERTOOLS_TRACE_DISABLED": "true",
        # The test reads the events published from the handler's INFO lines.
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    yield name
    dynamodb.delete_table(TableName=name)


@pytest.fixture
def handler(feed_table: str) -> LambdaHandler:
    return load_handler(FUNCTION)


def published_types(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The event types the handler logged as published, in order; forgets them."""
    messages = [record.getMessage() for record in caplog.records]
    caplog.clear()
    return [m.removeprefix("published ") for m in messages if m.startswith("published ")]


def test_the_sample_stream_publishes_created_updated_deleted_and_counts_once(
    handler: LambdaHandler,
    local_stack: LocalStack,
    feed_table: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given the sample: a two-customer document indexed, completed, deleted; its link items;
    # and the tombstone's TTL removal
    event = load_event("change_feed_stream.json")
    # When the handler runs it, then runs it again (a retried batch)
    first = handler(event, LocalLambdaContext(function_name=FUNCTION))
    first_published = published_types(caplog)
    store = DynamoDBChangeFeedStore(local_stack.client("dynamodb"), feed_table)
    counted = store.volume("2026-11-01", "2026-11-30")
    again = handler(copy.deepcopy(event), LocalLambdaContext(function_name=FUNCTION))
    again_published = published_types(caplog)
    # Then the first run publishes one event per document change, and no record fails
    assert first == {"batchItemFailures": []}
    assert first_published == [
        "document.created",
        "document.updated",
        "document.deleted",
    ]
    # And each customer's day counts the creation, the move to completed and the deletion
    by_cell = {(row.customer, row.status): row.counters for row in counted}
    assert by_cell[("acme", "approved")] == {"created": 1, "left": 1}
    assert by_cell[("acme", "completed")] == {
        "updated": 1,
        "entered": 1,
        "from:approved": 1,
        "deleted": 1,
    }
    assert by_cell.keys() == {
        ("acme", "approved"),
        ("acme", "completed"),
        ("globex", "approved"),
        ("globex", "completed"),
    }
    # And the retried batch publishes and counts nothing
    assert again == {"batchItemFailures": []}
    assert again_published == []
    assert store.volume("2026-11-01", "2026-11-30") == counted


def test_a_malformed_record_fails_alone_and_stops_the_batch_there(
    handler: LambdaHandler, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the sample with its third record (the document's update) truncated
    event = load_event("change_feed_stream.json")
    broken: dict[str, Any] = event["Records"][2]
    del broken["dynamodb"]["Keys"]
    # When the handler runs it
    response = handler(event, LocalLambdaContext(function_name=FUNCTION))
    (failure,) = [record for record in caplog.records if record.levelname == "ERROR"]
    # Then only that record is reported failed (Lambda retries from it on), the records before
    # it were applied, and the log says which record and why
    sequence = broken["dynamodb"]["SequenceNumber"]
    assert response == {"batchItemFailures": [{"itemIdentifier": sequence}]}
    assert published_types(caplog) == ["document.created"]
    assert "not a DynamoDB Streams record" in failure.getMessage()
    assert failure.__dict__["sequence_number"] == sequence
