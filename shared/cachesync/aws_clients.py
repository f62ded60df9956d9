"""boto3 clients built the one way cachesync builds them.

Production uses the SDK's defaults: the default credential chain, the region from the
environment, and the endpoint botocore chooses. botocore itself honours ``AWS_ENDPOINT_URL`` and
``AWS_ENDPOINT_URL_<SERVICE>`` (``AWS_ENDPOINT_URL_DYNAMODB``, ``AWS_ENDPOINT_URL_S3``,
``AWS_ENDPOINT_URL_SQS``), which is how cachesync is pointed at LocalStack or any emulator; only
the embedded local stack passes an explicit ``endpoint_url``.

botocore makes one attempt per call: :mod:`cachesync.retry_policies` owns retries.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Final, Literal, overload

import boto3
import botocore.session
from botocore.config import Config
from botocore.loaders import create_loader

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient


# Every client gets a new session, so that it reads the environment (credentials, region,
# endpoints) as it is now. Parsing a service's model costs about a quarter of a second, and a new
# session would parse it again: the sessions share one loader, whose cache holds only AWS's
# static service models.
_SERVICE_MODELS: Final = create_loader()
_SESSION_LOCK: Final = threading.Lock()


def _new_session() -> boto3.session.Session:
    with _SESSION_LOCK:
        core = botocore.session.Session()
        core.register_component("data_loader", _SERVICE_MODELS)
        session = boto3.session.Session(botocore_session=core)
        # boto3 appends its own data folder to the loader's search paths on every new session.
        _SERVICE_MODELS.search_paths[:] = list(dict.fromkeys(_SERVICE_MODELS.search_paths))
        return session


DEFAULT_CONNECT_TIMEOUT_SECONDS: Final = 3.0
DEFAULT_READ_TIMEOUT_SECONDS: Final = 10.0


def botocore_config(*, max_pool_connections: int = 20, read_timeout: float | None = None) -> Config:
    """Timeouts sized for Lambda, one attempt per call, a pool for concurrent workers.

    ``read_timeout`` (seconds) shortens both timeouts for clients on a request's path, whose
    every attempt must fit the caller's time budget (``runtime.READ_PATH_TIMEOUT_SECONDS``).
    """
    read = DEFAULT_READ_TIMEOUT_SECONDS if read_timeout is None else read_timeout
    return Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=min(DEFAULT_CONNECT_TIMEOUT_SECONDS, read),
        read_timeout=read,
        max_pool_connections=max_pool_connections,
    )


@overload
def client(
    service: Literal["dynamodb"], *, endpoint_url: str | None = ..., **kwargs: Any
) -> DynamoDBClient: ...
@overload
def client(
    service: Literal["s3"], *, endpoint_url: str | None = ..., **kwargs: Any
) -> S3Client: ...
@overload
def client(
    service: Literal["sqs"], *, endpoint_url: str | None = ..., **kwargs: Any
) -> SQSClient: ...
@overload
def client(
    service: Literal["lambda"], *, endpoint_url: str | None = ..., **kwargs: Any
) -> LambdaClient: ...
@overload
def client(
    service: Literal["secretsmanager"], *, endpoint_url: str | None = ..., **kwargs: Any
) -> SecretsManagerClient: ...
@overload
def client(
    service: Literal["dynamodbstreams"], *, endpoint_url: str | None = ..., **kwargs: Any
) -> DynamoDBStreamsClient: ...


def client(
    service: str,
    *,
    endpoint_url: str | None = None,
    read_timeout: float | None = None,
    **kwargs: Any,
) -> Any:
    """A boto3 client for ``service``; ``endpoint_url`` only for the embedded local stack;
    ``read_timeout`` shorter than the default for clients on a request's path."""
    config = botocore_config(read_timeout=read_timeout)
    if endpoint_url is not None:
        kwargs["endpoint_url"] = endpoint_url
        # Emulators on loopback serve buckets by path, not by virtual host.
        config = config.merge(Config(s3={"addressing_style": "path"}))
    return _new_session().client(service, config=config, **kwargs)  # type: ignore[call-overload]
