"""Per-key request rate limits for the query API, enforced across every API instance.

A key gets ``per_minute`` requests a minute, at most ``burst`` of them in any one second; the
counters live in the API usage table (``stores/dynamodb_rate_limits.py``), one conditional
update per request, so the limit holds in total however many instances serve. Every answer
carries the limit: ``RateLimit-Policy`` and ``RateLimit`` (IETF httpapi rate-limit headers) and
the widespread ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (epoch seconds).

When the counters cannot be reached the limiter fails open (serves, unlimited, logs and counts
it) or closed (refuses with 503), as ``CACHESYNC_API_RATE_LIMIT_FAILURE_MODE`` says: open keeps
the API up when only its limiter is down; closed protects the stores behind it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Final, Protocol

from pydantic import BaseModel, ConfigDict, Field

from cachesync.exceptions import (
    RateLimiterUnavailableError,
    RateLimitExceededError,
    UsageStoreError,
)
from cachesync.stores.dynamodb_rate_limits import RateCount

POLICY_NAME: Final = "default"
WINDOW_SECONDS: Final = 60


class RateCounter(Protocol):
    """Where requests are counted (``DynamoDBRateLimitStore``)."""

    def count(
        self, key_id: str, epoch_second: int, *, per_minute: int, per_second: int
    ) -> RateCount:
        """Admit and count one request, or refuse it uncounted."""
        ...


class FailureMode(StrEnum):
    """What the limiter does when its counters cannot be reached."""

    OPEN = "open"
    CLOSED = "closed"


class LimitPolicy(BaseModel):
    """A key's limits."""

    model_config = ConfigDict(frozen=True)

    per_minute: int = Field(ge=1, le=1_000_000)
    burst: int = Field(ge=1, le=100_000)
    """At most this many requests in any one second."""


class LimitVerdict(BaseModel):
    """What the limiter decided about one request, and the headers that say so."""

    model_config = ConfigDict(frozen=True)

    policy: LimitPolicy
    enforced: bool
    """``False``: the counters could not be reached and the limiter failed open."""
    remaining: int | None = None
    """Requests left in this minute (``None`` when not enforced)."""
    reset_seconds: int
    """Seconds until this minute's window ends."""
    reset_at: int
    """The epoch second the window ends."""

    def headers(self) -> dict[str, str]:
        """The rate-limit headers of the answer."""
        headers = {
            "RateLimit-Policy": f'"{POLICY_NAME}";q={self.policy.per_minute};w={WINDOW_SECONDS}',
            "X-RateLimit-Limit": str(self.policy.per_minute),
        }
        if self.remaining is not None:
            headers["RateLimit"] = f'"{POLICY_NAME}";r={self.remaining};t={self.reset_seconds}'
            headers["X-RateLimit-Remaining"] = str(self.remaining)
            headers["X-RateLimit-Reset"] = str(self.reset_at)
        return headers


class RequestLimiter:
    """Checks each request of a key against its :class:`LimitPolicy`."""

    def __init__(
        self,
        counter: RateCounter,
        *,
        failure_mode: FailureMode = FailureMode.OPEN,
        on_counter_failure: Callable[[UsageStoreError], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``on_counter_failure``: told of each failure to reach the counters (log, metric)."""
        self._counter = counter
        self._failure_mode = failure_mode
        self._on_counter_failure = on_counter_failure
        self._clock = clock

    def check(self, key_id: str, policy: LimitPolicy) -> LimitVerdict:
        """Admit one request of ``key_id`` or raise :class:`RateLimitExceededError` (429);
        :class:`RateLimiterUnavailableError` (503) when the counters fail and it fails closed."""
        now = self._clock()
        second = int(now)
        reset_at = (second // WINDOW_SECONDS + 1) * WINDOW_SECONDS
        reset_seconds = max(1, math.ceil(reset_at - now))
        try:
            count = self._counter.count(
                key_id, second, per_minute=policy.per_minute, per_second=policy.burst
            )
        except UsageStoreError as error:
            if self._on_counter_failure is not None:
                self._on_counter_failure(error)
            if self._failure_mode is FailureMode.CLOSED:
                raise RateLimiterUnavailableError(
                    "the rate limiter cannot reach its counters"
                ) from error
            return LimitVerdict(
                policy=policy, enforced=False, reset_seconds=reset_seconds, reset_at=reset_at
            )
        verdict = LimitVerdict(
            policy=policy,
            enforced=True,
            remaining=max(0, policy.per_minute - count.minute_count),
            reset_seconds=reset_seconds,
            reset_at=reset_at,
        )
        if not count.admitted:
            if count.minute_count >= policy.per_minute:
                limit, retry_after = "limit per minute", reset_seconds
            else:
                # The second's burst is spent: the next second has a fresh one.
                limit, retry_after = "burst per second", 1
            raise RateLimitExceededError(key_id, limit, retry_after, verdict.headers())
        return verdict
