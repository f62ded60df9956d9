"""The circuit breaker opens on consecutive failures, cools down, and probes once to close."""

from __future__ import annotations

import threading
import time

import pytest

from cachesync.circuit_breaker import CircuitBreaker, CircuitState

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, now: float = 500.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Transitions:
    """Records every ``on_state_change`` call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, CircuitState, CircuitState]] = []

    def __call__(self, name: str, old: CircuitState, new: CircuitState) -> None:
        self.calls.append((name, old, new))


def breaker(
    clock: FakeClock,
    transitions: Transitions | None = None,
    *,
    failure_threshold: int = 3,
    cool_down_seconds: float = 10.0,
) -> CircuitBreaker:
    return CircuitBreaker(
        "index",
        failure_threshold=failure_threshold,
        cool_down_seconds=cool_down_seconds,
        clock=clock,
        on_state_change=transitions,
    )


def open_breaker(circuit: CircuitBreaker, failures: int = 3) -> None:
    for _ in range(failures):
        assert circuit.allow_request()
        circuit.record_failure()


def test_starts_closed_and_allows_requests() -> None:
    # Given / When a new breaker
    circuit = breaker(FakeClock())

    # Then it is closed and lets requests through
    assert circuit.state is CLOSED
    assert circuit.name == "index"
    assert all(circuit.allow_request() for _ in range(10))


def test_opens_after_threshold_consecutive_failures() -> None:
    # Given a breaker with a threshold of 3
    circuit = breaker(FakeClock())

    # When 2 requests fail, the breaker is still closed; when the third fails...
    open_breaker(circuit, failures=2)
    assert circuit.state is CLOSED
    circuit.record_failure()

    # Then it is open and refuses requests
    assert circuit.state is OPEN
    assert circuit.allow_request() is False


def test_a_success_between_failures_resets_the_count() -> None:
    # Given a breaker with a threshold of 3
    circuit = breaker(FakeClock())

    # When failures and successes alternate: 2 failures, a success, 2 failures (4 in total)
    open_breaker(circuit, failures=2)
    circuit.record_success()
    open_breaker(circuit, failures=2)

    # Then it stays closed: the failures were never 3 in a row
    assert circuit.state is CLOSED
    assert circuit.allow_request() is True


def test_stays_open_during_the_cool_down() -> None:
    # Given a breaker opened with a 10 s cool-down
    clock = FakeClock()
    circuit = breaker(clock)
    open_breaker(circuit)

    # When requests are asked for up to just before the cool-down ends
    refused = []
    for _ in range(10):
        clock.now += 0.999
        refused.append(circuit.allow_request())

    # Then every one is refused and the breaker is still open
    assert refused == [False] * 10
    assert circuit.state is OPEN


def test_half_open_allows_exactly_one_probe() -> None:
    # Given an open breaker whose cool-down has passed
    clock = FakeClock()
    circuit = breaker(clock)
    open_breaker(circuit)
    clock.now += 10.0

    # When several requests are asked for while the first is outstanding
    allowed = [circuit.allow_request() for _ in range(5)]

    # Then only the first (the probe) goes through, and the breaker is half-open
    assert allowed == [True, False, False, False, False]
    assert circuit.state is HALF_OPEN


def test_half_open_allows_exactly_one_probe_under_racing_threads() -> None:
    # Given an open breaker whose cool-down has passed, and two threads released together; its
    # clock yields to the other thread, as a preempted caller would, to widen any race window
    clock = FakeClock()

    def yielding_clock() -> float:
        time.sleep(0.0002)
        return clock()

    circuit = CircuitBreaker(
        "index", failure_threshold=3, cool_down_seconds=10.0, clock=yielding_clock
    )
    open_breaker(circuit)
    clock.now += 10.0
    start = threading.Barrier(2)
    results: list[bool] = []
    results_lock = threading.Lock()

    def ask() -> None:
        start.wait()
        allowed = circuit.allow_request()
        with results_lock:
            results.append(allowed)

    # When both ask for a request at once (many rounds, re-opening between them)
    rounds = []
    for _ in range(50):
        results.clear()
        threads = [threading.Thread(target=ask) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=5.0)
        rounds.append(sorted(results))
        circuit.record_failure()  # the probe failed: open again
        clock.now += 10.0

    # Then every round let exactly one of them through
    assert rounds == [[False, True]] * 50


def test_probe_success_closes_and_resets_the_count() -> None:
    # Given a half-open breaker with its probe outstanding
    clock = FakeClock()
    circuit = breaker(clock)
    open_breaker(circuit)
    clock.now += 10.0
    assert circuit.allow_request()

    # When the probe succeeds
    circuit.record_success()

    # Then the breaker is closed, lets requests through, and needs 3 new failures to open
    assert circuit.state is CLOSED
    assert circuit.allow_request() is True
    open_breaker(circuit, failures=2)
    assert circuit.state is CLOSED
    circuit.record_failure()
    assert circuit.state is OPEN


def test_probe_failure_reopens_for_a_new_cool_down() -> None:
    # Given a half-open breaker whose probe is sent 5 s after the cool-down ended
    clock = FakeClock()
    circuit = breaker(clock)
    open_breaker(circuit)
    clock.now += 15.0
    assert circuit.allow_request()

    # When the probe fails
    circuit.record_failure()

    # Then the breaker is open again, for a whole new cool-down counted from the failure
    assert circuit.state is OPEN
    clock.now += 9.9
    assert circuit.allow_request() is False
    clock.now += 0.1
    assert circuit.allow_request() is True
    assert circuit.state is HALF_OPEN


def test_a_lost_probe_is_replaced_after_a_cool_down() -> None:
    # Given a half-open breaker whose probe never reports back
    clock = FakeClock()
    circuit = breaker(clock)
    open_breaker(circuit)
    clock.now += 10.0
    assert circuit.allow_request()

    # When a whole cool-down passes with the probe still outstanding
    clock.now += 9.9
    before = circuit.allow_request()
    clock.now += 0.1
    after = circuit.allow_request()

    # Then one new probe is let through, instead of the breaker staying half-open for ever
    assert (before, after) == (False, True)
    assert circuit.allow_request() is False


def test_late_outcomes_while_open_do_not_change_it() -> None:
    # Given an open breaker
    clock = FakeClock()
    transitions = Transitions()
    circuit = breaker(clock, transitions)
    open_breaker(circuit)
    clock.now += 5.0

    # When requests let through before it opened report late: a success, then a failure
    circuit.record_success()
    circuit.record_failure()

    # Then it stays open, and the cool-down still ends 10 s after it opened
    assert circuit.state is OPEN
    clock.now += 5.0
    assert circuit.allow_request() is True
    assert transitions.calls[-1] == ("index", OPEN, HALF_OPEN)


def test_callbacks_see_every_transition_in_order() -> None:
    # Given a breaker reporting to a callback that also reads the state
    clock = FakeClock()
    seen_states: list[CircuitState] = []
    transitions = Transitions()
    circuit: CircuitBreaker

    def on_change(name: str, old: CircuitState, new: CircuitState) -> None:
        transitions(name, old, new)
        seen_states.append(circuit.state)  # would deadlock if called under the lock

    circuit = CircuitBreaker(
        "index", failure_threshold=2, cool_down_seconds=10.0, clock=clock, on_state_change=on_change
    )

    # When it opens, probes and fails, probes again and succeeds
    open_breaker(circuit, failures=2)
    clock.now += 10.0
    circuit.allow_request()
    circuit.record_failure()
    clock.now += 10.0
    circuit.allow_request()
    circuit.record_success()

    # Then the callback saw each transition once, in order, with the breaker's name
    assert transitions.calls == [
        ("index", CLOSED, OPEN),
        ("index", OPEN, HALF_OPEN),
        ("index", HALF_OPEN, OPEN),
        ("index", OPEN, HALF_OPEN),
        ("index", HALF_OPEN, CLOSED),
    ]
    assert seen_states == [OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]


def test_no_callback_for_calls_that_change_nothing() -> None:
    # Given a closed breaker with a callback
    transitions = Transitions()
    circuit = breaker(FakeClock(), transitions)

    # When requests succeed and fail below the threshold
    circuit.record_success()
    circuit.record_failure()
    circuit.record_success()

    # Then no transition was reported
    assert transitions.calls == []


def wait_for_state(circuit: CircuitBreaker, state: CircuitState) -> None:
    give_up = time.monotonic() + 5.0
    while circuit.state is not state:
        assert time.monotonic() < give_up, f"breaker never reached {state}"
        time.sleep(0.001)


def test_callbacks_keep_the_order_of_transitions_made_by_different_threads() -> None:
    # Given a breaker whose callback blocks on its first call (CLOSED -> OPEN, in thread A)
    clock = FakeClock()
    transitions = Transitions()
    first_call_started, release_first_call = threading.Event(), threading.Event()

    def on_change(name: str, old: CircuitState, new: CircuitState) -> None:
        if not first_call_started.is_set():
            first_call_started.set()
            release_first_call.wait(timeout=5.0)
        transitions(name, old, new)

    circuit = CircuitBreaker(
        "index", failure_threshold=1, cool_down_seconds=10.0, clock=clock, on_state_change=on_change
    )
    thread_a = threading.Thread(target=circuit.record_failure)
    thread_a.start()
    assert first_call_started.wait(timeout=5.0)

    # When, while A is still being reported, thread B makes the probe (OPEN -> HALF_OPEN), then
    # thread C's failure re-opens the breaker (HALF_OPEN -> OPEN), and then A's callback returns
    clock.now += 10.0
    thread_b = threading.Thread(target=circuit.allow_request)
    thread_b.start()
    wait_for_state(circuit, HALF_OPEN)
    thread_c = threading.Thread(target=circuit.record_failure)
    thread_c.start()
    wait_for_state(circuit, OPEN)
    release_first_call.set()
    for thread in (thread_a, thread_b, thread_c):
        thread.join(timeout=5.0)

    # Then the callback saw the three transitions in the order they happened
    assert transitions.calls == [
        ("index", CLOSED, OPEN),
        ("index", OPEN, HALF_OPEN),
        ("index", HALF_OPEN, OPEN),
    ]


@pytest.mark.parametrize(
    ("threshold", "cool_down", "message"),
    [
        (0, 10.0, "failure_threshold must be >= 1"),
        (3, 0.0, "cool_down_seconds must be"),
        (3, -1.0, "cool_down_seconds must be"),
        (3, float("nan"), "cool_down_seconds must be"),
        (3, float("inf"), "cool_down_seconds must be"),
    ],
)
def test_invalid_arguments_raise(threshold: int, cool_down: float, message: str) -> None:
    # Given / When a breaker is built with an invalid threshold or cool-down
    # Then it is refused, naming the argument
    with pytest.raises(ValueError, match=message):
        CircuitBreaker("index", failure_threshold=threshold, cool_down_seconds=cool_down)
