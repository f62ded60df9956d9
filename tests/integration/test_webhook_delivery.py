"""Webhook delivery over real servers: DynamoDB Local (subscriptions, attempts), moto's SQS
(delivery queue, redrive to a dead-letter queue) and a real HTTP receiver on a free port.

The SQS event source mapping is played by :meth:`DeliveryWorld.pump`: receive what is visible,
invoke the real ``webhook_delivery`` handler with Lambda's event shape, delete what it did not
report failed. Nothing is mocked.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from standardwebhooks.webhooks import Webhook

from cachesync.change_events import DocumentSnapshot, DomainEvent, EventType
from cachesync.documents import DocumentKind
from cachesync.exceptions import SubscriptionChangedError
from cachesync.index_models import WriteSource
from cachesync.local import LocalStack
from cachesync.local.lambda_functions import LambdaHandler, LocalLambdaContext, load_handler
from cachesync.stores.dynamodb_webhooks import DynamoDBWebhookStore, SubscriptionChanges
from cachesync.stores.sqs_webhook_queue import SqsWebhookQueue
from cachesync.webhooks.models import (
    DeliveryMessage,
    SigningSecrets,
    Subscription,
    SubscriptionStatus,
    new_signing_secret,
    new_subscription_id,
)
from cachesync.webhooks_schema import (
    create_deliveries_table_request,
    create_webhooks_table_request,
    deliveries_ttl_request,
)
from tests.support.webhook_receiver import ScriptedReceiver, scripted_receiver

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

MAX_ATTEMPTS = 3
FAILURE_THRESHOLD = 2
READ_TIMEOUT_SECONDS = 0.5


@dataclass
class DeliveryWorld:
    """Fresh webhook tables and queues, and the real handler configured for them."""

    store: DynamoDBWebhookStore
    sqs: SQSClient
    queue_url: str
    dlq_url: str
    handler: LambdaHandler

    def subscribe(self, url: str, secrets: SigningSecrets | None = None) -> Subscription:
        subscription = Subscription(
            id=new_subscription_id(),
            url=url,
            event_types=tuple(EventType),
            owner_key_id="cli",
            owner_customers=None,
            created_at=datetime.now(UTC),
            secrets=secrets or SigningSecrets(current=new_signing_secret()),
        )
        self.store.create(subscription)
        return subscription

    def enqueue(self, subscription: Subscription) -> DeliveryMessage:
        message = DeliveryMessage.for_event(document_created(), subscription.id)
        SqsWebhookQueue(self.sqs, self.queue_url).send(message)
        return message

    def pump(self) -> dict[str, Any]:
        """One poll of the event source mapping: the handler's answer (empty if no message)."""
        received = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not received:
            return {}
        event = {"Records": [sqs_record(message) for message in received]}
        response: dict[str, Any] = self.handler(
            event, LocalLambdaContext(function_name="webhook_delivery")
        )
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        for message in received:
            if message["MessageId"] not in failed:
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return response

    def visible(self, queue_url: str) -> list[dict[str, Any]]:
        return self.sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])


def sqs_record(message: Any) -> dict[str, Any]:
    """A received SQS message in the shape Lambda's SQS event source gives it."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message["Attributes"],
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:webhook-deliveries",
        "awsRegion": "us-east-1",
    }


def document_created() -> DomainEvent:
    now = datetime.now(UTC)
    snapshot = DocumentSnapshot(
        bucket="docs",
        key="changes/chg-1.json",
        kind=DocumentKind.CHANGE,
        doc_id="CHG-1",
        title="Upgrade",
        status="approved",
        customers=("acme",),
        index_time=now,
        etag="e1",
        version_id=None,
        size=120,
        s3_last_modified=now,
        source=WriteSource.EVENT,
    )
    return DomainEvent(
        id=f"evt_{uuid.uuid4().hex}",
        type=EventType.CREATED,
        occurred_at=now,
        bucket="docs",
        key="changes/chg-1.json",
        document=snapshot,
        previous=None,
    )


@pytest.fixture
def world(
    local_stack: LocalStack,
    dynamodb_client: DynamoDBClient,
    sqs_client: SQSClient,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[DeliveryWorld]:
    suffix = uuid.uuid4().hex[:8]
    table, deliveries = f"webhooks-{suffix}", f"webhook-deliveries-{suffix}"
    dynamodb_client.create_table(**create_webhooks_table_request(table))
    dynamodb_client.create_table(**create_deliveries_table_request(deliveries))
    dynamodb_client.update_time_to_live(**deliveries_ttl_request(deliveries))
    dlq_url = sqs_client.create_queue(QueueName=f"webhook-dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs_client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    queue_url = sqs_client.create_queue(
        QueueName=f"webhook-deliveries-{suffix}",
        Attributes={
            # A spent message comes back after 1 s, to be moved to the DLQ on that receive.
            "VisibilityTimeout": "1",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_ATTEMPTS)}
            ),
        },
    )["QueueUrl"]
    environment = {
        **local_stack.environment(),
        "CACHESYNC_WEBHOOKS_TABLE_NAME": table,
        "CACHESYNC_WEBHOOK_DELIVERIES_TABLE_NAME": deliveries,
        "CACHESYNC_WEBHOOK_DELIVERY_QUEUE_URL": queue_url,
        "CACHESYNC_WEBHOOK_ALLOW_LOOPBACK": "true",
        # No waiting between attempts: the schedule itself is unit-tested.
        "CACHESYNC_WEBHOOK_RETRY_BASE_SECONDS": "0",
        "CACHESYNC_WEBHOOK_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT_SECONDS),
        "CACHESYNC_WEBHOOK_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "CACHESYNC_WEBHOOK_FAILURE_THRESHOLD": str(FAILURE_THRESHOLD),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    yield DeliveryWorld(
        store=DynamoDBWebhookStore(dynamodb_client, table, deliveries),
        sqs=sqs_client,
        queue_url=queue_url,
        dlq_url=dlq_url,
        handler=load_handler("webhook_delivery"),
    )
    dynamodb_client.delete_table(TableName=table)
    dynamodb_client.delete_table(TableName=deliveries)


def verified(receiver: ScriptedReceiver, index: int, secret: str) -> Any:
    request = receiver.received[index]
    return Webhook(secret).verify(request.body, request.headers)


def test_a_delivery_arrives_signed_and_is_recorded(world: DeliveryWorld) -> None:
    with scripted_receiver([200]) as receiver:
        # Given a subscription of a receiver that answers 200, and one queued message
        subscription = world.subscribe(receiver.url)
        message = world.enqueue(subscription)
        # When the event source mapping polls once
        response = world.pump()
    # Then the receiver got it once, signed with the subscription's secret
    assert response == {"batchItemFailures": []}
    assert len(receiver.received) == 1
    payload = verified(receiver, 0, subscription.secrets.current)
    assert payload["type"] == "document.created"
    assert payload["data"]["document"]["doc_id"] == "CHG-1"
    assert receiver.received[0].headers["webhook-id"] == message.webhook_id
    # And the message is gone, the attempt recorded with its status
    assert world.visible(world.queue_url) == []
    attempts = world.store.recent_attempts(subscription.id, datetime.now(UTC))
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 200)]


def test_a_500_is_retried_with_the_same_webhook_id(world: DeliveryWorld) -> None:
    with scripted_receiver([500, 200]) as receiver:
        # Given a receiver that fails once, then works
        subscription = world.subscribe(receiver.url)
        message = world.enqueue(subscription)
        # When the mapping polls twice
        first = world.pump()
        second = world.pump()
    # Then the first attempt was reported failed and postponed, the second delivered
    assert len(first["batchItemFailures"]) == 1
    assert second == {"batchItemFailures": []}
    # And both requests carried the same webhook-id, each signed (fresh timestamps)
    ids = {request.headers["webhook-id"] for request in receiver.received}
    assert ids == {message.webhook_id}
    for index in (0, 1):
        verified(receiver, index, subscription.secrets.current)
    # And both attempts are recorded, newest first; the subscription is active again
    attempts = world.store.recent_attempts(subscription.id, datetime.now(UTC))
    assert [(a.attempt, a.status_code) for a in attempts] == [(2, 200), (1, 500)]
    after = world.store.get(subscription.id)
    assert after is not None
    assert (after.status, after.consecutive_failures) == (SubscriptionStatus.ACTIVE, 0)


def test_a_receiver_that_times_out_is_retried(world: DeliveryWorld) -> None:
    with scripted_receiver(["hang", 200], hang_seconds=3 * READ_TIMEOUT_SECONDS) as receiver:
        # Given a receiver that hangs past the read timeout once
        subscription = world.subscribe(receiver.url)
        world.enqueue(subscription)
        # When the mapping polls twice
        started = time.monotonic()
        first = world.pump()
        took = time.monotonic() - started
        second = world.pump()
    # Then the first attempt gave up at the read timeout, and the retry delivered
    assert len(first["batchItemFailures"]) == 1
    assert took < 3 * READ_TIMEOUT_SECONDS
    assert second == {"batchItemFailures": []}
    attempts = world.store.recent_attempts(subscription.id, datetime.now(UTC))
    assert [a.status_code for a in attempts] == [200, None]
    assert attempts[1].error is not None
    assert "timed out" in attempts[1].error


def test_after_the_budget_the_message_moves_to_the_dead_letter_queue(
    world: DeliveryWorld,
) -> None:
    with scripted_receiver([503]) as receiver:
        # Given a receiver that always fails, and a budget of 3 attempts (maxReceiveCount 3)
        subscription = world.subscribe(receiver.url)
        message = world.enqueue(subscription)
        # When the mapping polls until the queue is empty (a spent message waits out the
        # queue's 1 s visibility timeout, then the redrive moves it)
        for _ in range(MAX_ATTEMPTS):
            assert len(world.pump()["batchItemFailures"]) == 1
        time.sleep(1.5)
        assert world.pump() == {}
    # Then the receiver saw exactly the budget, and the message waits in the DLQ
    assert len(receiver.received) == MAX_ATTEMPTS
    dead = world.visible(world.dlq_url)
    assert [DeliveryMessage.model_validate_json(m["Body"]).webhook_id for m in dead] == [
        message.webhook_id
    ]
    # And the subscription was marked failing at the threshold (2 consecutive failures)
    after = world.store.get(subscription.id)
    assert after is not None
    assert after.status is SubscriptionStatus.FAILING
    assert after.consecutive_failures == MAX_ATTEMPTS


def test_during_rotation_both_signatures_are_sent_and_the_old_secret_verifies(
    world: DeliveryWorld,
) -> None:
    with scripted_receiver([200]) as receiver:
        # Given a subscription whose secret was rotated with a day's grace
        old = new_signing_secret()
        subscription = world.subscribe(receiver.url, SigningSecrets(current=old))
        new = new_signing_secret()
        rotated = world.store.rotate_secret(
            subscription, new, datetime.now(UTC) + timedelta(days=1)
        )
        assert (rotated.secrets.current, rotated.secrets.previous) == (new, old)
        # When a delivery is made
        world.enqueue(subscription)
        world.pump()
    # Then it carries two signatures; a receiver with the old secret still verifies, so does
    # one with the new
    assert len(receiver.received[0].headers["webhook-signature"].split(" ")) == 2
    verified(receiver, 0, old)
    verified(receiver, 0, new)


def test_a_second_rotation_from_the_same_secret_loses(world: DeliveryWorld) -> None:
    # Given a subscription read by two operators
    subscription = world.subscribe("https://hooks.example.com/in")
    world.store.rotate_secret(subscription, new_signing_secret(), datetime.now(UTC))
    # When the second rotates from the secret it read
    # Then it is refused (its rotation would drop the first one's secret unseen)
    with pytest.raises(SubscriptionChangedError):
        world.store.rotate_secret(subscription, new_signing_secret(), datetime.now(UTC))


def test_a_message_for_a_deleted_or_disabled_subscription_is_dropped(
    world: DeliveryWorld,
) -> None:
    with scripted_receiver([200]) as receiver:
        # Given one message for a deleted subscription and one for a disabled one
        deleted = world.subscribe(receiver.url)
        world.enqueue(deleted)
        world.store.delete(deleted.id)
        disabled = world.subscribe(receiver.url)
        world.enqueue(disabled)
        world.store.update(disabled.id, SubscriptionChanges(status=SubscriptionStatus.DISABLED))
        # When the mapping polls
        response = world.pump()
    # Then nothing is sent and both messages are acknowledged
    assert response == {"batchItemFailures": []}
    assert receiver.received == []
    assert world.visible(world.queue_url) == []


def test_a_target_resolving_to_a_forbidden_address_is_never_contacted(
    world: DeliveryWorld,
) -> None:
    # Given a subscription stored with the metadata address (say, added before a guard change)
    subscription = world.subscribe("http://169.254.169.254/latest/meta-data/")
    world.enqueue(subscription)
    # When the mapping polls
    response = world.pump()
    # Then the attempt is refused by the guard (no connection), recorded and retried later
    assert len(response["batchItemFailures"]) == 1
    attempts = world.store.recent_attempts(subscription.id, datetime.now(UTC))
    assert attempts[0].status_code is None
    assert attempts[0].error is not None
    assert "link-local" in attempts[0].error
