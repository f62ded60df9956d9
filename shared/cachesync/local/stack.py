"""The whole local AWS stack: DynamoDB Local and a moto server (S3, SQS), provisioned.

Start it from the main thread: DynamoDB Local's JVM is tied to the thread that spawns it (see
:mod:`cachesync.local.dynamodb_local`).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from cachesync.exceptions import LocalStackError
from cachesync.local.dynamodb_local import (
    LOCAL_ACCESS_KEY_ID,
    LOCAL_REGION,
    LOCAL_SECRET_ACCESS_KEY,
    DynamoDBLocal,
    local_client,
)
from cachesync.local.moto_server import MotoServer
from cachesync.local.provision import LocalResources, ProvisionedResources, provision
from cachesync.local.server_lifecycle import ServerLifecycle

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


class LocalStack(ServerLifecycle):
    """DynamoDB Local plus moto, with cachesync's resources provisioned on them.

    Ports default to free loopback ports. With ``data_dir`` DynamoDB Local persists its tables
    there; S3 and SQS (moto) always start empty.
    """

    def __init__(
        self,
        resources: LocalResources | None = None,
        *,
        dynamodb_port: int = 0,
        moto_port: int = 0,
        data_dir: Path | None = None,
    ) -> None:
        self._resources = resources or LocalResources()
        self._dynamodb = DynamoDBLocal(port=dynamodb_port, data_dir=data_dir)
        self._moto = MotoServer(port=moto_port)
        self._provisioned: ProvisionedResources | None = None

    @property
    def resources(self) -> LocalResources:
        """The names and settings the stack provisions."""
        return self._resources

    @property
    def provisioned(self) -> ProvisionedResources:
        """Queue URLs and ARNs, bucket and tables, once started."""
        if self._provisioned is None:
            raise LocalStackError("the local stack is not started")
        return self._provisioned

    @property
    def dynamodb_local(self) -> DynamoDBLocal:
        """The DynamoDB Local server itself (chaos experiments kill and restart it)."""
        return self._dynamodb

    @property
    def dynamodb_endpoint(self) -> str:
        """Endpoint URL of DynamoDB Local."""
        return self._dynamodb.endpoint_url

    @property
    def moto_endpoint(self) -> str:
        """Endpoint URL of the moto server (S3 and SQS)."""
        return self._moto.endpoint_url

    def start(self) -> None:
        """Start both servers, then provision. Takes about 3 s, mostly the JVM booting."""
        if self._provisioned is not None:
            raise LocalStackError("the local stack is already started")
        try:
            # The JVM boots while moto starts: spawned here, in the caller's thread, on purpose.
            self._dynamodb.start(wait=False)
            self._moto.start()
            self._dynamodb.wait_until_ready()
            self._provisioned = provision(
                self._resources,
                dynamodb_client=self.client("dynamodb"),
                s3_client=self.client("s3"),
                sqs_client=self.client("sqs"),
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop both servers. Safe to call more than once."""
        self._provisioned = None
        try:
            self._moto.stop()
        finally:
            self._dynamodb.stop()

    @overload
    def client(self, service: Literal["dynamodb"]) -> DynamoDBClient: ...
    @overload
    def client(self, service: Literal["s3"]) -> S3Client: ...
    @overload
    def client(self, service: Literal["sqs"]) -> SQSClient: ...
    @overload
    def client(self, service: Literal["dynamodbstreams"]) -> DynamoDBStreamsClient: ...

    def client(self, service: Literal["dynamodb", "dynamodbstreams", "s3", "sqs"]) -> Any:
        """A new client bound to the server that serves ``service``."""
        # DynamoDB Local serves the tables' streams on its own endpoint, as AWS does.
        served_by_dynamodb = service in ("dynamodb", "dynamodbstreams")
        endpoint = self.dynamodb_endpoint if served_by_dynamodb else self.moto_endpoint
        return local_client(service, endpoint)

    def environment(self) -> dict[str, str]:
        """The variables that point the SDK and cachesync at this stack."""
        provisioned = self.provisioned
        return {
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_endpoint,
            # DynamoDB Local serves the tables' streams on its own endpoint.
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": self.dynamodb_endpoint,
            "AWS_ENDPOINT_URL_S3": self.moto_endpoint,
            "AWS_ENDPOINT_URL_SQS": self.moto_endpoint,
            "AWS_DEFAULT_REGION": LOCAL_REGION,
            "AWS_REGION": LOCAL_REGION,
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_ACCESS_KEY,
            "CACHESYNC_TABLE_NAME": provisioned.table_name,
            "CACHESYNC_BUCKET_NAME": provisioned.bucket_name,
            "CACHESYNC_IDEMPOTENCY_TABLE_NAME": provisioned.idempotency_table_name,
            # The query API's rate-limit counters and signing nonces.
            "CACHESYNC_API_USAGE_TABLE_NAME": provisioned.api_usage_table_name,
            "CACHESYNC_CREATED_QUEUE_URL": provisioned.created_queue.url,
            "CACHESYNC_REMOVED_QUEUE_URL": provisioned.removed_queue.url,
            # The change feed (analytics) and webhooks: subscriptions, attempts, deliveries.
            "CACHESYNC_CHANGE_FEED_TABLE_NAME": provisioned.change_feed_table_name,
            "CACHESYNC_WEBHOOKS_TABLE_NAME": provisioned.webhooks_table_name,
            "CACHESYNC_WEBHOOK_DELIVERIES_TABLE_NAME": provisioned.webhook_deliveries_table_name,
            "CACHESYNC_WEBHOOK_DELIVERY_QUEUE_URL": provisioned.webhook_delivery_queue.url,
            # Receivers on this machine (`cachesync webhooks listen`) over plain http: the local
            # stack only, never in AWS.
            "CACHESYNC_WEBHOOK_ALLOW_LOOPBACK": "true",
        }

    def export_lines(self) -> list[str]:
        """``export NAME=value`` lines for a POSIX shell, values quoted."""
        return [f"export {name}={shlex.quote(value)}" for name, value in self.environment().items()]
