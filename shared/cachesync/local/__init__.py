"""The embedded local AWS stack: DynamoDB Local and a moto server, provisioned for cachesync."""

from cachesync.local.dynamodb_local import (
    LOCAL_ACCESS_KEY_ID,
    LOCAL_REGION,
    LOCAL_SECRET_ACCESS_KEY,
    DynamoDBLocal,
    find_dynamodb_local_jar,
    find_java,
    local_client,
)
from cachesync.local.moto_server import MotoServer
from cachesync.local.provision import (
    LocalResources,
    ProvisionedQueue,
    ProvisionedResources,
    provision,
)
from cachesync.local.stack import LocalStack

__all__ = [
    "LOCAL_ACCESS_KEY_ID",
    "LOCAL_REGION",
    "LOCAL_SECRET_ACCESS_KEY",
    "DynamoDBLocal",
    "LocalResources",
    "LocalStack",
    "MotoServer",
    "ProvisionedQueue",
    "ProvisionedResources",
    "find_dynamodb_local_jar",
    "find_java",
    "local_client",
    "provision",
]
