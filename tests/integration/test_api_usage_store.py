"""The API usage table in DynamoDB Local: rate counters hold in total across instances, and
signed-request nonces are used once."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest

from cachesync.api_usage_schema import create_api_usage_table_request, rate_counter_id
from cachesync.exceptions import UsageStoreError
from cachesync.local import LocalStack
from cachesync.retry_policies import RetryPolicy
from cachesync.stores.dynamodb_api_usage import DynamoDBApiUsageStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

FAST = RetryPolicy(attempts=2, initial_wait_seconds=0.001)


@pytest.fixture
def usage_table(dynamodb_client: DynamoDBClient) -> Iterator[str]:
    name = f"usage-{uuid.uuid4().hex[:8]}"
    dynamodb_client.create_table(**create_api_usage_table_request(name))
    yield name
    dynamodb_client.delete_table(TableName=name)


def test_two_instances_admit_exactly_the_limit_in_total(
    local_stack: LocalStack, usage_table: str
) -> None:
    # Given two API instances, each with its own client, counting in one table
    stores = [DynamoDBApiUsageStore(local_stack.client("dynamodb"), usage_table) for _ in range(2)]
    second = int(time.time()) // 60 * 60 + 5
    # When 60 requests of one key arrive at once, 30 through each, in one second of a minute
    # whose limit is 25 (burst 40)
    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(
            pool.map(
                lambda n: stores[n % 2].count("key-a", second, per_minute=25, per_second=40),
                range(60),
            )
        )
    # Then exactly 25 were admitted, numbered 1..25, and the others saw the spent minute
    admitted = sorted(c.minute_count for c in counts if c.admitted)
    assert admitted == list(range(1, 26))
    assert all(c.minute_count == 25 for c in counts if not c.admitted)


def test_the_burst_limits_each_second_and_the_item_expires(
    local_stack: LocalStack, dynamodb_client: DynamoDBClient, usage_table: str
) -> None:
    # Given a key with a burst of 3 and a generous minute
    store = DynamoDBApiUsageStore(dynamodb_client, usage_table)
    minute_start = int(time.time()) // 60 * 60
    # When it makes 5 requests in its first second, then 2 in the next
    first = [store.count("key-b", minute_start, per_minute=100, per_second=3) for _ in range(5)]
    second = [
        store.count("key-b", minute_start + 1, per_minute=100, per_second=3) for _ in range(2)
    ]
    # Then 3 + 2 were admitted, the minute counts 5, and the counter item carries its expiry
    assert [c.admitted for c in first] == [True, True, True, False, False]
    assert [c.second_count for c in first[3:]] == [3, 3]
    assert all(c.admitted for c in second)
    assert second[-1].minute_count == 5
    item = dynamodb_client.get_item(
        TableName=usage_table,
        Key={"counter_id": {"S": rate_counter_id("key-b", minute_start // 60)}},
    )["Item"]
    assert int(item["expires_at"]["N"]) > minute_start + 60


def test_a_missing_table_is_a_usage_store_error(local_stack: LocalStack) -> None:
    # Given a store on a table that does not exist
    store = DynamoDBApiUsageStore(
        local_stack.client("dynamodb"), "no-such-usage", retry_policy=FAST
    )
    # When it counts / Then it raises the usage store's error, naming the operation
    with pytest.raises(UsageStoreError, match="UpdateItem"):
        store.count("key-c", int(time.time()), per_minute=1, per_second=1)


def test_a_nonce_is_used_once_per_key(local_stack: LocalStack, usage_table: str) -> None:
    # Given two API instances sharing the usage table
    first, second = (
        DynamoDBApiUsageStore(local_stack.client("dynamodb"), usage_table) for _ in range(2)
    )
    expires = int(time.time()) + 600
    # When a nonce is used by one instance, then replayed through the other, then used by
    # another key
    used = first.remember("key-a", "nonce-0123456789ab", expires)
    replayed = second.remember("key-a", "nonce-0123456789ab", expires)
    other_key = second.remember("key-b", "nonce-0123456789ab", expires)
    # Then only the replay is refused
    assert (used, replayed, other_key) == (True, False, True)


def test_a_lease_reserves_all_or_nothing_and_charges_held_requests_to_a_new_second(
    dynamodb_client: DynamoDBClient, usage_table: str
) -> None:
    # Given a key limited to 10 a minute and 6 a second
    store = DynamoDBApiUsageStore(dynamodb_client, usage_table)
    start = int(time.time()) // 60 * 60
    limits = {"per_minute": 10, "per_second": 6}
    # When an instance reserves 4 in the first second, then 7 (more than the minute has left),
    # then in the next second charges 2 it holds plus 3 new to that second's burst, then 2 new
    first = store.lease("key-l", start, minute_tokens=4, second_tokens=4, **limits)
    too_many = store.lease("key-l", start, minute_tokens=7, second_tokens=7, **limits)
    carried = store.lease("key-l", start + 1, minute_tokens=3, second_tokens=5, **limits)
    over = store.lease("key-l", start + 1, minute_tokens=2, second_tokens=2, **limits)
    last = store.lease("key-l", start + 2, minute_tokens=3, second_tokens=3, **limits)
    # Then the whole lease is granted or nothing: 4; refused (the minute would pass 10);
    # 7 in the minute and 5 in the second; refused (the second would pass 6); the last 3
    assert (first.admitted, first.minute_count, first.second_count) == (True, 4, 4)
    assert (too_many.admitted, too_many.minute_count) == (False, 4)
    assert (carried.admitted, carried.minute_count, carried.second_count) == (True, 7, 5)
    assert (over.admitted, over.minute_count, over.second_count) == (False, 7, 5)
    assert (last.admitted, last.minute_count) == (True, 10)
    # And the item counts the three writes that reserved
    item = dynamodb_client.get_item(
        TableName=usage_table,
        Key={"counter_id": {"S": rate_counter_id("key-l", start // 60)}},
        ConsistentRead=True,
    )["Item"]
    assert item["l"]["N"] == "3"
