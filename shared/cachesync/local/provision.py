"""Creates the AWS resources cachesync needs on local emulators; running it again is harmless.

What it creates mirrors ``infra/``: the documents bucket, the index (with its stream),
idempotency, API keys and API usage tables (with TTL), one queue per event kind each with a
dead-letter queue, the bucket notifications that feed the queues, and the change feed's side: its
table, the webhook subscriptions and delivery attempts (TTL) tables, and the webhook delivery
queue with its dead-letter queue. Every AWS error is translated into :class:`LocalStackError`
by :func:`_step`; the "already exists" answers that make a second run harmless are caught where
they can occur.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from cachesync import (
    api_keys_schema,
    api_usage_schema,
    change_feed_schema,
    index_schema,
    webhooks_schema,
)
from cachesync.exceptions import LocalStackError
from cachesync.settings import WebhookDeliverySettings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

DLQ_SUFFIX: Final = "-dlq"
_DLQ_RETENTION_SECONDS: Final = 14 * 24 * 3600
# SQS answers QueueAlreadyExists when a queue of that name exists with other attributes.
_QUEUE_EXISTS: Final = frozenset({"QueueAlreadyExists", "QueueNameExists"})
_TTL_ON: Final = frozenset({"ENABLED", "ENABLING"})
# The delivery queue's receive budget is the delivery function's attempt budget: SQS moves a
# message to the DLQ exactly when the function has spent its attempts (WebhookDeliverySettings).
WEBHOOK_MAX_ATTEMPTS_DEFAULT: Final[int] = WebhookDeliverySettings.model_fields[
    "webhook_max_attempts"
].default


class LocalResources(BaseModel):
    """Names and settings of the resources to provision."""

    model_config = ConfigDict(frozen=True)

    bucket_name: str = "cachesync-documents"
    table_name: str = index_schema.TABLE_NAME_DEFAULT
    idempotency_table_name: str = index_schema.IDEMPOTENCY_TABLE_NAME_DEFAULT
    api_keys_table_name: str = api_keys_schema.API_KEYS_TABLE_NAME_DEFAULT
    api_usage_table_name: str = api_usage_schema.API_USAGE_TABLE_NAME_DEFAULT
    created_queue_name: str = "cachesync-object-created"
    removed_queue_name: str = "cachesync-object-removed"
    max_receive_count: int = Field(default=3, ge=1, le=1000)
    visibility_timeout_seconds: int = Field(default=30, ge=0, le=43_200)
    change_feed_table_name: str = change_feed_schema.CHANGE_FEED_TABLE_NAME_DEFAULT
    webhooks_table_name: str = webhooks_schema.WEBHOOKS_TABLE_NAME_DEFAULT
    webhook_deliveries_table_name: str = webhooks_schema.WEBHOOK_DELIVERIES_TABLE_NAME_DEFAULT
    webhook_delivery_queue_name: str = "cachesync-webhook-delivery"
    webhook_max_receive_count: int = Field(default=WEBHOOK_MAX_ATTEMPTS_DEFAULT, ge=1, le=1000)
    """Must equal the delivery function's ``webhook_max_attempts``."""
    webhook_visibility_timeout_seconds: int = Field(default=5, ge=0, le=43_200)
    """Short locally: a delivery whose whole batch failed is retried within seconds (a failed
    attempt of its own is postponed by the function's backoff instead)."""

    @property
    def created_dlq_name(self) -> str:
        """Dead-letter queue of the created queue."""
        return f"{self.created_queue_name}{DLQ_SUFFIX}"

    @property
    def removed_dlq_name(self) -> str:
        """Dead-letter queue of the removed queue."""
        return f"{self.removed_queue_name}{DLQ_SUFFIX}"

    @property
    def webhook_delivery_dlq_name(self) -> str:
        """Dead-letter queue of the webhook delivery queue."""
        return f"{self.webhook_delivery_queue_name}{DLQ_SUFFIX}"


class ProvisionedQueue(BaseModel):
    """A queue as created."""

    model_config = ConfigDict(frozen=True)

    name: str
    url: str
    arn: str


class ProvisionedResources(BaseModel):
    """What :func:`provision` created or found."""

    model_config = ConfigDict(frozen=True)

    bucket_name: str
    table_name: str
    index_stream_arn: str
    """The index table's stream (the change feed's event source)."""
    idempotency_table_name: str
    api_usage_table_name: str
    change_feed_table_name: str
    webhooks_table_name: str
    webhook_deliveries_table_name: str
    created_queue: ProvisionedQueue
    created_dlq: ProvisionedQueue
    removed_queue: ProvisionedQueue
    removed_dlq: ProvisionedQueue
    webhook_delivery_queue: ProvisionedQueue
    webhook_delivery_dlq: ProvisionedQueue


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "Unknown")


@contextmanager
def _step(action: str) -> Iterator[None]:
    """Translate the AWS errors raised while doing ``action`` into LocalStackError."""
    try:
        yield
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", str(error))
        raise LocalStackError(
            f"provisioning: cannot {action} ({_error_code(error)}): {message}"
        ) from error
    except BotoCoreError as error:
        raise LocalStackError(f"provisioning: cannot {action}: {error}") from error


def provision(
    resources: LocalResources,
    *,
    dynamodb_client: DynamoDBClient,
    s3_client: S3Client,
    sqs_client: SQSClient,
) -> ProvisionedResources:
    """Create every resource of ``resources`` that does not exist yet; return their addresses."""
    _create_table(
        dynamodb_client,
        index_schema.create_table_request(resources.table_name),
        index_schema.TTL_ATTRIBUTE,
    )
    _create_table(
        dynamodb_client,
        index_schema.create_idempotency_table_request(resources.idempotency_table_name),
        index_schema.IDEMPOTENCY_TTL_ATTRIBUTE,
    )
    _create_table(
        dynamodb_client,
        api_keys_schema.create_api_keys_table_request(resources.api_keys_table_name),
        api_keys_schema.TTL_ATTRIBUTE,
    )
    _create_table(
        dynamodb_client,
        api_usage_schema.create_api_usage_table_request(resources.api_usage_table_name),
        api_usage_schema.TTL_ATTRIBUTE,
    )
    _create_table(
        dynamodb_client,
        change_feed_schema.create_change_feed_table_request(resources.change_feed_table_name),
        None,
    )
    _create_table(
        dynamodb_client,
        webhooks_schema.create_webhooks_table_request(resources.webhooks_table_name),
        None,
    )
    _create_table(
        dynamodb_client,
        webhooks_schema.create_deliveries_table_request(resources.webhook_deliveries_table_name),
        webhooks_schema.TTL_ATTRIBUTE,
    )
    with _step(f"create bucket {resources.bucket_name}"):
        try:
            s3_client.create_bucket(Bucket=resources.bucket_name)
        except ClientError as error:
            if _error_code(error) != "BucketAlreadyOwnedByYou":
                raise

    queues: dict[str, ProvisionedQueue] = {}
    for name, dlq_name, max_receive_count, visibility_timeout in (
        (
            resources.created_queue_name,
            resources.created_dlq_name,
            resources.max_receive_count,
            resources.visibility_timeout_seconds,
        ),
        (
            resources.removed_queue_name,
            resources.removed_dlq_name,
            resources.max_receive_count,
            resources.visibility_timeout_seconds,
        ),
        (
            resources.webhook_delivery_queue_name,
            resources.webhook_delivery_dlq_name,
            resources.webhook_max_receive_count,
            resources.webhook_visibility_timeout_seconds,
        ),
    ):
        dlq = _create_queue(
            sqs_client, dlq_name, {"MessageRetentionPeriod": str(_DLQ_RETENTION_SECONDS)}
        )
        redrive = {"deadLetterTargetArn": dlq.arn, "maxReceiveCount": max_receive_count}
        queues[dlq_name] = dlq
        queues[name] = _create_queue(
            sqs_client,
            name,
            {
                "VisibilityTimeout": str(visibility_timeout),
                "RedrivePolicy": json.dumps(redrive),
            },
        )

    created, removed = queues[resources.created_queue_name], queues[resources.removed_queue_name]
    # moto (like S3) sends an s3:TestEvent to each queue here; the handlers acknowledge it.
    with _step(f"configure notifications of bucket {resources.bucket_name}"):
        s3_client.put_bucket_notification_configuration(
            Bucket=resources.bucket_name,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {"QueueArn": created.arn, "Events": ["s3:ObjectCreated:*"]},
                    {"QueueArn": removed.arn, "Events": ["s3:ObjectRemoved:*"]},
                ]
            },
        )

    with _step("wait for the tables to become active"):
        waiter = dynamodb_client.get_waiter("table_exists")
        tables = (
            resources.table_name,
            resources.idempotency_table_name,
            resources.api_keys_table_name,
            resources.api_usage_table_name,
            resources.change_feed_table_name,
            resources.webhooks_table_name,
            resources.webhook_deliveries_table_name,
        )
        for table in tables:
            waiter.wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})

    return ProvisionedResources(
        bucket_name=resources.bucket_name,
        table_name=resources.table_name,
        index_stream_arn=_index_stream_arn(dynamodb_client, resources.table_name),
        idempotency_table_name=resources.idempotency_table_name,
        api_usage_table_name=resources.api_usage_table_name,
        change_feed_table_name=resources.change_feed_table_name,
        webhooks_table_name=resources.webhooks_table_name,
        webhook_deliveries_table_name=resources.webhook_deliveries_table_name,
        created_queue=created,
        created_dlq=queues[resources.created_dlq_name],
        removed_queue=removed,
        removed_dlq=queues[resources.removed_dlq_name],
        webhook_delivery_queue=queues[resources.webhook_delivery_queue_name],
        webhook_delivery_dlq=queues[resources.webhook_delivery_dlq_name],
    )


def _index_stream_arn(client: DynamoDBClient, table: str) -> str:
    """The index table's stream, switched on first when the table predates it (a ``--data-dir``
    kept from before the change feed)."""
    with _step(f"read the stream of table {table}"):
        description = client.describe_table(TableName=table)["Table"]
        if description.get("StreamSpecification", {}).get("StreamEnabled"):
            return description["LatestStreamArn"]
        specification = index_schema.create_table_request(table)["StreamSpecification"]
        updated = client.update_table(TableName=table, StreamSpecification=specification)
        return updated["TableDescription"]["LatestStreamArn"]


def _create_table(
    client: DynamoDBClient, request: dict[str, Any], ttl_attribute: str | None
) -> None:
    """Create the table unless it exists; switch TTL on ``ttl_attribute`` (``None``: no TTL)."""
    table = str(request["TableName"])
    with _step(f"create table {table}"):
        try:
            client.create_table(**request)
        except ClientError as error:
            if _error_code(error) != "ResourceInUseException":
                raise
    if ttl_attribute is None:
        return
    with _step(f"enable TTL on table {table}"):
        current = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        # Enabling TTL twice is a ValidationException: only switch it on when it is off.
        if current.get("TimeToLiveStatus") in _TTL_ON:
            if current.get("AttributeName") != ttl_attribute:
                raise LocalStackError(
                    f"table {table} has TTL on {current.get('AttributeName')!r}, "
                    f"expected {ttl_attribute!r}"
                )
            return
        client.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute},
        )


def _create_queue(
    client: SQSClient, name: str, attributes: Mapping[QueueAttributeNameType, str]
) -> ProvisionedQueue:
    with _step(f"create queue {name}"):
        try:
            url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        except ClientError as error:
            if _error_code(error) not in _QUEUE_EXISTS:
                raise
            url = client.get_queue_url(QueueName=name)["QueueUrl"]
            client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        found = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return ProvisionedQueue(name=name, url=url, arn=found["Attributes"]["QueueArn"])
