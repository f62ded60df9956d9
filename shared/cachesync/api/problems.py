"""RFC 9457 problem details: every error of the API, as ``application/problem+json``.

Route code raises :class:`ApiProblemError` (or lets a cachesync error through); :func:`problem_for`
is the one place an exception becomes a status, a type and a detail. Unexpected errors become a
500 whose detail says nothing about the internals (the log has the traceback).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cachesync.api.keys import InvalidApiKeyError
from cachesync.exceptions import (
    ApiKeyNotFoundError,
    CacheSyncError,
    ConcurrentModificationError,
    DocumentNotFoundError,
    IdempotencyConflictError,
    IdempotencyInProgressError,
    IndexUnavailableError,
    InvalidDocumentError,
    InvalidKeyError,
    InvalidQueryError,
    InvalidRequestError,
    ObjectUnavailableError,
    RateLimitTimeoutError,
    SubscriptionChangedError,
    SubscriptionForbiddenError,
    SubscriptionNotFoundError,
    UnsafeWebhookUrlError,
    WebhookStoreUnavailableError,
    WriteFailedError,
)

PROBLEM_CONTENT_TYPE: Final = "application/problem+json"
TYPE_PREFIX: Final = "urn:cachesync:problem:"


@dataclass(frozen=True)
class Problem:
    """One problem details object (RFC 9457) and the headers that go with it."""

    status: int
    slug: str
    title: str
    detail: str
    headers: Mapping[str, str] = field(default_factory=dict)
    extensions: Mapping[str, Any] = field(default_factory=dict)

    def body(self, instance: str | None) -> dict[str, Any]:
        """The JSON object: type, title, status, detail, instance, then the extensions."""
        body: dict[str, Any] = {
            "type": f"{TYPE_PREFIX}{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        return {**body, **self.extensions}


class ApiProblemError(CacheSyncError):
    """An error the API answers with a given problem (raised by routes and middlewares)."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(problem.detail)


def unauthorized(detail: str) -> ApiProblemError:
    """401: no key, or a key that is not valid."""
    return ApiProblemError(
        Problem(
            401,
            "unauthorized",
            "Unauthorized",
            detail,
            headers={"WWW-Authenticate": 'Bearer realm="cachesync"'},
        )
    )


def forbidden(detail: str) -> ApiProblemError:
    """403: a valid key without the scope or the tenancy the request needs."""
    return ApiProblemError(Problem(403, "forbidden", "Forbidden", detail))


def not_found(detail: str) -> ApiProblemError:
    """404: no such document (or one the caller may not see), or no such route."""
    return ApiProblemError(Problem(404, "not-found", "Not Found", detail))


def method_not_allowed(method: str, allowed: Sequence[str]) -> Problem:
    """405: a path the API serves, asked with a method it does not serve there."""
    listed = ", ".join(allowed)
    return Problem(
        405,
        "method-not-allowed",
        "Method Not Allowed",
        f"{method} is not served here; allowed: {listed}",
        headers={"Allow": listed},
    )


def unsupported_media_type() -> Problem:
    """415: a body that is not JSON (a document is sent as ``application/json``)."""
    return Problem(
        415,
        "unsupported-media-type",
        "Unsupported Media Type",
        "send the document as JSON, with Content-Type: application/json",
        headers={"Accept": "application/json"},
    )


def bad_request(detail: str, **extensions: Any) -> ApiProblemError:
    """400: a parameter the API cannot use."""
    return ApiProblemError(
        Problem(400, "invalid-request", "Bad Request", detail, extensions=extensions)
    )


def validation_problem(errors: Sequence[Any]) -> Problem:
    """400 for a request that fails the OpenAPI validation, one entry per invalid input."""
    listed = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ()))
        listed.append({"location": location, "message": str(error.get("msg", "invalid"))})
    first = listed[0] if listed else {"location": "request", "message": "invalid"}
    return Problem(
        400,
        "invalid-request",
        "Bad Request",
        f"{first['location']}: {first['message']}",
        extensions={"errors": listed},
    )


_RETRY_SOON: Final = {"Retry-After": "1"}


def problem_for(error: Exception) -> Problem:
    """The problem that answers ``error``."""
    match error:
        case ApiProblemError():
            return error.problem
        case InvalidApiKeyError():
            return unauthorized(str(error)).problem
        case InvalidQueryError() | InvalidKeyError() | InvalidRequestError():
            return bad_request(str(error)).problem
        case InvalidDocumentError():
            extensions = {"field": error.field} if error.field else {}
            return Problem(422, "invalid-document", "Invalid Document", str(error), {}, extensions)
        case DocumentNotFoundError() | ApiKeyNotFoundError() | SubscriptionNotFoundError():
            return not_found(str(error)).problem
        case SubscriptionForbiddenError():
            return forbidden(str(error)).problem
        case UnsafeWebhookUrlError():
            return Problem(422, "unsafe-webhook-url", "Unprocessable Content", str(error))
        case SubscriptionChangedError():
            return Problem(409, "subscription-changed", "Conflict", str(error), _RETRY_SOON)
        case IdempotencyConflictError():
            return Problem(422, "idempotency-conflict", "Idempotency Key Reused", str(error))
        case IdempotencyInProgressError():
            return Problem(409, "idempotency-in-progress", "Conflict", str(error), _RETRY_SOON)
        case ConcurrentModificationError():
            return Problem(409, "concurrent-modification", "Conflict", str(error), _RETRY_SOON)
        case RateLimitTimeoutError():
            wait = {"Retry-After": str(max(1, round(error.wait_seconds)))}
            return Problem(429, "rate-limited", "Too Many Requests", str(error), wait)
        case WriteFailedError():
            return Problem(502, "write-failed", "Bad Gateway", str(error))
        case IndexUnavailableError() | ObjectUnavailableError() | WebhookStoreUnavailableError():
            return Problem(
                503,
                "unavailable",
                "Service Unavailable",
                "a backing store is unavailable",
                _RETRY_SOON,
            )
    return Problem(500, "internal", "Internal Server Error", "an unexpected error occurred")
