"""Health of the API when its index cannot be reached (in process, a real store on a dead port)."""

from __future__ import annotations

import io
import json
import socket
from datetime import timedelta
from typing import Any

from cachesync import aws_clients
from cachesync.api.app import ApiDependencies, create_app
from cachesync.local.api_server import ResolverWsgiApp
from cachesync.retry_policies import NO_RETRY
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.page_tokens import PageTokens

ABSENT: Any = None  # not reached by a health check


def closed_port_url() -> str:
    """An endpoint nothing listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_health_is_503_and_degraded_when_the_index_is_unreachable() -> None:
    # Given an API whose index store points at a port nothing listens on
    client = aws_clients.client(
        "dynamodb",
        endpoint_url=closed_port_url(),
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )

    def index_store_for(tokens: PageTokens) -> DynamoDBIndexStore:
        return DynamoDBIndexStore(client, "index", retry_policy=NO_RETRY, page_tokens=tokens)

    app = create_app(
        ApiDependencies(
            index_store_for=index_store_for,
            bucket="docs",
            reader=ABSENT,
            writer=ABSENT,
            keys=ABSENT,
            token_secret=b"s" * 32,
            token_lifetime=timedelta(hours=1),
            retention=timedelta(days=90),
            version="1.2.3",
        )
    )
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"] = status

    # When its health is asked for
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/health", "wsgi.input": io.BytesIO()}
    body = b"".join(ResolverWsgiApp(app)(environ, start_response))  # type: ignore[arg-type]
    # Then it answers 503, degraded, for a load balancer to take it out
    assert seen["status"] == "503 Service Unavailable"
    assert json.loads(body)["status"] == "degraded"
    assert json.loads(body)["index_reachable"] is False
