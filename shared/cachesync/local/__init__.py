"""The embedded local AWS stack: DynamoDB Local and a moto server, provisioned for cachesync.

Names are imported on first use: every ``cachesync`` command reads the env file
(:mod:`cachesync.local.env_file`), and only the local stack itself needs moto, which takes a
second to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
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

_MODULES: Final = {
    "LOCAL_ACCESS_KEY_ID": "dynamodb_local",
    "LOCAL_REGION": "dynamodb_local",
    "LOCAL_SECRET_ACCESS_KEY": "dynamodb_local",
    "DynamoDBLocal": "dynamodb_local",
    "find_dynamodb_local_jar": "dynamodb_local",
    "find_java": "dynamodb_local",
    "local_client": "dynamodb_local",
    "MotoServer": "moto_server",
    "LocalResources": "provision",
    "ProvisionedQueue": "provision",
    "ProvisionedResources": "provision",
    "provision": "provision",
    "LocalStack": "stack",
}

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


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` when it is first asked for."""
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
