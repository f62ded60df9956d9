"""Runs an API world's index stream through the change feed, as the change_feed function would.

Imported by the API tests of the routes the change feed serves (analytics, webhooks).
"""

from __future__ import annotations

from cachesync.change_feed import ChangeFeed, EventPublisher, stream_change
from cachesync.local import LocalStack
from cachesync.local.stream_reader import DynamoDBStreamReader
from cachesync.stores.dynamodb_change_feed import DynamoDBChangeFeedStore
from tests.integration.api_http import ApiWorld


def feed_the_stream(
    world: ApiWorld, local_stack: LocalStack, publishers: tuple[EventPublisher, ...] = ()
) -> int:
    """Every record of the world's index stream through a change feed on its feed table (again
    from the start: records already applied change nothing); the number of records."""
    dynamodb = local_stack.client("dynamodb")
    table = dynamodb.describe_table(TableName=world.index.table_name)["Table"]
    reader = DynamoDBStreamReader(local_stack.client("dynamodbstreams"), table["LatestStreamArn"])
    feed = ChangeFeed(DynamoDBChangeFeedStore(dynamodb, world.change_feed_table), publishers)
    records = [record for shard in reader.shard_ids() for record in reader.records(shard)]
    for record in sorted(records, key=lambda r: int(r["dynamodb"]["SequenceNumber"])):
        feed.process(stream_change(record))
    return len(records)
