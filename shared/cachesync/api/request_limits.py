"""Per-key request rate limits for the query API, enforced in total across every API instance.

A key gets ``per_minute`` requests in each calendar minute (a fixed window: up to twice that
across a minute's end) and at most ``burst`` of them in any one second. The counts live in the
API usage table (``stores/dynamodb_api_usage.py``), shared by every instance, so a limit holds in
total however many instances serve. Every answer carries the limit: ``RateLimit-Policy`` and
``RateLimit`` (IETF httpapi rate-limit headers: a "default" policy of the minute and a "burst"
policy of the second) and the widespread ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset``
(epoch seconds) of the minute.

**Leases.** An instance does not write once per request: it *reserves* a few requests of a key
at a time (one conditional ``UpdateItem`` adds them to the minute's and the second's counts,
all or nothing, only if neither passes its limit) and serves them from memory, under a lock per
key. A reservation's requests stay this instance's for the rest of the minute; to serve one in a
later second the instance first charges it to that second's burst (in the reservation of that
second, which it makes anyway). So every request served was counted in its minute and in its
second before it was served: **neither limit is ever exceeded in total**. Sizes adapt:

* as many as this instance served of the key in the previous second (or, when more come, as many
  again as it served in this one: a ramp doubles), at most :data:`MAX_LEASE`;
* never more than a :data:`LEASE_SHARE`-th of what the minute and the second have left, as last
  seen: other instances always find some left, and near the limit (fewer than
  ``2 x LEASE_SHARE`` left) every reservation is one request, as without leases.

What it costs: requests reserved and not served are lost to the key, never refunded: at most,
per instance and key, what it still holds when the minute ends (at most :data:`MAX_LEASE`, and
at most a quarter of what the minute had left at its last reservation), and of a second's burst
what it made ready and did not serve in that second. A key calling steadily at r requests per
second through one instance costs about one write per second instead of r.

**Remaining** (``X-RateLimit-Remaining``, ``r=`` of ``RateLimit``) is what this instance knows:
the limit minus the minute's count as of its last reservation, plus what it still holds, after
this request. Through one instance it is exact. Across instances it overstates by what the others
reserved since this instance's last reservation (it cannot see them without a write) and counts
the requests other instances hold as spent. A refusal says 0 (minute) or, for the burst, the
same approximation; ``Retry-After`` is exact: the minute's end, or 1 s for the burst.

When the counters cannot be reached the limiter fails open (serves, unlimited, logs and counts
it) or closed (refuses with 503), as ``CACHESYNC_API_RATE_LIMIT_FAILURE_MODE`` says: open keeps
the API up when only its limiter is down; closed protects the stores behind it. The counters are
reached only to reserve: requests served from a lease already held need no store and do not see
it fail (at most a lease's worth, then the next reservation does).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Protocol

from pydantic import BaseModel, ConfigDict, Field

from cachesync.exceptions import (
    RateLimiterUnavailableError,
    RateLimitExceededError,
    UsageStoreError,
)
from cachesync.stores.dynamodb_api_usage import RateCount

POLICY_NAME: Final = "default"
BURST_POLICY_NAME: Final = "burst"
WINDOW_SECONDS: Final = 60
MAX_LEASE: Final = 100
"""The most requests of one key an instance reserves at once."""
LEASE_SHARE: Final = 4
"""A reservation takes at most this fraction (1/4) of what the minute and the second have left."""
RESERVE_ATTEMPTS: Final = 4
"""Reservations tried for one request when others' reservations race it (the last of one)."""
MAX_TRACKED_KEYS: Final = 10_000
"""Keys whose leases an instance keeps before it forgets those of past minutes."""


class RateCounter(Protocol):
    """Where requests are counted (``DynamoDBApiUsageStore``)."""

    def lease(
        self,
        key_id: str,
        epoch_second: int,
        *,
        minute_tokens: int,
        second_tokens: int,
        per_minute: int,
        per_second: int,
    ) -> RateCount:
        """Add ``minute_tokens`` to the minute's count and ``second_tokens`` to the second's if
        neither passes its limit (admitted), else nothing (refused, with the counts as they are)."""
        ...


class FailureMode(StrEnum):
    """What the limiter does when its counters cannot be reached."""

    OPEN = "open"
    CLOSED = "closed"


class LimitPolicy(BaseModel):
    """A key's limits."""

    model_config = ConfigDict(frozen=True)

    per_minute: int = Field(ge=1, le=60_000)
    burst: int = Field(ge=1, le=1_000)
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
    burst_spent: bool = False
    """The request was refused for the second's burst (the minute still has room)."""

    def headers(self) -> dict[str, str]:
        """The rate-limit headers of the answer."""
        policy = self.policy
        headers = {
            "RateLimit-Policy": (
                f'"{POLICY_NAME}";q={policy.per_minute};w={WINDOW_SECONDS}, '
                f'"{BURST_POLICY_NAME}";q={policy.burst};w=1'
            ),
            "X-RateLimit-Limit": str(policy.per_minute),
        }
        if self.remaining is not None:
            # The draft's RateLimit names the policy closest to refusing: the spent burst
            # (none left for a second), else the minute.
            headers["RateLimit"] = (
                f'"{BURST_POLICY_NAME}";r=0;t=1'
                if self.burst_spent
                else f'"{POLICY_NAME}";r={self.remaining};t={self.reset_seconds}'
            )
            headers["X-RateLimit-Remaining"] = str(self.remaining)
            headers["X-RateLimit-Reset"] = str(self.reset_at)
        return headers


@dataclass
class _KeyLease:
    """One key's requests reserved by this instance, and what it last saw of the counts."""

    minute: int = -1
    second: int = -1
    held: int = 0
    """Requests of this minute reserved (counted) and not yet served."""
    ready: int = 0
    """Of ``held``, those charged to this second's burst: servable without a write."""
    minute_seen: int = 0
    """The minute's count (every instance's reservations) at the last reservation."""
    second_seen: int = 0
    """This second's count at the last reservation (0: none yet this second)."""
    served: int = 0
    """Requests served this second."""
    demand: int = 0
    """Requests served the previous second (the next reservation's size)."""
    minute_spent: bool = False
    second_spent: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def move_to(self, second: int) -> None:
        """Start ``second``: what is ready lapses (it was charged to another second's burst);
        what is held lapses too when the minute changes."""
        if second == self.second:
            return
        self.demand = self.served if second == self.second + 1 else 0
        if second // WINDOW_SECONDS != self.minute:
            self.minute = second // WINDOW_SECONDS
            self.held = self.minute_seen = 0
            self.minute_spent = False
        self.second = second
        self.ready = self.second_seen = self.served = 0
        self.second_spent = False


class RequestLimiter:
    """Checks each request of a key against its :class:`LimitPolicy`, serving from leases."""

    def __init__(
        self,
        counter: RateCounter,
        *,
        failure_mode: FailureMode = FailureMode.OPEN,
        on_counter_failure: Callable[[UsageStoreError], None] | None = None,
        clock: Callable[[], float] = time.time,
        max_lease: int = MAX_LEASE,
    ) -> None:
        """``on_counter_failure``: told of each failure to reach the counters (log, metric);
        ``max_lease``: 1 reserves every request on its own (one write each)."""
        self._counter = counter
        self._failure_mode = failure_mode
        self._on_counter_failure = on_counter_failure
        self._clock = clock
        self._max_lease = max_lease
        self._leases: dict[str, _KeyLease] = {}
        self._leases_lock = threading.Lock()

    def check(self, key_id: str, policy: LimitPolicy) -> LimitVerdict:
        """Admit one request of ``key_id`` or raise :class:`RateLimitExceededError` (429);
        :class:`RateLimiterUnavailableError` (503) when the counters fail and it fails closed."""
        now = self._clock()
        second = int(now)
        reset_at = (second // WINDOW_SECONDS + 1) * WINDOW_SECONDS
        reset_seconds = max(1, math.ceil(reset_at - now))
        lease = self._lease_of(key_id, second)
        with lease.lock:
            lease.move_to(second)
            if lease.ready == 0:
                try:
                    self._reserve(key_id, policy, lease, second)
                except UsageStoreError as error:
                    if self._on_counter_failure is not None:
                        self._on_counter_failure(error)
                    if self._failure_mode is FailureMode.CLOSED:
                        raise RateLimiterUnavailableError(
                            "the rate limiter cannot reach its counters"
                        ) from error
                    return LimitVerdict(
                        policy=policy,
                        enforced=False,
                        reset_seconds=reset_seconds,
                        reset_at=reset_at,
                    )
            if lease.ready == 0:
                self._refuse(key_id, policy, lease, reset_seconds, reset_at)
            lease.ready -= 1
            lease.held -= 1
            lease.served += 1
            return LimitVerdict(
                policy=policy,
                enforced=True,
                remaining=_remaining(policy, lease),
                reset_seconds=reset_seconds,
                reset_at=reset_at,
            )

    def _lease_of(self, key_id: str, second: int) -> _KeyLease:
        with self._leases_lock:
            lease = self._leases.get(key_id)
            if lease is None:
                if len(self._leases) >= MAX_TRACKED_KEYS:
                    # Leases of past minutes hold nothing usable: forget them.
                    minute = second // WINDOW_SECONDS
                    self._leases = {k: v for k, v in self._leases.items() if v.minute == minute}
                lease = self._leases[key_id] = _KeyLease()
            return lease

    def _reserve(self, key_id: str, policy: LimitPolicy, lease: _KeyLease, second: int) -> None:
        """Make requests ready for this second (``lease.ready`` > 0), or learn that a limit is
        spent (``lease.ready`` stays 0, ``minute_spent``/``second_spent`` say which)."""
        for attempt in range(RESERVE_ATTEMPTS):
            if lease.second_spent or (lease.minute_spent and lease.held == 0):
                return
            last = attempt == RESERVE_ATTEMPTS - 1
            size = 1 if last else self._lease_size(policy, lease)
            from_held = min(lease.held, size)
            new = size - from_held
            if new > 0:
                share = (policy.per_minute - lease.minute_seen) // LEASE_SHARE
                new = max(0 if from_held else 1, min(new, share))
            if lease.minute_spent:
                new = 0
            count = self._counter.lease(
                key_id,
                second,
                minute_tokens=new,
                second_tokens=from_held + new,
                per_minute=policy.per_minute,
                per_second=policy.burst,
            )
            lease.minute_seen = count.minute_count
            lease.second_seen = count.second_count
            # A spent limit stays spent (counts only grow) until its window ends: once seen,
            # this instance refuses without a write (what it holds still serves).
            lease.minute_spent = count.minute_count >= policy.per_minute
            lease.second_spent = count.second_count >= policy.burst
            if count.admitted:
                lease.held += new
                lease.ready = from_held + new
                return
        # Still racing other instances after the last attempt (of one request): the second's
        # burst is what they are taking.
        lease.second_spent = True

    def _lease_size(self, policy: LimitPolicy, lease: _KeyLease) -> int:
        """How many requests to make ready: the expected demand, within the shares."""
        expected = max(lease.demand - lease.served, lease.served)
        share = (policy.burst - lease.second_seen) // LEASE_SHARE
        return max(1, min(self._max_lease, expected, share))

    def _refuse(
        self,
        key_id: str,
        policy: LimitPolicy,
        lease: _KeyLease,
        reset_seconds: int,
        reset_at: int,
    ) -> None:
        verdict = LimitVerdict(
            policy=policy,
            enforced=True,
            remaining=_remaining(policy, lease),
            reset_seconds=reset_seconds,
            reset_at=reset_at,
        )
        if lease.minute_spent and lease.held == 0:
            limit, retry_after = "limit per minute", reset_seconds
        else:
            # The second's burst is spent: the next second has a fresh one.
            limit, retry_after = "burst per second", 1
            verdict = verdict.model_copy(update={"burst_spent": True})
        raise RateLimitExceededError(key_id, limit, retry_after, verdict.headers())


def _remaining(policy: LimitPolicy, lease: _KeyLease) -> int:
    """Requests left this minute as this instance knows (see the module's doc)."""
    return max(0, policy.per_minute - lease.minute_seen + lease.held)
