"""The query_api entry point, invoked with the API Gateway samples in events/.

As in AWS: the token secret comes from Secrets Manager (moto server), keys and the index from
DynamoDB Local, documents from S3 (moto); the handler module is imported afresh, so its settings
are validated and the secret read at this "cold start".
"""

from __future__ import annotations

import copy
import inspect
import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from cachesync import aws_clients
from cachesync.api.keys import Scope, new_api_key
from cachesync.api_keys_schema import create_api_keys_table_request
from cachesync.exceptions import ConfigurationError
from cachesync.local import LocalStack
from cachesync.local.dynamodb_local import (
    LOCAL_ACCESS_KEY_ID,
    LOCAL_REGION,
    LOCAL_SECRET_ACCESS_KEY,
)
from cachesync.local.lambda_functions import LambdaHandler, LocalLambdaContext, load_handler
from cachesync.local.pipeline import LOCAL_FUNCTION_ENVIRONMENT
from cachesync.stores.dynamodb_api_keys import DynamoDBApiKeyStore
from tests.support.s3_events import load_event

FUNCTION = "query_api"


def with_key(event: dict[str, Any], key: str) -> dict[str, Any]:
    """The sample with the caller's key in place of the placeholder."""
    changed = copy.deepcopy(event)
    changed["headers"]["Authorization"] = f"Bearer {key}"
    changed["multiValueHeaders"]["Authorization"] = [f"Bearer {key}"]
    return changed


def header(response: dict[str, Any], name: str) -> str:
    values = {k.lower(): v for k, v in response["multiValueHeaders"].items()}[name.lower()]
    return str(values[0])


def emf_lines(output: str) -> list[dict[str, Any]]:
    """The embedded-metric-format lines of captured stdout."""
    found = []
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            found.append(json.loads(line))
    return found


def metric_points(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [line for line in lines if name in line]


@pytest.fixture
def api_environment(
    local_stack: LocalStack, index_table: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """A fresh bucket, keys table and token secret, and the function's environment."""
    suffix = uuid.uuid4().hex[:8]
    dynamodb = local_stack.client("dynamodb")
    bucket, keys_table = f"qa-{suffix}", f"keys-{suffix}"
    local_stack.client("s3").create_bucket(Bucket=bucket)
    dynamodb.create_table(**create_api_keys_table_request(keys_table))
    secrets = aws_clients.client(
        "secretsmanager",
        endpoint_url=local_stack.moto_endpoint,
        region_name=LOCAL_REGION,
        aws_access_key_id=LOCAL_ACCESS_KEY_ID,
        aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY,
    )
    secret = secrets.create_secret(Name=f"cachesync/api-token-{suffix}", SecretString="t" * 48)
    environment = {
        **local_stack.environment(),
        **LOCAL_FUNCTION_ENVIRONMENT,
        # botocore names the variable after the service id, "Secrets Manager".
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": local_stack.moto_endpoint,
        "CACHESYNC_TABLE_NAME": index_table,
        "CACHESYNC_BUCKET_NAME": bucket,
        "CACHESYNC_API_KEYS_TABLE_NAME": keys_table,
        "CACHESYNC_API_TOKEN_SECRET_ID": secret["ARN"],
        "CACHESYNC_RETENTION_DAYS": "3650",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    monkeypatch.delenv("CACHESYNC_API_TOKEN_SECRET", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    yield environment
    dynamodb.delete_table(TableName=keys_table)


@pytest.fixture
def api_key(local_stack: LocalStack, api_environment: dict[str, str]) -> str:
    """A read + write key for every customer, stored in the function's keys table."""
    created = new_api_key("console", ["*"], [Scope.READ, Scope.WRITE], datetime.now(UTC))
    store = DynamoDBApiKeyStore(
        local_stack.client("dynamodb"), api_environment["CACHESYNC_API_KEYS_TABLE_NAME"]
    )
    assert store.create(created.record)
    return created.key


@pytest.fixture
def handler(api_environment: dict[str, str]) -> LambdaHandler:
    return load_handler(FUNCTION)


def invoke(handler: LambdaHandler, event: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = handler(event, LocalLambdaContext(function_name=FUNCTION))
    return response


def test_the_samples_put_read_and_query_a_document(
    handler: LambdaHandler, api_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the console samples, signed with a stored key
    put = invoke(handler, with_key(load_event("query_api_put_document.json"), api_key))
    # When the document is read twice and queried
    first = invoke(handler, with_key(load_event("query_api_get_document.json"), api_key))
    second = invoke(handler, with_key(load_event("query_api_get_document.json"), api_key))
    query = invoke(handler, with_key(load_event("query_api_query.json"), api_key))
    # Then the write committed, the reads answered from the index (miss, then the memory cache)
    assert put["statusCode"] == 200, put["body"]
    assert json.loads(put["body"])["index"] == "committed"
    assert first["statusCode"] == second["statusCode"] == 200
    assert json.loads(first["body"])["document"]["change_id"] == "CHG-5001"
    assert (header(first, "X-Cache"), header(second, "X-Cache")) == ("miss", "hit")
    assert header(first, "Strict-Transport-Security").startswith("max-age=")
    # And the query (customer acme, status scheduled or in_progress) finds it
    assert query["statusCode"] == 200, query["body"]
    items = json.loads(query["body"])["items"]
    assert [item["key"] for item in items] == ["changes/CHG-5001.json"]
    # And each cached lookup became an EMF point with its cache dimension
    lines = emf_lines(capsys.readouterr().out)
    hits = metric_points(lines, "ApiCacheHits")
    misses = metric_points(lines, "ApiCacheMisses")
    assert [(p["service"], p["cache"]) for p in hits] == [("query_api", "document")]
    assert sorted((p["service"], p["cache"]) for p in misses) == [
        ("query_api", "document"),
        ("query_api", "query"),
    ]
    assert hits[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "cachesync"


def test_the_placeholder_key_of_the_samples_is_refused(handler: LambdaHandler) -> None:
    # Given the sample as shipped (its key is a placeholder) / When it is invoked
    response = invoke(handler, load_event("query_api_get_document.json"))
    # Then 401 with a problem body, and the presented key appears nowhere in the answer
    assert response["statusCode"] == 401
    assert header(response, "Content-Type") == "application/problem+json"
    assert "replace-with-a-key" not in json.dumps(response)


def test_a_missing_token_secret_stops_the_cold_start(
    api_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a secret id that names no secret
    monkeypatch.setenv("CACHESYNC_API_TOKEN_SECRET_ID", "cachesync/no-such-secret")
    # When the function starts / Then it fails at once, naming the variable
    with pytest.raises(ConfigurationError) as caught:
        load_handler(FUNCTION)
    assert caught.value.variable == "CACHESYNC_API_TOKEN_SECRET_ID"
    assert "ResourceNotFoundException" in caught.value.reason


def test_logs_carry_the_request_id_and_never_the_key(
    api_environment: dict[str, str], api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a function told to log everything, the event included (POWERTOOLS_LOGGER_LOG_EVENT)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    handler = load_handler(FUNCTION)
    # ... whose log lines are collected (Powertools' logger is named after the service)
    written = io.StringIO()
    for log_handler in logging.getLogger(FUNCTION).handlers:
        if isinstance(log_handler, logging.StreamHandler):
            monkeypatch.setattr(log_handler, "stream", written)
    event = with_key(load_event("query_api_get_document.json"), api_key)
    # When a request is answered (a 404: nothing was written)
    response = invoke(handler, event)
    assert response["statusCode"] == 404
    # Then the logger's correlation id is API Gateway's request id
    # (the module's own logger: the innermost function's globals, under the decorators)
    logger = inspect.unwrap(handler).__globals__["logger"]  # type: ignore[attr-defined]
    assert logger.get_correlation_id() == event["requestContext"]["requestId"]
    # And the key (nor its secret part) appears nowhere in what was logged: the handler refuses
    # to log the event whatever the environment says
    secret = api_key.rsplit("_", 1)[1]
    assert secret not in written.getvalue()
    assert "Authorization" not in written.getvalue()


def test_an_ipv6_caller_is_checked_against_the_keys_allowlist(
    local_stack: LocalStack, api_environment: dict[str, str], handler: LambdaHandler
) -> None:
    # Given a key pinned to an IPv6 network, in the function's keys table
    created = new_api_key(
        "pinned", ["*"], [Scope.READ], datetime.now(UTC), allowed_cidrs=["2001:db8::/32"]
    )
    store = DynamoDBApiKeyStore(
        local_stack.client("dynamodb"), api_environment["CACHESYNC_API_KEYS_TABLE_NAME"]
    )
    assert store.create(created.record)
    event = with_key(load_event("query_api_get_document.json"), created.key)
    # When API Gateway reports an IPv6 caller inside the network, then one outside it (who also
    # claims an inside address in X-Forwarded-For)
    event["requestContext"]["identity"]["sourceIp"] = "2001:db8:1::7"
    inside = invoke(handler, event)
    event["requestContext"]["identity"]["sourceIp"] = "2001:db9::7"
    event["headers"]["X-Forwarded-For"] = "2001:db8::1"
    outside = invoke(handler, event)
    # Then the first reaches the route (404: nothing written) with the rate-limit headers of the
    # usage table's counters; the second is a 403 naming the caller's address
    assert inside["statusCode"] == 404, inside["body"]
    assert int(header(inside, "X-RateLimit-Remaining")) < int(header(inside, "X-RateLimit-Limit"))
    assert outside["statusCode"] == 403
    assert "2001:db9::7" in json.loads(outside["body"])["detail"]


def test_a_limiter_failing_open_serves_and_counts_the_failure_as_a_metric(
    api_environment: dict[str, str],
    api_key: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a function whose usage table does not exist, failing open
    monkeypatch.setenv("CACHESYNC_API_USAGE_TABLE_NAME", "no-such-usage-table")
    monkeypatch.setenv("CACHESYNC_API_RATE_LIMIT_FAILURE_MODE", "open")
    handler = load_handler(FUNCTION)
    # When a request comes
    response = invoke(handler, with_key(load_event("query_api_get_document.json"), api_key))
    # Then it is served (404: nothing written) without a count, and the failure is a metric
    assert response["statusCode"] == 404, response["body"]
    assert "x-ratelimit-remaining" not in {k.lower() for k in response["multiValueHeaders"]}
    points = metric_points(emf_lines(capsys.readouterr().out), "ApiRateLimiterUnavailable")
    # (Powertools writes a metric's values as a list: one point, one failure)
    assert [point["ApiRateLimiterUnavailable"] for point in points] == [[1.0]]
