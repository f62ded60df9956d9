"""The embedded local stack: servers up, resources provisioned, S3 notifications flowing."""

from __future__ import annotations

import json
import shlex
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import pytest

from cachesync import change_feed_schema, index_schema, webhooks_schema
from cachesync.exceptions import LocalStackError
from cachesync.local import (
    DynamoDBLocal,
    LocalStack,
    find_dynamodb_local_jar,
    local_client,
    provision,
)
from cachesync.local.stream_pump import StreamPump
from cachesync.local.stream_reader import DynamoDBStreamReader
from cachesync.settings import WebhookDeliverySettings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

NOTIFICATION_TIMEOUT_SECONDS = 10.0
# DynamoDB Local removes an expired item within a few seconds (measured: about 2 s).
TTL_REMOVAL_TIMEOUT_SECONDS = 30.0


def unique_key() -> str:
    # A "/" and a space: moto encodes keys like S3 does (quote_plus), so decoding is exercised.
    return f"local-stack-test/{uuid.uuid4().hex} doc.json"


def receive_record_for(sqs: SQSClient, queue_url: str, key: str) -> dict[str, Any]:
    """The S3 notification record about ``key``; other messages are released untouched."""
    deadline = time.monotonic() + NOTIFICATION_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        for message in messages:
            body = json.loads(message["Body"])
            # s3:TestEvent (sent when notifications are configured) has no Records.
            for record in body.get("Records", []):
                if unquote_plus(record["s3"]["object"]["key"]) == key:
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                    return dict(record)
            # Not ours: make it visible again at once for whoever else reads this queue.
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
    pytest.fail(f"no notification about {key!r} on {queue_url} within the timeout")


@pytest.mark.parametrize(
    ("table_attribute", "ttl_attribute"),
    [
        ("table_name", index_schema.TTL_ATTRIBUTE),
        ("idempotency_table_name", index_schema.IDEMPOTENCY_TTL_ATTRIBUTE),
        ("webhook_deliveries_table_name", webhooks_schema.TTL_ATTRIBUTE),
    ],
)
def test_tables_are_active_with_ttl_enabled(
    local_stack: LocalStack,
    dynamodb_client: DynamoDBClient,
    table_attribute: str,
    ttl_attribute: str,
) -> None:
    # Given the started stack
    table_name = getattr(local_stack.provisioned, table_attribute)

    # When we describe the table and its TTL
    table = dynamodb_client.describe_table(TableName=table_name)["Table"]
    ttl = dynamodb_client.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]

    # Then it is active and TTL is on for the schema's attribute
    assert table["TableStatus"] == "ACTIVE"
    assert ttl["TimeToLiveStatus"] == "ENABLED"
    assert ttl["AttributeName"] == ttl_attribute


def test_the_index_table_has_the_three_schema_gsis(
    local_stack: LocalStack, dynamodb_client: DynamoDBClient
) -> None:
    # Given the started stack
    table_name = local_stack.provisioned.table_name

    # When we describe the index table
    table = dynamodb_client.describe_table(TableName=table_name)["Table"]

    # Then its GSIs are exactly the schema's, each keyed as the schema says
    expected = {
        index.name: [index.partition_key, index.sort_key] for index in index_schema.GLOBAL_INDEXES
    }
    actual = {
        gsi["IndexName"]: [key["AttributeName"] for key in gsi["KeySchema"]]
        for gsi in table.get("GlobalSecondaryIndexes", [])
    }
    assert actual == expected
    assert len(expected) == 3


def test_the_change_feed_and_webhooks_tables_follow_their_schema_modules(
    local_stack: LocalStack, dynamodb_client: DynamoDBClient
) -> None:
    # Given the started stack
    provisioned = local_stack.provisioned
    expected = {
        provisioned.change_feed_table_name: change_feed_schema.create_change_feed_table_request(
            provisioned.change_feed_table_name
        ),
        provisioned.webhooks_table_name: webhooks_schema.create_webhooks_table_request(
            provisioned.webhooks_table_name
        ),
        provisioned.webhook_deliveries_table_name: webhooks_schema.create_deliveries_table_request(
            provisioned.webhook_deliveries_table_name
        ),
    }
    for name, request in expected.items():
        # When we describe the table
        table = dynamodb_client.describe_table(TableName=name)["Table"]
        # Then it is active, keyed as its schema module says
        assert table["TableStatus"] == "ACTIVE"
        assert table["KeySchema"] == request["KeySchema"]


def test_the_index_table_streams_both_images_to_the_provisioned_stream(
    local_stack: LocalStack, dynamodb_client: DynamoDBClient
) -> None:
    # Given the started stack
    provisioned = local_stack.provisioned

    # When we describe the index table
    table = dynamodb_client.describe_table(TableName=provisioned.table_name)["Table"]

    # Then its stream carries new and old images, and is the one the change feed reads
    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": index_schema.STREAM_VIEW_TYPE,
    }
    assert table["LatestStreamArn"] == provisioned.index_stream_arn


def test_provisioning_switches_the_stream_on_for_an_index_table_without_one(
    local_stack: LocalStack,
    dynamodb_client: DynamoDBClient,
    s3_client: S3Client,
    sqs_client: SQSClient,
) -> None:
    # Given an index table created before the change feed (no stream), as a --data-dir keeps it
    resources = local_stack.resources.model_copy(
        update={"table_name": f"old-index-{uuid.uuid4().hex[:8]}"}
    )
    request = index_schema.create_table_request(resources.table_name)
    del request["StreamSpecification"]
    dynamodb_client.create_table(**request)

    # When the stack provisions its resources on it
    provisioned = provision(
        resources, dynamodb_client=dynamodb_client, s3_client=s3_client, sqs_client=sqs_client
    )

    # Then the index table now streams, to the stream provisioning returns
    table = dynamodb_client.describe_table(TableName=resources.table_name)["Table"]
    assert table["StreamSpecification"]["StreamEnabled"] is True
    assert table["LatestStreamArn"] == provisioned.index_stream_arn
    dynamodb_client.delete_table(TableName=resources.table_name)


def test_provisioning_twice_is_idempotent(
    local_stack: LocalStack,
    dynamodb_client: DynamoDBClient,
    s3_client: S3Client,
    sqs_client: SQSClient,
) -> None:
    # Given a stack that provisioned its resources at start
    first = local_stack.provisioned

    # When we provision the same resources again
    second = provision(
        local_stack.resources,
        dynamodb_client=dynamodb_client,
        s3_client=s3_client,
        sqs_client=sqs_client,
    )

    # Then nothing fails and every address is the same
    assert second == first


def test_a_put_object_notifies_the_created_queue(
    local_stack: LocalStack, s3_client: S3Client, sqs_client: SQSClient
) -> None:
    # Given the stack's bucket and its created queue
    provisioned = local_stack.provisioned
    key = unique_key()

    # When an object is put
    s3_client.put_object(Bucket=provisioned.bucket_name, Key=key, Body=b"{}")

    # Then the created queue receives an ObjectCreated record about that key
    record = receive_record_for(sqs_client, provisioned.created_queue.url, key)
    assert record["eventName"].startswith("ObjectCreated:")
    assert record["s3"]["bucket"]["name"] == provisioned.bucket_name


def test_a_delete_object_notifies_the_removed_queue(
    local_stack: LocalStack, s3_client: S3Client, sqs_client: SQSClient
) -> None:
    # Given an object in the stack's bucket
    provisioned = local_stack.provisioned
    key = unique_key()
    s3_client.put_object(Bucket=provisioned.bucket_name, Key=key, Body=b"{}")

    # When it is deleted
    s3_client.delete_object(Bucket=provisioned.bucket_name, Key=key)

    # Then the removed queue receives an ObjectRemoved record about that key
    record = receive_record_for(sqs_client, provisioned.removed_queue.url, key)
    assert record["eventName"].startswith("ObjectRemoved:")
    assert record["s3"]["bucket"]["name"] == provisioned.bucket_name


def test_each_queue_redrives_to_its_dlq_after_max_receive_count(
    local_stack: LocalStack, sqs_client: SQSClient
) -> None:
    # Given the provisioned queues
    provisioned = local_stack.provisioned

    resources = local_stack.resources
    for queue, dlq, max_receive_count, visibility_timeout in (
        (
            provisioned.created_queue,
            provisioned.created_dlq,
            resources.max_receive_count,
            resources.visibility_timeout_seconds,
        ),
        (
            provisioned.removed_queue,
            provisioned.removed_dlq,
            resources.max_receive_count,
            resources.visibility_timeout_seconds,
        ),
        (
            provisioned.webhook_delivery_queue,
            provisioned.webhook_delivery_dlq,
            resources.webhook_max_receive_count,
            resources.webhook_visibility_timeout_seconds,
        ),
    ):
        # When we read the queue's attributes
        attributes = sqs_client.get_queue_attributes(
            QueueUrl=queue.url, AttributeNames=["RedrivePolicy", "VisibilityTimeout"]
        )["Attributes"]

        # Then failures go to its own DLQ after the configured number of receives
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == dlq.arn
        assert int(redrive["maxReceiveCount"]) == max_receive_count
        assert dlq.name == f"{queue.name}-dlq"
        assert int(attributes["VisibilityTimeout"]) == visibility_timeout


def test_the_delivery_queue_budget_is_the_delivery_functions_attempts(
    local_stack: LocalStack,
) -> None:
    # Given the delivery function's default settings
    settings = WebhookDeliverySettings(table_name="unused", bucket_name="unused")
    # When the stack provisions the delivery queue / Then SQS dead-letters a message exactly
    # when the function has spent its attempts
    assert local_stack.resources.webhook_max_receive_count == settings.webhook_max_attempts


def test_environment_points_the_sdk_and_cachesync_at_the_stack(local_stack: LocalStack) -> None:
    # Given the started stack
    provisioned = local_stack.provisioned

    # When we ask for its environment and shell exports
    environment = local_stack.environment()
    lines = local_stack.export_lines()

    # Then endpoints, region, credentials and resource names are all there, shell-quoted
    assert environment["AWS_ENDPOINT_URL_DYNAMODB"] == local_stack.dynamodb_endpoint
    assert environment["AWS_ENDPOINT_URL_S3"] == local_stack.moto_endpoint
    assert environment["AWS_ENDPOINT_URL_SQS"] == local_stack.moto_endpoint
    assert environment["AWS_REGION"] == environment["AWS_DEFAULT_REGION"] == "us-east-1"
    assert environment["CACHESYNC_CREATED_QUEUE_URL"] == provisioned.created_queue.url
    assert environment["CACHESYNC_REMOVED_QUEUE_URL"] == provisioned.removed_queue.url
    assert environment["CACHESYNC_TABLE_NAME"] == provisioned.table_name
    assert environment["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] == local_stack.dynamodb_endpoint
    assert environment["CACHESYNC_CHANGE_FEED_TABLE_NAME"] == provisioned.change_feed_table_name
    assert environment["CACHESYNC_WEBHOOKS_TABLE_NAME"] == provisioned.webhooks_table_name
    assert (
        environment["CACHESYNC_WEBHOOK_DELIVERIES_TABLE_NAME"]
        == provisioned.webhook_deliveries_table_name
    )
    assert (
        environment["CACHESYNC_WEBHOOK_DELIVERY_QUEUE_URL"]
        == provisioned.webhook_delivery_queue.url
    )
    assert environment["CACHESYNC_WEBHOOK_ALLOW_LOOPBACK"] == "true"
    parsed = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in lines)
    assert parsed == environment


def test_dynamodb_local_with_a_data_dir_keeps_tables_across_restarts(tmp_path: Path) -> None:
    # Given a DynamoDB Local persisting to a directory, holding one table
    server = DynamoDBLocal(data_dir=tmp_path / "dynamodb")
    with server:
        local_client("dynamodb", server.endpoint_url).create_table(
            TableName="persisted",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        )

    # When it is stopped and started again on the same directory
    with server:
        tables = local_client("dynamodb", server.endpoint_url).list_tables()["TableNames"]

    # Then the table is still there
    assert tables == ["persisted"]


def test_find_jar_in_an_empty_directory_says_how_to_install_it(tmp_path: Path) -> None:
    # Given a directory with no node_modules at or above it
    # When we look for the DynamoDB Local jar there
    with pytest.raises(LocalStackError) as raised:
        find_dynamodb_local_jar(tmp_path)

    # Then the error names the command that installs it
    assert "make setup" in str(raised.value)
    assert "npm ci" in str(raised.value)


def test_a_ttl_removal_on_dynamodb_local_reaches_the_handler_as_aws_streams_it() -> None:
    # Given a DynamoDB Local of its own, a table with a stream and TTL (without GSIs: seen here,
    # DynamoDB Local's TTL process removes such expired items within seconds, those of a table
    # with GSIs erratically), and a stream pump recording what its handler gets
    with DynamoDBLocal() as server:
        _ttl_removal_reaches_the_handler(server.endpoint_url)


def _ttl_removal_reaches_the_handler(endpoint: str) -> None:
    dynamodb_client = local_client("dynamodb", endpoint)
    name = f"ttl-stream-{uuid.uuid4().hex[:8]}"
    arn = dynamodb_client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        StreamSpecification={
            "StreamEnabled": True,
            "StreamViewType": index_schema.STREAM_VIEW_TYPE,
        },
    )["TableDescription"]["LatestStreamArn"]
    dynamodb_client.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": index_schema.TTL_ATTRIBUTE},
    )
    received: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        received.extend(event["Records"])
        return {"batchItemFailures": []}

    reader = DynamoDBStreamReader(local_client("dynamodbstreams", endpoint), arn)
    pump = StreamPump(reader, handler, function_name="change_feed", stream_arn=arn)
    # When an item already expired is written, and DynamoDB Local's TTL process removes it
    expired = str(int(time.time()) - 60)
    item = {"pk": {"S": "b/k.json"}, "sk": {"S": "doc"}, "expires_at": {"N": expired}}
    dynamodb_client.put_item(TableName=name, Item=item)
    deadline = time.monotonic() + TTL_REMOVAL_TIMEOUT_SECONDS
    started = time.monotonic()
    while len(received) < 2 and time.monotonic() < deadline:
        pump.poll_once()
        time.sleep(0.2)
    print(f"TTL removal after {time.monotonic() - started:.1f} s")
    # Then the handler got the insert, then a REMOVE by the DynamoDB service principal (AWS's
    # shape of a TTL removal; DynamoDB Local names it UNKNOWN_TO_SDK_VERSION, with no identity)
    assert [record["eventName"] for record in received] == ["INSERT", "REMOVE"]
    assert received[1]["userIdentity"] == {
        "type": "Service",
        "principalId": "dynamodb.amazonaws.com",
    }
    assert "NewImage" not in received[1]["dynamodb"]
