"""Integration fixtures: one local stack (DynamoDB Local + moto) for the whole test session."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cachesync.index_schema import create_table_request
from cachesync.local import LocalStack
from cachesync.local.lambda_functions import LambdaHandler, LocalLambdaContext, load_handler
from cachesync.local.pipeline import LOCAL_FUNCTION_ENVIRONMENT
from cachesync.stores.dynamodb_index import DynamoDBIndexStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees every item of the session, not only this directory's: filter by path.
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    """The local stack on free ports, provisioned with the default resources."""
    # Session fixtures run in the main thread, which outlives the JVM as PDEATHSIG requires.
    with LocalStack() as stack:
        yield stack


@pytest.fixture
def dynamodb_client(local_stack: LocalStack) -> DynamoDBClient:
    """A DynamoDB client bound to the stack's DynamoDB Local."""
    return local_stack.client("dynamodb")


@pytest.fixture
def s3_client(local_stack: LocalStack) -> S3Client:
    """An S3 client bound to the stack's moto server."""
    return local_stack.client("s3")


@pytest.fixture
def sqs_client(local_stack: LocalStack) -> SQSClient:
    """An SQS client bound to the stack's moto server."""
    return local_stack.client("sqs")


_table_numbers = itertools.count()


@pytest.fixture
def index_table(local_stack: LocalStack, dynamodb_client: DynamoDBClient) -> Iterator[str]:
    """A fresh, empty index table for one test, created from the schema module."""
    name = f"index-{uuid.uuid4().hex[:8]}-{next(_table_numbers)}"
    dynamodb_client.create_table(**create_table_request(name))
    yield name
    dynamodb_client.delete_table(TableName=name)


@pytest.fixture
def index_store_at(
    dynamodb_client: DynamoDBClient, index_table: str
) -> Callable[[datetime], DynamoDBIndexStore]:
    """Index stores on the test's table whose clock is fixed at a given instant."""

    def at(moment: datetime) -> DynamoDBIndexStore:
        return DynamoDBIndexStore(dynamodb_client, index_table, clock=lambda: moment)

    return at


@pytest.fixture
def index_store(dynamodb_client: DynamoDBClient, index_table: str) -> DynamoDBIndexStore:
    """The index store on the test's fresh table, with the real clock."""
    return DynamoDBIndexStore(dynamodb_client, index_table)


@dataclass
class SyncWorld:
    """A fresh bucket and index table, and the real S3 event handlers configured for them."""

    bucket: str
    s3: S3Client
    store: DynamoDBIndexStore
    created: LambdaHandler
    removed: LambdaHandler

    def put(self, key: str, body: bytes) -> tuple[str, int, str | None]:
        """Put an object; its ETag (bare), size and version id."""
        response = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return response["ETag"].strip('"'), len(body), response.get("VersionId")

    def invoke_created(self, event: dict[str, Any]) -> Any:
        """Invoke the created handler as Lambda would."""
        return self.created(event, LocalLambdaContext(function_name="s3_object_created"))

    def invoke_removed(self, event: dict[str, Any]) -> Any:
        """Invoke the removed handler as Lambda would."""
        return self.removed(event, LocalLambdaContext(function_name="s3_object_removed"))


@pytest.fixture
def sync_world(
    local_stack: LocalStack,
    dynamodb_client: DynamoDBClient,
    s3_client: S3Client,
    index_table: str,
    monkeypatch: pytest.MonkeyPatch,
) -> SyncWorld:
    """Handlers loaded afresh with settings naming a new bucket and the test's table."""
    bucket = f"docs-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    environment = {
        **local_stack.environment(),
        **LOCAL_FUNCTION_ENVIRONMENT,
        "CACHESYNC_TABLE_NAME": index_table,
        "CACHESYNC_BUCKET_NAME": bucket,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return SyncWorld(
        bucket=bucket,
        s3=s3_client,
        store=DynamoDBIndexStore(dynamodb_client, index_table),
        created=load_handler("s3_object_created"),
        removed=load_handler("s3_object_removed"),
    )
