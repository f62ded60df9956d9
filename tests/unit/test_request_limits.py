"""The request limiter without a server: verdicts, headers, and its two failure modes."""

from __future__ import annotations

import random

import pytest

from cachesync.api.request_limits import (
    LEASE_SHARE,
    MAX_LEASE,
    FailureMode,
    LimitPolicy,
    RequestLimiter,
)
from cachesync.exceptions import (
    RateLimiterUnavailableError,
    RateLimitExceededError,
    UsageStoreError,
)
from cachesync.stores.dynamodb_api_usage import RateCount

POLICY = LimitPolicy(per_minute=100, burst=10)
# 42.25 s into a minute.
NOW = 1_780_000_000 // 60 * 60 + 42.25


class Counter:
    """Counts in memory the way the DynamoDB store does (one item per key and minute, all or
    nothing); can be told to fail. Shared by several limiters, it plays the table shared by
    several API instances."""

    def __init__(self, fail: bool = False) -> None:
        self.minute: dict[tuple[str, int], int] = {}
        self.second: dict[tuple[str, int], int] = {}
        self.fail = fail
        self.writes = 0

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
        self.writes += 1
        if self.fail:
            raise UsageStoreError("UpdateItem", "ResourceNotFoundException", "no table")
        minute = self.minute.get((key_id, epoch_second // 60), 0)
        second = self.second.get((key_id, epoch_second), 0)
        if minute + minute_tokens > per_minute or second + second_tokens > per_second:
            return RateCount(admitted=False, minute_count=minute, second_count=second)
        self.minute[(key_id, epoch_second // 60)] = minute + minute_tokens
        self.second[(key_id, epoch_second)] = second + second_tokens
        return RateCount(
            admitted=True, minute_count=minute + minute_tokens, second_count=second + second_tokens
        )


def test_an_admitted_request_carries_what_is_left_and_when_it_resets() -> None:
    # Given a key that made one request this minute
    limiter = RequestLimiter(Counter(), clock=lambda: NOW)
    limiter.check("k1", POLICY)
    # When it makes a second
    headers = limiter.check("k1", POLICY).headers()
    # Then 98 are left, for the 18 s left of the minute; both policies are advertised
    assert headers["RateLimit-Policy"] == '"default";q=100;w=60, "burst";q=10;w=1'
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
    assert refused.value.headers["RateLimit"] == '"burst";r=0;t=1'
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
    assert refused.value.headers["RateLimit"] == '"default";r=0;t=18'
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
    assert verdict.headers()["RateLimit-Policy"].startswith('"default";q=100;w=60')
    assert len(heard) == 1


def test_failing_closed_refuses() -> None:
    # Given counters that cannot be reached, and a limiter failing closed
    limiter = RequestLimiter(Counter(fail=True), failure_mode=FailureMode.CLOSED, clock=lambda: NOW)
    # When a request comes / Then it is refused as unavailable
    with pytest.raises(RateLimiterUnavailableError):
        limiter.check("k1", POLICY)


# ---------------------------------------------------------------------- leases


def test_a_steady_key_costs_a_few_writes_a_second_and_its_remaining_stays_exact() -> None:
    # Given one instance serving a key 50 requests a second (limit 6,000, burst 100)
    counter = Counter()
    policy = LimitPolicy(per_minute=6_000, burst=100)
    now = [NOW - 40]
    limiter = RequestLimiter(counter, clock=lambda: now[0])
    remaining = []
    # When it serves 5 seconds of them
    for request in range(250):
        now[0] = NOW - 40 + request / 50
        remaining.append(limiter.check("k1", policy).remaining)
    # Then each request still counted one off what is left (one instance: exact), and the
    # counts took far fewer writes than requests: the ramp, then three or four a second (50
    # wanted, each reservation at most a quarter of the second's burst left: 25, 18, 7)
    assert remaining == list(range(5_999, 5_749, -1))
    assert counter.writes <= 25
    # And the table never counted more than the instance was granted
    assert counter.minute[("k1", int(NOW) // 60)] <= 250 + 100


def test_leases_serve_from_memory_without_a_write_per_request() -> None:
    # Given an instance that served a key 40 requests in one second
    counter = Counter()
    policy = LimitPolicy(per_minute=60_000, burst=1_000)
    now = [NOW]
    limiter = RequestLimiter(counter, clock=lambda: now[0])
    for _ in range(40):
        limiter.check("k1", policy)
    ramp = counter.writes
    # When 40 more come in the next second
    now[0] += 1
    for _ in range(40):
        limiter.check("k1", policy)
    # Then the ramp took a few writes (1, 1, 2, 4, ...) and the steady second exactly one
    assert ramp <= 7
    assert counter.writes == ramp + 1


def test_with_leases_of_one_every_request_is_a_write() -> None:
    # Given a limiter told to reserve one request at a time
    counter = Counter()
    limiter = RequestLimiter(counter, clock=lambda: NOW, max_lease=1)
    # When 10 requests come / Then 10 writes were made
    for _ in range(10):
        limiter.check("k1", POLICY)
    assert counter.writes == 10


def _admitted(limiter: RequestLimiter, key: str, policy: LimitPolicy) -> bool:
    try:
        limiter.check(key, policy)
    except RateLimitExceededError:
        return False
    return True


@pytest.mark.parametrize("step", [0.01, 0.07, 0.3])
def test_two_instances_alternating_admit_exactly_the_limit_across_seconds(step: float) -> None:
    # Given two instances counting in one table, a key limited to 20 a minute (burst 50)
    counter = Counter()
    policy = LimitPolicy(per_minute=20, burst=50)
    now = [NOW - 30]
    instances = [RequestLimiter(counter, clock=lambda: now[0]) for _ in range(2)]
    # When 30 requests alternate between them, ``step`` seconds apart (leases held across
    # seconds)
    admitted = []
    for request in range(30):
        now[0] = NOW - 30 + request * step
        admitted.append(_admitted(instances[request % 2], "k1", policy))
    # Then exactly 20 were admitted, the first 20 (nothing is stranded in a lease)
    assert admitted == [True] * 20 + [False] * 10
    assert counter.minute[("k1", int(NOW) // 60)] == 20


def test_many_instances_never_pass_either_limit_and_waste_nothing_when_all_are_called() -> None:
    # Given five instances sharing a table, a key limited to 300 a minute and 40 a second
    rng = random.Random(7)
    counter = Counter()
    policy = LimitPolicy(per_minute=300, burst=40)
    now = [NOW - 40.0]
    instances = [RequestLimiter(counter, clock=lambda: now[0]) for _ in range(5)]
    per_second: dict[int, int] = {}
    admitted = 0
    # When 2,000 requests land on them at random, 60 a second on average, within one minute
    for _ in range(2_000):
        now[0] = min(now[0] + rng.expovariate(60), NOW + 17.5)
        if _admitted(rng.choice(instances), "k1", policy):
            admitted += 1
            per_second[int(now[0])] = per_second.get(int(now[0]), 0) + 1
    # Then no second admitted more than the burst, the minute no more than its limit, and
    # since every instance kept being called until the end, all 300 were served
    assert max(per_second.values()) <= 40
    assert admitted == 300
    assert counter.minute[("k1", int(NOW) // 60)] == 300


def test_a_lease_an_idle_instance_holds_is_what_the_others_lose_and_no_more() -> None:
    # Given two instances: one served a key 80 requests in a second, then went idle
    counter = Counter()
    policy = LimitPolicy(per_minute=1_000, burst=1_000)
    now = [NOW - 40]
    busy, other = (RequestLimiter(counter, clock=lambda: now[0]) for _ in range(2))
    for _ in range(80):
        busy.check("k1", policy)
    now[0] += 1
    busy.check("k1", policy)
    held = counter.minute[("k1", int(NOW) // 60)] - 81
    # When the other instance serves the key until refused
    served = sum(_admitted(other, "k1", policy) for _ in range(1_200))
    # Then it served all but what the idle one holds, which is at most one lease (within the
    # caps: MAX_LEASE, a quarter of what was left)
    assert 0 < held <= min(MAX_LEASE, (1_000 - 80) // LEASE_SHARE)
    assert served == 1_000 - 81 - held


def test_a_spent_minute_is_refused_without_writing_again() -> None:
    # Given a key that spent its minute through this instance
    counter = Counter()
    policy = LimitPolicy(per_minute=5, burst=5)
    limiter = RequestLimiter(counter, clock=lambda: NOW)
    for _ in range(5):
        limiter.check("k1", policy)
    # When it asks three more times
    writes = counter.writes
    refusals = []
    for _ in range(3):
        with pytest.raises(RateLimitExceededError) as refused:
            limiter.check("k1", policy)
        refusals.append(refused.value)
    # Then at most one write learnt it (none if the last lease showed it), and every refusal
    # is the minute's, with 0 left and the wait to the minute's end
    assert counter.writes - writes <= 1
    assert {(r.limit, r.retry_after, r.headers["X-RateLimit-Remaining"]) for r in refusals} == {
        ("limit per minute", 18, "0")
    }


def test_counters_going_down_are_noticed_at_the_next_reservation() -> None:
    # Given a limiter failing closed that served a key from a lease, then its counters fail
    counter = Counter()
    policy = LimitPolicy(per_minute=6_000, burst=1_000)
    now = [NOW]
    limiter = RequestLimiter(counter, failure_mode=FailureMode.CLOSED, clock=lambda: now[0])
    for _ in range(20):
        limiter.check("k1", policy)
    now[0] += 1
    limiter.check("k1", policy)
    counter.fail = True
    # When requests continue / Then the lease already made ready serves, the next reservation
    # fails closed
    served = 0
    while served < 100 and _served_or_unavailable(limiter, policy):
        served += 1
    assert 0 < served < 100


def _served_or_unavailable(limiter: RequestLimiter, policy: LimitPolicy) -> bool:
    try:
        limiter.check("k1", policy)
    except RateLimiterUnavailableError:
        return False
    return True
