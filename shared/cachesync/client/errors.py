"""What the query API client raises: one class per kind of answer an application acts on.

Every error derives from :class:`ApiClientError` (a :class:`~cachesync.exceptions.CacheSyncError`)
and carries the HTTP status and the server's RFC 9457 problem (``type``, ``title``, ``detail``).
HTTP statuses become these classes in exactly one place, :func:`error_for_status`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cachesync.exceptions import CacheSyncError


class ApiClientError(CacheSyncError):
    """Base of every error of :class:`~cachesync.client.CacheSyncClient`."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        problem: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.problem: dict[str, Any] = dict(problem or {})
        self.retry_after = retry_after
        super().__init__(message)

    @property
    def detail(self) -> str | None:
        """The problem's ``detail``: the server's reason, for a person."""
        detail = self.problem.get("detail")
        return str(detail) if detail is not None else None

    @property
    def problem_type(self) -> str | None:
        """The problem's ``type`` (``urn:cachesync:problem:<slug>``), for a program."""
        kind = self.problem.get("type")
        return str(kind) if kind is not None else None


class ApiConnectionError(ApiClientError):
    """No answer: the server could not be reached, or the connection broke or timed out."""

    def __init__(self, message: str, *, request_sent: bool) -> None:
        self.request_sent = request_sent
        """``False``: the request never reached the server (repeating it is always safe)."""
        super().__init__(message)


class ApiRequestError(ApiClientError):
    """400 or 422: the request is invalid (parameters, token, document); do not retry as is."""


class ApiAuthenticationError(ApiClientError):
    """401: the API key is missing, unknown or revoked."""


class ApiForbiddenError(ApiClientError):
    """403: the key lacks the scope, or the customer is outside its tenancy."""


class ApiNotFoundError(ApiClientError):
    """404: no such document (or one the key may not see), or no such route."""


class ApiConflictError(ApiClientError):
    """409: a concurrent write to the same key, or a replay still running: retry later."""


class ApiRateLimitedError(ApiClientError):
    """429: over a limit; :attr:`retry_after` says when to try again."""


class ApiServerError(ApiClientError):
    """5xx: the server or a store behind it failed (502, 503, 504 are worth a retry)."""


_BY_STATUS: dict[int, type[ApiClientError]] = {
    400: ApiRequestError,
    401: ApiAuthenticationError,
    403: ApiForbiddenError,
    404: ApiNotFoundError,
    405: ApiRequestError,
    409: ApiConflictError,
    422: ApiRequestError,
    429: ApiRateLimitedError,
}


def error_for_status(
    status: int, problem: Mapping[str, Any], retry_after: float | None, what: str
) -> ApiClientError:
    """The error for a non-2xx answer to ``what`` (``GET /v1/...``)."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ApiServerError if status >= 500 else ApiRequestError
    reason = problem.get("detail") or problem.get("title") or "no problem body"
    return cls(
        f"{what}: {status} {reason}", status=status, problem=problem, retry_after=retry_after
    )
