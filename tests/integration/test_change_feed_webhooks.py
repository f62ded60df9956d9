"""From an index change to a signed webhook, over real servers end to end.

Index writes on DynamoDB Local -> the table's stream -> the change_feed handler (via the local
stream pump) -> moto's SQS delivery queue -> the webhook_delivery handler -> a real HTTP
receiver, which verifies each delivery with the ``standardwebhooks`` library.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from standardwebhooks.webhooks import Webhook

from cachesync.change_events import EventType
from cachesync.change_feed_schema import create_change_feed_table_request
from cachesync.index_schema import create_table_request
from cachesync.local import LocalStack
from cachesync.local.lambda_functions import LocalLambdaContext, load_handler
from cachesync.local.stream_pump import StreamPump
from cachesync.local.stream_reader import DynamoDBStreamReader
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.dynamodb_webhooks import DynamoDBWebhookStore
from cachesync.webhooks.models import (
    SigningSecrets,
    Subscription,
    SubscriptionFilters,
    new_signing_secret,
    new_subscription_id,
)
from cachesync.webhooks_schema import create_deliveries_table_request, create_webhooks_table_request
from tests.integration.test_change_feed import entry
from tests.integration.test_webhook_delivery import sqs_record
from tests.support.webhook_receiver import ScriptedReceiver, scripted_receiver

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@dataclass
class Pipeline:
    index: DynamoDBIndexStore
    subscriptions: DynamoDBWebhookStore
    stream: StreamPump
    sqs: SQSClient
    queue_url: str

    def deliver(self) -> None:
        """Run the feed over the stream, then deliver everything on the delivery queue."""
        self.stream.drain()
        handler = load_handler("webhook_delivery")
        while True:
            received = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
            ).get("Messages", [])
            if not received:
                return
            event = {"Records": [sqs_record(m) for m in received]}
            response = handler(event, LocalLambdaContext(function_name="webhook_delivery"))
            assert response == {"batchItemFailures": []}
            for message in received:
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )


@pytest.fixture
def pipeline(
    local_stack: LocalStack, sqs_client: SQSClient, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Pipeline]:
    dynamodb = local_stack.client("dynamodb")
    suffix = uuid.uuid4().hex[:8]
    names = {
        "index": f"e2e-index-{suffix}",
        "feed": f"e2e-feed-{suffix}",
        "hooks": f"e2e-hooks-{suffix}",
        "deliveries": f"e2e-deliveries-{suffix}",
    }
    created = dynamodb.create_table(**create_table_request(names["index"]))
    dynamodb.create_table(**create_change_feed_table_request(names["feed"]))
    dynamodb.create_table(**create_webhooks_table_request(names["hooks"]))
    dynamodb.create_table(**create_deliveries_table_request(names["deliveries"]))
    queue_url = sqs_client.create_queue(QueueName=f"e2e-deliveries-{suffix}")["QueueUrl"]
    for name, value in {
        **local_stack.environment(),
        "CACHESYNC_CHANGE_FEED_TABLE_NAME": names["feed"],
        "CACHESYNC_WEBHOOKS_TABLE_NAME": names["hooks"],
        "CACHESYNC_WEBHOOK_DELIVERIES_TABLE_NAME": names["deliveries"],
        "CACHESYNC_WEBHOOK_DELIVERY_QUEUE_URL": queue_url,
        "CACHESYNC_WEBHOOK_ALLOW_LOOPBACK": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    stream_arn = created["TableDescription"]["LatestStreamArn"]
    yield Pipeline(
        index=DynamoDBIndexStore(dynamodb, names["index"]),
        subscriptions=DynamoDBWebhookStore(dynamodb, names["hooks"], names["deliveries"]),
        stream=StreamPump(
            DynamoDBStreamReader(local_stack.client("dynamodbstreams"), stream_arn),
            load_handler("change_feed"),
            function_name="change_feed",
            stream_arn=stream_arn,
        ),
        sqs=sqs_client,
        queue_url=queue_url,
    )
    for table in names.values():
        dynamodb.delete_table(TableName=table)


def subscribe(
    pipeline: Pipeline,
    receiver: ScriptedReceiver,
    owner_customers: tuple[str, ...] | None = None,
    **filters: Any,
) -> str:
    secret = new_signing_secret()
    pipeline.subscriptions.create(
        Subscription(
            id=new_subscription_id(),
            url=receiver.url,
            event_types=tuple(EventType),
            filters=SubscriptionFilters(**filters),
            owner_key_id="cli" if owner_customers is None else "0123456789ab",
            owner_customers=owner_customers,
            created_at=datetime.now(UTC),
            secrets=SigningSecrets(current=secret),
        )
    )
    return secret


def test_index_changes_reach_a_subscriber_signed_and_filtered(pipeline: Pipeline) -> None:
    with scripted_receiver([200]) as receiver:
        # Given a subscription to acme's documents
        secret = subscribe(pipeline, receiver, customers=("acme",))
        # When an acme document is created and completed, and a globex document is created
        pipeline.index.put_document(entry("a.json", customers=("acme",)))
        pipeline.index.put_document(entry("a.json", status="completed", etag="e2"))
        pipeline.index.put_document(entry("g.json", customers=("globex",)))
        pipeline.deliver()
        # Then the receiver got acme's two changes, in order, each verifying with the library
        deliveries = [
            Webhook(secret).verify(request.body, request.headers) for request in receiver.received
        ]
    assert [(d["type"], d["data"]["key"]) for d in deliveries] == [
        ("document.created", "a.json"),
        ("document.updated", "a.json"),
    ]
    assert deliveries[1]["data"]["changed"] == ["status", "content"]
    ids = [request.headers["webhook-id"] for request in receiver.received]
    assert len(set(ids)) == 2
    assert json.loads(receiver.received[0].body)["data"]["document"]["customers"] == ["acme"]


def test_a_key_limited_to_acme_never_receives_another_customers_document(
    pipeline: Pipeline,
) -> None:
    with scripted_receiver([200]) as receiver:
        # Given a subscription (no filter) of a key limited to acme
        secret = subscribe(pipeline, receiver, owner_customers=("acme",))
        # When a globex document is created, and an acme document is created, then handed to
        # globex with a new title
        pipeline.index.put_document(entry("g.json", customers=("globex",), title="Globex plan"))
        pipeline.index.put_document(entry("a.json", customers=("acme",)))
        moved = entry("a.json", customers=("globex",), title="Globex merger", etag="e2")
        pipeline.index.put_document(moved)
        pipeline.deliver()
        deliveries = [
            Webhook(secret).verify(request.body, request.headers) for request in receiver.received
        ]
        bodies = b"".join(request.body for request in receiver.received)
    # Then acme's key hears of its document's creation and of its leaving, as a deletion of the
    # version it could see, and nothing of globex's documents or versions
    assert [(d["type"], d["data"]["key"]) for d in deliveries] == [
        ("document.created", "a.json"),
        ("document.deleted", "a.json"),
    ]
    assert deliveries[1]["data"]["previous"]["customers"] == ["acme"]
    assert b"globex" not in bodies
    assert b"Globex" not in bodies
