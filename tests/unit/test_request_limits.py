"""The request limiter without a server: verdicts, headers, and its two failure modes."""

from __future__ import annotations

import pytest

from cachesync.api.request_limits import FailureMode, LimitPolicy, RequestLimiter
from cachesync.exceptions import (
    RateLimiterUnavailableError,
    RateLimitExceededError,
    UsageStoreError,
)
from cachesync.stores.dynamodb_rate_limits import RateCount

POLICY = LimitPolicy(per_minute=100, burst=10)
# 42.25 s into a minute.
NOW = 1_780_000_000 // 60 * 60 + 42.25


class Counter:
    """Counts in memory the way the DynamoDB store does; can be told to fail."""

    def __init__(self, fail: bool = False) -> None:
        self.minute: dict[tuple[str, int], int] = {}
        self.second: dict[tuple[str, int], int] = {}
        self.fail = fail

    def count(
        self, key_id: str, epoch_second: int, *, per_minute: int, per_second: int
    ) -> RateCount:
        if self.fail:
            raise UsageStoreError("UpdateItem", "ResourceNotFoundException", "no table")
        minute = self.minute.get((key_id, epoch_second // 60), 0)
        second = self.second.get((key_id, epoch_second), 0)
        if minute >= per_minute or second >= per_second:
            return RateCount(admitted=False, minute_count=minute, second_count=second)
        self.minute[(key_id, epoch_second // 60)] = minute + 1
        self.second[(key_id, epoch_second)] = second + 1
        return RateCount(admitted=True, minute_count=minute + 1, second_count=second + 1)


def test_an_admitted_request_carries_what_is_left_and_when_it_resets() -> None:
    # Given a key that made two requests this minute
    limiter = RequestLimiter(Counter(), clock=lambda: NOW)
    limiter.check("k1", POLICY)
    # When it makes a third
    headers = limiter.check("k1", POLICY).headers()
    # Then 97 are left, for the 18 s left of the minute
    assert headers["RateLimit-Policy"] == '"default";q=100;w=60'
    assert headers["RateLimit"] == '"default";r=98;t=18'
    assert headers["X-RateLimit-Limit"] == "100"
    assert headers["X-RateLimit-Remaining"] == "98"
    assert int(headers["X-RateLimit-Reset"]) % 60 == 0


def test_the_burst_refuses_for_one_second_then_admits() -> None:
    # Given a key that spent its burst of 10 in one second
    now = [NOW]
    limiter = RequestLimiter(Counter(), clock=lambda: now[0])
    for _ in range(10):
        limiter.check("k1", POLICY)
    # When it asks an 11th time in that second, then in the next
    with pytest.raises(RateLimitExceededError) as refused:
        limiter.check("k1", POLICY)
    now[0] += 1
    verdict = limiter.check("k1", POLICY)
    # Then it was told to wait one second, with the headers of the refusal, and then admitted
    assert refused.value.retry_after == 1
    assert refused.value.limit == "burst per second"
    assert refused.value.headers["X-RateLimit-Remaining"] == "90"
    assert verdict.remaining == 89


def test_the_minute_limit_refuses_until_the_next_minute() -> None:
    # Given a key that spent its minute (spread over seconds, within the burst)
    now = [NOW - 40]
    limiter = RequestLimiter(Counter(), clock=lambda: now[0])
    for request in range(100):
        now[0] = NOW - 40 + request * 0.4
        limiter.check("k1", POLICY)
    # When it asks again at 42.25 s / Then it waits for the 18 s left, and another key is free
    now[0] = NOW
    with pytest.raises(RateLimitExceededError) as refused:
        limiter.check("k1", POLICY)
    assert refused.value.retry_after == 18
    assert refused.value.headers["X-RateLimit-Remaining"] == "0"
    assert limiter.check("k2", POLICY).remaining == 99


def test_failing_open_serves_unenforced_and_reports_the_failure() -> None:
    # Given counters that cannot be reached, and a limiter failing open
    heard: list[UsageStoreError] = []
    limiter = RequestLimiter(
        Counter(fail=True),
        failure_mode=FailureMode.OPEN,
        on_counter_failure=heard.append,
        clock=lambda: NOW,
    )
    # When a request comes / Then it is served, marked unenforced, with the policy but no count
    verdict = limiter.check("k1", POLICY)
    assert verdict.enforced is False
    assert "RateLimit" not in verdict.headers()
    assert verdict.headers()["RateLimit-Policy"] == '"default";q=100;w=60'
    assert len(heard) == 1


def test_failing_closed_refuses() -> None:
    # Given counters that cannot be reached, and a limiter failing closed
    limiter = RequestLimiter(Counter(fail=True), failure_mode=FailureMode.CLOSED, clock=lambda: NOW)
    # When a request comes / Then it is refused as unavailable
    with pytest.raises(RateLimiterUnavailableError):
        limiter.check("k1", POLICY)
