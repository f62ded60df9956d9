"""Integration fixtures: one local stack (DynamoDB Local + moto) for the whole test session."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cachesync.index_schema import create_table_request
from cachesync.local import LocalStack
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
