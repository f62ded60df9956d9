"""A token-bucket rate limiter shared by every caller that talks to the index.

The write path, the backfill job (``--rps``) and the query API take tokens from one
:class:`TokenBucket` per limit. A bucket holds at most ``burst`` tokens and refills at
``rate_per_second``; it starts full, so the first ``burst`` requests go at once and the rate holds
after that.

Waiting is by reservation: a caller takes its tokens at once, letting the balance go negative,
and then sleeps (outside the lock) until the refill has paid for them. Every later caller sees the
debt and waits behind it, so callers are served in the order they asked and no thread is starved.

Waits are deadline-aware: a Lambda function must not sleep past its own timeout, so when the wait
would end after the caller's :class:`Deadline`, :meth:`TokenBucket.acquire` raises
:class:`~cachesync.exceptions.RateLimitTimeoutError` at once and takes nothing.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from cachesync.exceptions import RateLimitTimeoutError

Clock = Callable[[], float]
"""Seconds on a monotonic scale; :func:`time.monotonic` unless a test injects its own."""


class LambdaContextLike(Protocol):
    """The one method of the Lambda context object a deadline needs."""

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before Lambda stops the invocation."""
        ...


@dataclass(frozen=True, slots=True)
class Deadline:
    """An absolute instant on a monotonic clock by which the caller must be done."""

    at: float
    """The instant, in seconds on :attr:`clock`."""
    clock: Clock = field(default=time.monotonic, compare=False, repr=False)

    @classmethod
    def after(cls, seconds: float, clock: Clock = time.monotonic) -> Deadline:
        """The deadline ``seconds`` from now (already expired when ``seconds`` <= 0)."""
        if math.isnan(seconds):
            raise ValueError("a deadline needs a number of seconds, not NaN")
        return cls(at=clock() + seconds, clock=clock)

    @classmethod
    def from_lambda_context(
        cls,
        context: LambdaContextLike,
        margin_seconds: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> Deadline:
        """The invocation's remaining time less ``margin_seconds``.

        The margin leaves the handler time to report partial results (and to flush logs and
        metrics) after giving up, before Lambda kills it.
        """
        if not margin_seconds >= 0:
            raise ValueError(f"margin_seconds must be >= 0, got {margin_seconds}")
        remaining = context.get_remaining_time_in_millis() / 1000.0
        return cls.after(remaining - margin_seconds, clock=clock)

    def remaining_seconds(self) -> float:
        """Seconds left before the deadline; negative once it has passed."""
        return self.at - self.clock()

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.remaining_seconds() <= 0


class RateLimiter(Protocol):
    """What callers of a rate limit depend on: a :class:`TokenBucket` or :func:`unlimited`."""

    def acquire(self, tokens: float = 1.0, *, deadline: Deadline | None = None) -> float:
        """Take ``tokens``, waiting as long as needed; return the seconds waited."""
        ...

    def try_acquire(self, tokens: float = 1.0) -> bool:
        """Take ``tokens`` if they are available now; never wait."""
        ...


class TokenBucket:
    """A thread-safe token bucket: ``burst`` tokens at most, refilled at ``rate_per_second``."""

    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        *,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not (rate_per_second > 0 and math.isfinite(rate_per_second)):
            raise ValueError(f"rate_per_second must be a finite number > 0, got {rate_per_second}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self._rate = float(rate_per_second)
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # Negative while callers are waiting for tokens they have already reserved.
        self._tokens = float(burst)
        self._updated = clock()

    @property
    def rate_per_second(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def burst(self) -> int:
        """The most tokens the bucket holds, and so the most one call may take."""
        return self._burst

    def acquire(self, tokens: float = 1.0, *, deadline: Deadline | None = None) -> float:
        """Take ``tokens``, sleeping until the bucket has paid for them; return the seconds waited.

        With a ``deadline``, raises :class:`~cachesync.exceptions.RateLimitTimeoutError` without
        waiting or taking anything if the wait would end after it (so also once it has passed).
        Raises :class:`ValueError` if ``tokens`` is not > 0 or is more than :attr:`burst`, which
        no wait could ever satisfy.
        """
        self._check_request(tokens)
        with self._lock:
            self._refill()
            wait = max(0.0, (tokens - self._tokens) / self._rate)
            if deadline is not None:
                remaining = deadline.remaining_seconds()
                if wait > remaining:
                    raise RateLimitTimeoutError(wait_seconds=wait, remaining_seconds=remaining)
            # Reserve now, so that callers arriving while we sleep queue behind us.
            self._tokens -= tokens
        if wait > 0:
            # Outside the lock: other callers reserve (and see our debt) while we sleep.
            self._sleep(wait)
        return wait

    def try_acquire(self, tokens: float = 1.0) -> bool:
        """Take ``tokens`` if the bucket holds them now; never wait.

        Fails while earlier callers are still waiting for reserved tokens, so it cannot jump the
        queue. Raises :class:`ValueError` like :meth:`acquire`.
        """
        self._check_request(tokens)
        with self._lock:
            self._refill()
            if self._tokens < tokens:
                return False
            self._tokens -= tokens
            return True

    def _check_request(self, tokens: float) -> None:
        if not tokens > 0:
            raise ValueError(f"tokens must be > 0, got {tokens}")
        if tokens > self._burst:
            raise ValueError(
                f"cannot take {tokens} tokens at once from a bucket of burst {self._burst}"
            )

    def _refill(self) -> None:
        # Called with the lock held.
        now = self._clock()
        elapsed = now - self._updated
        if elapsed > 0:
            self._tokens = min(float(self._burst), self._tokens + elapsed * self._rate)
            self._updated = now


class _Unlimited:
    """A limiter that grants everything at once: for callers configured without a limit."""

    def acquire(
        self,
        tokens: float = 1.0,
        *,
        deadline: Deadline | None = None,  # noqa: ARG002 - part of the RateLimiter interface
    ) -> float:
        """Grant ``tokens`` at once; return 0.0 (the deadline is irrelevant: nothing waits)."""
        if not tokens > 0:
            raise ValueError(f"tokens must be > 0, got {tokens}")
        return 0.0

    def try_acquire(self, tokens: float = 1.0) -> bool:
        """Grant ``tokens`` at once."""
        if not tokens > 0:
            raise ValueError(f"tokens must be > 0, got {tokens}")
        return True


_UNLIMITED: Final = _Unlimited()


def rate_limiter(
    rate_per_second: float, burst: int | None = None, *, clock: Clock = time.monotonic
) -> TokenBucket:
    """The limiter of a configured rate: a burst of one second's worth unless ``burst`` is given.

    A second's worth lets a job's first page start at once while the rate holds after it.
    """
    if burst is None:
        burst = max(1, int(rate_per_second))
    return TokenBucket(rate_per_second, burst, clock=clock)


def unlimited() -> RateLimiter:
    """A :class:`RateLimiter` that never waits and never refuses."""
    return _UNLIMITED
