"""Problem details: each error becomes one RFC 9457 problem with the right status."""

from __future__ import annotations

import pytest

from cachesync.api.keys import InvalidApiKeyError
from cachesync.api.problems import problem_for, validation_problem
from cachesync.exceptions import (
    ConcurrentModificationError,
    DocumentNotFoundError,
    IdempotencyConflictError,
    IndexUnavailableError,
    InvalidDocumentError,
    InvalidQueryError,
    RateLimitTimeoutError,
    WriteFailedError,
)


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (InvalidApiKeyError("the API key is not valid"), 401, "unauthorized"),
        (InvalidQueryError("next_token has expired"), 400, "invalid-request"),
        (InvalidDocumentError("k", "missing", field="change_id"), 422, "invalid-document"),
        (DocumentNotFoundError("b", "k"), 404, "not-found"),
        (IdempotencyConflictError("i", "another payload"), 422, "idempotency-conflict"),
        (ConcurrentModificationError("b", "k", 5), 409, "concurrent-modification"),
        (RateLimitTimeoutError(2.4, 0.5), 429, "rate-limited"),
        (WriteFailedError("b", "k", "put", True, "denied"), 502, "write-failed"),
        (IndexUnavailableError("Query", "Throttling", "slow down"), 503, "unavailable"),
        (KeyError("surprise"), 500, "internal"),
    ],
)
def test_each_error_maps_to_its_status_and_type(error: Exception, status: int, slug: str) -> None:
    # Given an error / When it becomes a problem
    problem = problem_for(error)
    body = problem.body("/v1/documents")
    # Then status, type and instance are set
    assert problem.status == status
    assert body["type"] == f"urn:cachesync:problem:{slug}"
    assert body["status"] == status
    assert body["instance"] == "/v1/documents"


def test_server_errors_do_not_leak_internals() -> None:
    # Given / When an unavailable store and an unexpected error become problems
    unavailable = problem_for(IndexUnavailableError("Query", "X", "host db-7.internal down"))
    unexpected = problem_for(RuntimeError("password=hunter2"))
    # Then neither detail repeats the error's message
    assert "db-7" not in unavailable.detail
    assert "hunter2" not in unexpected.detail
    assert unavailable.headers["Retry-After"] == "1"


def test_unauthorized_carries_a_bearer_challenge_and_429_a_retry_after() -> None:
    # Given / When / Then
    assert problem_for(InvalidApiKeyError("x")).headers["WWW-Authenticate"].startswith("Bearer")
    assert problem_for(RateLimitTimeoutError(2.4, 0.5)).headers["Retry-After"] == "2"


def test_validation_errors_list_each_location() -> None:
    # Given two invalid inputs / When they become a problem
    problem = validation_problem(
        [
            {"loc": ("query", "limit"), "msg": "too big"},
            {"loc": ("query", "order"), "msg": "asc or desc"},
        ]
    )
    # Then the detail names the first, the extension lists both
    assert problem.status == 400
    assert problem.detail == "query.limit: too big"
    assert [e["location"] for e in problem.body(None)["errors"]] == ["query.limit", "query.order"]
