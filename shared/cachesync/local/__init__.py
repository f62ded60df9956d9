"""The embedded local AWS stack: DynamoDB Local and a moto server, provisioned for cachesync.

:class:`LocalStack` and :class:`MotoServer` are imported on first use: every ``cachesync``
command reads the env file (:mod:`cachesync.local.env_file`), and only the stack itself needs
moto, which takes a second to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

from cachesync.local.dynamodb_local import (
    LOCAL_ACCESS_KEY_ID,
    LOCAL_REGION,
    LOCAL_SECRET_ACCESS_KEY,
    DynamoDBLocal,
    find_dynamodb_local_jar,
    find_java,
    local_client,
)
from cachesync.local.provision import (
    LocalResources,
    ProvisionedQueue,
    ProvisionedResources,
    provision,
)

if TYPE_CHECKING:
    from cachesync.local.moto_server import MotoServer
    from cachesync.local.stack import LocalStack

# Imported on first use; names that differ from their modules' (a submodule, once imported,
# would shadow a lazy attribute of the same name).
_LAZY: Final = {"MotoServer": "moto_server", "LocalStack": "stack"}

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
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
