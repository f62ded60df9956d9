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
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
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
    return schemathesis.openapi.from_url(
        f"http://{api_world.host}:{api_world.port}/v1/openapi.json"
    )


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def test_the_served_document_lists_every_route(schema: Any) -> None:
    # Given the served document / When its operations are listed
    labels = {operation.label for operation in _operations(schema)}
    # Then every API route is there (the docs and the document itself are not operations)
    assert labels == {
        "GET /v1/documents",
        "GET /v1/documents/{key}",
        "PUT /v1/documents/{key}",
        "DELETE /v1/documents/{key}",
        "GET /v1/health",
    }


def test_generated_requests_get_documented_answers_and_never_a_5xx(
    api_world: ApiWorld, schema: Any
) -> None:
    # Given a key that may read and write every customer's documents
    key = api_world.key(scopes=(Scope.READ, Scope.WRITE))
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


def _explore(operation: Any, base_url: str, headers: dict[str, str]) -> tuple[list[str], int]:
    """Send the generated requests of ``operation``; the failures found and the request count."""
    failures: list[str] = []
    sent = 0

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=not SOAK,  # the same requests on every run of make test
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def send(case: Any) -> None:
        nonlocal sent
        sent += 1
        try:
            case.call_and_validate(
                base_url=base_url, headers=headers, excluded_checks=EXCLUDED_CHECKS, timeout=30
            )
        except BaseException as failure:  # noqa: BLE001 (collected, reported together)
            failures.append(str(failure)[:3000])

    send()
    return failures, sent
