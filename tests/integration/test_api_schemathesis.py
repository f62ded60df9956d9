"""Property-based tests of the query API generated from its own OpenAPI document (schemathesis).

The document is fetched from the running server (``cachesync api serve`` under gunicorn, on
DynamoDB Local and moto: ``api_http.api_world``); every operation gets generated requests, valid
and invalid, sent over HTTP with a valid read/write key so that the routes run past
authentication. Each response must pass schemathesis' checks: no 5xx, a documented status, the
documented content type, headers and body schema, 401 when the key is left out, 405 with
``Allow`` for methods the path does not serve.

Bounded: ``EXAMPLES_PER_OPERATION`` requests per operation (``CACHESYNC_SOAK=1``: ten times as
many), about half a minute in all.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from cachesync.api.keys import Scope
from tests.integration.api_http import ApiWorld, api_world, change, index_document

__all__ = ["api_world"]  # the module's server fixture, shared with the other API tests


SOAK = os.environ.get("CACHESYNC_SOAK") == "1"
EXAMPLES_PER_OPERATION = 300 if SOAK else 30
# A schema-valid request may still be refused with a documented 4xx for what a schema cannot
# say: a next_token the server never issued, a window over ten years, since after until, a
# document whose fields contradict its kind. Every other check stays on.
EXCLUDED_CHECKS = [positive_data_acceptance]


@pytest.fixture(scope="module")
def schema(api_world: ApiWorld) -> Any:
    """The OpenAPI document the server serves, with a few documents to find."""
    for number, customer in enumerate(("acme", "globex", "acme")):
        key = f"changes/ST-{number}.json"
        body = change(f"ST-{number}", customers=(customer,), modified=datetime.now(UTC))
        index_document(api_world, key, body)
        api_world.s3.put_object(Bucket=api_world.bucket, Key=key, Body=json.dumps(body).encode())
    loaded = schemathesis.openapi.from_url(
        f"http://{api_world.host}:{api_world.port}/v1/openapi.json"
    )
    # Refusing invalid data: schemathesis' statuses, and 413 (documented: a bulk request with
    # more items than the API takes is refused as too large, saying so).
    rejection = loaded.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    return loaded


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _template_matches(template: str, path: str) -> bool:
    """Whether the route template serves ``path`` ({key} takes the rest of the path, other
    parameters one segment: as the API routes them)."""
    pattern = re.escape(template).replace(r"\{key\}", ".+")
    pattern = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", pattern)
    return re.fullmatch(pattern, path) is not None


def test_the_served_document_lists_every_route(schema: Any) -> None:
    # Given the served document / When its operations are listed
    labels = {operation.label for operation in _operations(schema)}
    # Then every API route is there (the docs and the document itself are not operations)
    assert labels == {
        "GET /v1/documents",
        "GET /v1/documents/{key}",
        "PUT /v1/documents/{key}",
        "DELETE /v1/documents/{key}",
        "POST /v1/documents/bulk",
        "POST /v1/api-keys/{key_id}/rotate",
        "GET /v1/health",
        "GET /v1/analytics/volume",
        "GET /v1/analytics/breakdown",
        "GET /v1/analytics/transitions",
        "GET /v1/analytics/sync-lag",
        "POST /v1/webhooks",
        "GET /v1/webhooks",
        "GET /v1/webhooks/{subscription_id}",
        "PATCH /v1/webhooks/{subscription_id}",
        "DELETE /v1/webhooks/{subscription_id}",
        "POST /v1/webhooks/{subscription_id}/test",
        "POST /v1/webhooks/{subscription_id}/rotate-secret",
        "GET /v1/webhooks/{subscription_id}/deliveries",
    }


def test_generated_requests_get_documented_answers_and_never_a_5xx(
    api_world: ApiWorld, schema: Any
) -> None:
    # Given a key that may read and write every customer's documents and manage webhooks
    key = api_world.key(scopes=(Scope.READ, Scope.WRITE, Scope.ADMIN))
    base_url = f"http://{api_world.host}:{api_world.port}"
    failures: dict[str, list[str]] = {}
    sent: dict[str, int] = {}
    started = time.monotonic()
    # When schemathesis sends its generated requests for each operation
    for operation in _operations(schema):
        found, count = _explore(operation, base_url, {"Authorization": f"Bearer {key}"})
        sent[operation.label] = count
        if found:
            failures[operation.label] = found
    elapsed = time.monotonic() - started
    # Then every operation was exercised, and no response broke a check
    assert set(sent) == {operation.label for operation in _operations(schema)}
    assert failures == {}, "\n\n".join(
        f"{label} ({len(found)} failing requests):\n{found[0]}" for label, found in failures.items()
    )
    print(f"schemathesis: {sum(sent.values())} requests in {elapsed:.1f} s: {sent}")


def _valid_and_invalid(operation: Any) -> Any:
    """Requests that follow the document, and requests that break it."""
    return st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )


def _statuses_without_a_key(operation: Any, base_url: str) -> set[int]:
    """The statuses of ``operation``'s generated requests, sent without a key."""
    statuses: set[int] = set()

    @settings(
        max_examples=EXAMPLES_PER_OPERATION // 2,
        deadline=None,
        database=None,
        derandomize=not SOAK,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_valid_and_invalid(operation))
    def send(case: Any) -> None:
        response = case.call(base_url=base_url, timeout=30)
        if "{key}" in operation.path and case.formatted_path.rstrip("/") == "/v1/documents":
            return  # an empty key: the path of another route, not this operation's
        if "{key}" not in operation.path and not _template_matches(
            operation.path, case.formatted_path
        ):
            return  # an id with "/" (or none): a path no route serves, a 404 for anyone
        if response.status_code == HTTPStatus.REQUEST_URI_TOO_LONG:
            return  # refused by gunicorn before the API (see _explore)
        statuses.add(response.status_code)

    send()
    return statuses


def _explore(operation: Any, base_url: str, headers: dict[str, str]) -> tuple[list[str], int]:
    """Send the generated requests of ``operation``; the failures found and the request count."""
    failures: list[str] = []
    too_long: list[str] = []
    sent = 0

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=not SOAK,  # hypothesis' part seeded; schemathesis adds variety of its own
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_valid_and_invalid(operation))
    def send(case: Any) -> None:
        nonlocal sent
        sent += 1
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        if response.status_code == HTTPStatus.REQUEST_URI_TOO_LONG:
            # gunicorn refuses request lines over 4094 bytes before the API sees them (API
            # Gateway has its own limit): no answer of the API to check.
            too_long.append(case.formatted_path)
            return
        try:
            case.validate_response(
                response,
                excluded_checks=EXCLUDED_CHECKS,
                headers=headers,
                transport_kwargs={"base_url": base_url, "headers": headers, "timeout": 30},
            )
        except BaseException as failure:  # noqa: BLE001 (collected, reported together)
            failures.append(str(failure)[:3000])

    send()
    # Most requests reached the API (the limit trims only the longest generated values).
    assert len(too_long) <= sent // 4, f"{len(too_long)} of {sent} requests were too long"
    return failures, sent


def test_generated_requests_without_a_key_are_401_whatever_their_parameters(
    api_world: ApiWorld, schema: Any
) -> None:
    # Given the operations that need a key, and generated requests, valid and invalid
    base_url = f"http://{api_world.host}:{api_world.port}"
    answers: dict[str, set[int]] = {}
    secured = [op for op in _operations(schema) if op.label != "GET /v1/health"]

    # When each is sent without a key
    for operation in secured:
        answers[operation.label] = _statuses_without_a_key(operation, base_url)
    # Then every one is refused as unauthenticated: invalid parameters are never reported first
    assert answers == {operation.label: {401} for operation in secured}


@pytest.mark.parametrize("method", ["GET", "PUT", "POST", "DELETE", "PATCH"])
def test_every_documented_path_answers_other_methods_with_405_and_allow(
    api_world: ApiWorld, schema: Any, method: str
) -> None:
    # Given each path of the served document and the methods documented for it, under its own
    # template or another one that matches it too (/v1/documents/bulk is also the document
    # route's path of the key "bulk": GET, PUT and DELETE serve that document there)
    operations = _operations(schema)
    documented: dict[str, set[str]] = {}
    for operation in operations:
        concrete = operation.path.replace("{key}", "changes/ST-0.json")
        documented[concrete] = {
            other.method.upper() for other in operations if _template_matches(other.path, concrete)
        }
    for path, methods in documented.items():
        if method in methods:
            continue
        # When it is asked with a method it does not document
        reply = api_world.request(method, path, key=api_world.key())
        # Then 405, with an Allow header listing exactly the documented methods, as a problem
        assert reply.status == 405, (method, path, reply.body)
        assert set(reply.headers["allow"].split(", ")) == methods
        assert reply.headers["content-type"] == "application/problem+json"
