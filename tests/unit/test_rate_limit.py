"""The token bucket grants ``burst`` at once, then ``rate_per_second``, and respects deadlines."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from cachesync.exceptions import RateLimitTimeoutError
from cachesync.rate_limit import Deadline, RateLimiter, TokenBucket, rate_limiter, unlimited


class FakeClock:
    """A monotonic clock that moves only when told to; ``sleep`` moves it and records the call."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def bucket(rate: float, burst: int, clock: FakeClock) -> TokenBucket:
    return TokenBucket(rate, burst, clock=clock, sleep=clock.sleep)


@dataclass
class FakeLambdaContext:
    remaining_millis: int

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


def test_starts_full_with_burst_tokens() -> None:
    # Given a fresh bucket of burst 5
    clock = FakeClock()
    limiter = bucket(rate=1, burst=5, clock=clock)

    # When 5 tokens are taken, then a sixth
    waits = [limiter.acquire() for _ in range(5)]
    sixth = limiter.acquire()

    # Then the first 5 did not wait, and the sixth waited one refill interval
    assert waits == [0.0] * 5
    assert sixth == pytest.approx(1.0)
    assert clock.sleeps == [pytest.approx(1.0)]


def test_sustained_rate_equals_rate_per_second() -> None:
    # Given a bucket of rate 10 and burst 1
    clock = FakeClock()
    limiter = bucket(rate=10, burst=1, clock=clock)
    start = clock()

    # When 100 tokens are taken one at a time
    waited = sum(limiter.acquire() for _ in range(100))

    # Then all but the first token waited 0.1 s each: 9.9 s of (fake) time in total
    assert waited == pytest.approx(9.9)
    assert clock() - start == pytest.approx(9.9)
    assert len(clock.sleeps) == 99


def test_refill_is_capped_at_burst() -> None:
    # Given a bucket of burst 2 left idle for a long time
    clock = FakeClock()
    limiter = bucket(rate=10, burst=2, clock=clock)
    clock.now += 3600

    # When 3 tokens are taken
    waits = [limiter.acquire() for _ in range(3)]

    # Then only 2 were banked: the third waits a refill interval
    assert waits == [0.0, 0.0, pytest.approx(0.1)]


def test_multi_token_acquire_waits_for_all_of_them() -> None:
    # Given an empty bucket of rate 4 and burst 4
    clock = FakeClock()
    limiter = bucket(rate=4, burst=4, clock=clock)
    limiter.acquire(4)

    # When 2 tokens are taken at once
    waited = limiter.acquire(2)

    # Then the wait is the time to refill 2 tokens, and is returned
    assert waited == pytest.approx(0.5)
    assert clock.sleeps == [pytest.approx(0.5)]


def test_waiting_callers_queue_behind_reserved_tokens() -> None:
    # Given a bucket of rate 10, burst 1, whose sleeps do not advance the clock, as when several
    # threads are all still asleep at the same instant
    clock = FakeClock()
    limiter = TokenBucket(10, 1, clock=clock, sleep=clock.sleeps.append)

    # When four callers acquire at the same instant
    waits = [limiter.acquire() for _ in range(4)]

    # Then each one waits behind the tokens the earlier ones reserved
    assert waits == [0.0, pytest.approx(0.1), pytest.approx(0.2), pytest.approx(0.3)]


def test_try_acquire_takes_available_tokens_without_waiting() -> None:
    # Given a bucket of burst 2
    clock = FakeClock()
    limiter = bucket(rate=1, burst=2, clock=clock)

    # When tokens are tried three times, then again after a refill interval
    results = [limiter.try_acquire() for _ in range(3)]
    clock.now += 1.0
    after_refill = limiter.try_acquire()

    # Then two succeed, the third fails, the refilled one succeeds, and nothing slept
    assert results == [True, True, False]
    assert after_refill is True
    assert clock.sleeps == []


def test_try_acquire_cannot_jump_the_queue() -> None:
    # Given a caller that has reserved the next token and is still asleep
    clock = FakeClock()
    limiter = TokenBucket(10, 1, clock=clock, sleep=clock.sleeps.append)
    limiter.acquire()
    limiter.acquire()

    # When another caller tries for a token when the sleeper's token has just been refilled
    clock.now += 0.1
    result = limiter.try_acquire()

    # Then it is refused: that token belongs to the sleeper
    assert result is False


def test_deadline_refusal_raises_without_sleeping_or_taking_tokens() -> None:
    # Given an empty bucket of rate 1 (the next token is 1 s away) and a deadline 0.5 s away
    clock = FakeClock()
    limiter = bucket(rate=1, burst=1, clock=clock)
    limiter.acquire()
    deadline = Deadline.after(0.5, clock=clock)

    # When a token is acquired before that deadline
    with pytest.raises(RateLimitTimeoutError) as raised:
        limiter.acquire(deadline=deadline)

    # Then it is refused at once, stating the wait needed and the time left
    assert clock.sleeps == []
    assert raised.value.wait_seconds == pytest.approx(1.0)
    assert raised.value.remaining_seconds == pytest.approx(0.5)
    assert "1.000s wait" in str(raised.value)
    assert "0.500s remain" in str(raised.value)
    # And nothing was reserved: the next caller waits 1 s, not 2 s
    assert limiter.acquire() == pytest.approx(1.0)


def test_deadline_that_leaves_enough_time_allows_the_wait() -> None:
    # Given an empty bucket of rate 1 and a deadline exactly 1 s away
    clock = FakeClock()
    limiter = bucket(rate=1, burst=1, clock=clock)
    limiter.acquire()
    deadline = Deadline.after(1.0, clock=clock)

    # When a token is acquired before that deadline
    waited = limiter.acquire(deadline=deadline)

    # Then the caller waits the full second: the wait ends at the deadline, not past it
    assert waited == pytest.approx(1.0)


def test_expired_deadline_is_refused_even_without_a_wait() -> None:
    # Given a full bucket and a deadline that passed 0.25 s ago
    clock = FakeClock()
    limiter = bucket(rate=1, burst=1, clock=clock)
    deadline = Deadline.after(-0.25, clock=clock)

    # When a token is acquired
    with pytest.raises(RateLimitTimeoutError) as raised:
        limiter.acquire(deadline=deadline)

    # Then it is refused: the caller has no time left to use it
    assert raised.value.wait_seconds == 0.0
    assert "deadline passed 0.250s ago" in str(raised.value)


def test_deadline_counts_down_on_its_clock() -> None:
    # Given a deadline 2 s away
    clock = FakeClock()
    deadline = Deadline.after(2.0, clock=clock)

    # When 1.5 s, then 0.5 s more, pass
    clock.now += 1.5
    midway_remaining, midway_expired = deadline.remaining_seconds(), deadline.expired()
    clock.now += 0.5
    end_remaining, end_expired = deadline.remaining_seconds(), deadline.expired()

    # Then it has 0.5 s left, then none and has expired
    assert midway_remaining == pytest.approx(0.5)
    assert not midway_expired
    assert end_remaining == pytest.approx(0.0)
    assert end_expired


def test_deadline_from_lambda_context_is_remaining_time_minus_margin() -> None:
    # Given a Lambda invocation with 3.5 s left
    clock = FakeClock()
    context = FakeLambdaContext(remaining_millis=3500)

    # When deadlines are derived with the default margin and with a 0.5 s margin
    default = Deadline.from_lambda_context(context, clock=clock)
    custom = Deadline.from_lambda_context(context, margin_seconds=0.5, clock=clock)

    # Then they leave 2.5 s and 3.0 s
    assert default.remaining_seconds() == pytest.approx(2.5)
    assert custom.remaining_seconds() == pytest.approx(3.0)
    assert default.at == pytest.approx(clock() + 2.5)


def test_deadline_from_lambda_context_with_less_time_than_the_margin_is_expired() -> None:
    # Given a Lambda invocation with 0.4 s left
    clock = FakeClock()
    context = FakeLambdaContext(remaining_millis=400)

    # When a deadline is derived with the default 1 s margin
    deadline = Deadline.from_lambda_context(context, clock=clock)

    # Then it has already expired
    assert deadline.expired()


@pytest.mark.parametrize(
    ("rate", "burst", "message"),
    [
        (0, 1, "rate_per_second must be"),
        (-1, 1, "rate_per_second must be"),
        (float("nan"), 1, "rate_per_second must be"),
        (float("inf"), 1, "rate_per_second must be"),
        (1, 0, "burst must be >= 1"),
        (1, -3, "burst must be >= 1"),
    ],
)
def test_invalid_bucket_arguments_raise(rate: float, burst: int, message: str) -> None:
    # Given / When a bucket is built with an invalid rate or burst
    # Then it is refused, naming the argument
    with pytest.raises(ValueError, match=message):
        TokenBucket(rate, burst)


@pytest.mark.parametrize("tokens", [0, -1, float("nan")])
def test_non_positive_token_requests_raise(tokens: float) -> None:
    # Given a bucket
    limiter = bucket(rate=1, burst=2, clock=FakeClock())

    # When / Then asking for no tokens, or a negative number, is refused by both methods
    with pytest.raises(ValueError, match="tokens must be > 0"):
        limiter.acquire(tokens)
    with pytest.raises(ValueError, match="tokens must be > 0"):
        limiter.try_acquire(tokens)


def test_more_tokens_than_burst_raise() -> None:
    # Given a bucket of burst 2
    clock = FakeClock()
    limiter = bucket(rate=1, burst=2, clock=clock)

    # When / Then asking for 3 tokens at once is refused (it could never be granted)
    with pytest.raises(ValueError, match="burst 2"):
        limiter.acquire(3)
    with pytest.raises(ValueError, match="burst 2"):
        limiter.try_acquire(3)
    assert clock.sleeps == []


def test_invalid_deadline_arguments_raise() -> None:
    # Given / When / Then a NaN deadline or a negative margin is refused
    with pytest.raises(ValueError, match="NaN"):
        Deadline.after(float("nan"))
    with pytest.raises(ValueError, match="margin_seconds"):
        Deadline.from_lambda_context(FakeLambdaContext(5000), margin_seconds=-1)


def test_properties_report_the_configuration() -> None:
    # Given / When a bucket of rate 2.5 and burst 3
    limiter = TokenBucket(2.5, 3)

    # Then its properties report them
    assert limiter.rate_per_second == 2.5
    assert limiter.burst == 3


def test_unlimited_never_waits_nor_refuses() -> None:
    # Given the unlimited limiter and a deadline that has passed
    limiter: RateLimiter = unlimited()
    deadline = Deadline.after(-1.0)

    # When many tokens are taken
    waits = [limiter.acquire(1000, deadline=deadline) for _ in range(100)]

    # Then nothing waited and everything was granted
    assert waits == [0.0] * 100
    assert limiter.try_acquire(1_000_000) is True


def test_token_bucket_is_a_rate_limiter() -> None:
    # Given / When a bucket is used where a RateLimiter is expected
    limiter: RateLimiter = bucket(rate=1, burst=1, clock=FakeClock())

    # Then it behaves as one
    assert limiter.try_acquire() is True


def test_sleeping_caller_does_not_block_other_callers() -> None:
    # Given a bucket whose sleep checks, from another thread, that the bucket is still usable
    clock = FakeClock()
    other_finished: list[bool] = []

    def sleep(seconds: float) -> None:
        other = threading.Thread(target=lambda: other_finished.append(limiter.try_acquire()))
        other.start()
        other.join(timeout=2.0)
        other_finished.append(not other.is_alive())
        clock.sleep(seconds)

    limiter = TokenBucket(10, 1, clock=clock, sleep=sleep)
    limiter.acquire()

    # When a caller has to wait
    limiter.acquire()

    # Then another caller could use the bucket meanwhile (and was refused the reserved token)
    assert other_finished == [False, True]


def test_the_limiters_rate_under_threads() -> None:
    # Given 8 threads sharing a bucket of rate 200 and burst 1 on the real clock; the clock also
    # remembers, per thread, its last reading: the instant the bucket computed that thread's wait
    rate, burst, total = 200.0, 1, 100
    last_reading = threading.local()

    def clock() -> float:
        last_reading.value = time.monotonic()
        return float(last_reading.value)

    limiter = TokenBucket(rate, burst, clock=clock)
    tickets = iter(range(total))
    tickets_lock = threading.Lock()
    granted_at: list[float] = []  # when the bucket made the tokens available
    woke_at: list[float] = []  # when the caller got them (later, by the OS's wake-up delay)
    record_lock = threading.Lock()

    def worker() -> None:
        while True:
            with tickets_lock:
                if next(tickets, None) is None:
                    return
            waited = limiter.acquire()
            with record_lock:
                granted_at.append(last_reading.value + waited)
                woke_at.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(8)]

    # When they together acquire 100 tokens
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5.0)
    elapsed = time.monotonic() - start

    # Then it took at least (100 - burst) / rate = 0.495 s, less a little for float rounding
    assert len(granted_at) == total
    assert elapsed >= 0.45
    # And no window of time saw more grants than the bucket allows
    slack = 1
    granted_at.sort()
    for first in range(total):
        for last in range(first, total):
            granted = last - first + 1
            window = granted_at[last] - granted_at[first]
            assert granted <= burst + rate * window + slack, f"{granted} grants in {window:.4f}s"
    # And, since a caller cannot wake before its grant, no more than that many woke by any time
    # (sliding windows of wake-ups would measure the OS scheduler, which can bunch them)
    woke_at.sort()
    for count, woke in enumerate(woke_at, start=1):
        assert count <= burst + rate * (woke - start) + slack


def test_rate_limiter_bursts_one_seconds_worth_unless_told() -> None:
    # Given limiters built from a rate alone, a fractional rate, and an explicit burst
    frozen = FakeClock()
    steady = rate_limiter(20, clock=frozen)
    slow = rate_limiter(0.5, clock=frozen)
    bursty = rate_limiter(20, burst=3, clock=frozen)
    # When each is drained without waiting
    granted = [sum(limiter.try_acquire() for _ in range(50)) for limiter in (steady, slow, bursty)]
    # Then a second's worth is granted at once (at least one token), or the explicit burst
    assert granted == [20, 1, 3]
