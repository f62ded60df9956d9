"""When and how the query API client tries a request again: declared once, here.

Retried: a 429 (the server did nothing), a 502/503/504 or a broken connection when repeating the
request is safe: reads always, writes only with an ``Idempotency-Key`` (the server then answers a
repeat with the first receipt) or when the request never left (connection refused). Waits are
exponential with full jitter; a ``Retry-After`` from the server is honoured, and one longer than
the policy's longest wait ends the retries at once (waiting less would only be refused again).
The HTTP pool under the client makes no retries of its own: this is the only retry layer.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_any
from tenacity.stop import stop_base

from cachesync.client.errors import (
    ApiClientError,
    ApiConflictError,
    ApiConnectionError,
    ApiRateLimitedError,
    ApiServerError,
)

T = TypeVar("T")

RETRYABLE_SERVER_STATUSES: Final = frozenset({502, 503, 504})


@dataclass(frozen=True)
class RequestSafety:
    """What repeating one request could do."""

    idempotent: bool
    """A read, or a write carrying an ``Idempotency-Key``: repeating it changes nothing more."""


def is_transient(error: BaseException, safety: RequestSafety) -> bool:
    """Whether ``error`` is worth another attempt of a request with ``safety``."""
    if isinstance(error, ApiRateLimitedError):
        return True
    if isinstance(error, ApiConnectionError):
        return safety.idempotent or not error.request_sent
    if isinstance(error, ApiServerError):
        return safety.idempotent and error.status in RETRYABLE_SERVER_STATUSES
    if isinstance(error, ApiConflictError):
        # 409: another write to the key, or the first of two identical requests still running;
        # nothing of ours was applied.
        return safety.idempotent
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and full jitter."""

    attempts: int = 4
    """Attempts in all (1: no retry)."""
    base_delay: float = 0.2
    """The first wait's upper bound, in seconds; it doubles with each attempt."""
    max_delay: float = 20.0
    """No wait is longer; a longer ``Retry-After`` ends the retries."""
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    jitter: Callable[[float, float], float] = field(
        default=random.uniform,  # spreading retries needs no secrecy
        repr=False,
        compare=False,
    )

    def call(self, attempt: Callable[[], T], safety: RequestSafety) -> T:
        """``attempt()``, again while it fails transiently; the last error otherwise."""
        retrying = Retrying(
            stop=stop_any(stop_after_attempt(self.attempts), _RetryAfterBeyond(self.max_delay)),
            wait=self._wait,
            retry=retry_if_exception(lambda error: is_transient(error, safety)),
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(attempt)

    def _wait(self, state: RetryCallState) -> float:
        retry_after = _retry_after(state)
        if retry_after is not None:
            # The server said when; a little jitter keeps clients told the same from colliding.
            return retry_after + self.jitter(0, self.base_delay)
        ceiling = min(self.max_delay, self.base_delay * 2 ** (state.attempt_number - 1))
        return self.jitter(0, ceiling)


class _RetryAfterBeyond(stop_base):
    """Stop when the server asks for a longer wait than the policy allows."""

    def __init__(self, max_delay: float) -> None:
        self._max_delay = max_delay

    def __call__(self, retry_state: RetryCallState) -> bool:
        retry_after = _retry_after(retry_state)
        return retry_after is not None and retry_after > self._max_delay


def _retry_after(state: RetryCallState) -> float | None:
    outcome = state.outcome
    if outcome is None or not outcome.failed:
        return None
    error = outcome.exception()
    return error.retry_after if isinstance(error, ApiClientError) else None
