"""A circuit breaker around the index, for the fallback reader.

When the index keeps failing, the fallback reader should stop asking it (and paying its
timeouts) and read S3 directly for a while. The breaker decides when:

* CLOSED: requests go through; ``failure_threshold`` *consecutive* failures open it (a success in
  between resets the count, so sporadic errors under load do not trip it).
* OPEN: requests are refused until ``cool_down_seconds`` have passed since it opened.
* HALF_OPEN: after the cool-down, exactly one request (the probe) goes through; concurrent callers
  are refused while it is outstanding. Its success closes the breaker; its failure opens it for
  another cool-down.

The caller reports each outcome with :meth:`CircuitBreaker.record_success` or
:meth:`CircuitBreaker.record_failure`. A probe whose outcome is never reported (its caller died)
would keep the breaker half-open forever, so a probe outstanding for a whole cool-down is taken
as lost and another one is let through.

Every transition is reported to ``on_state_change(name, old, new)``, outside the lock (the
callback logs and counts, and may read :attr:`CircuitBreaker.state`), one call at a time and in
the order the transitions happened, even across threads.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum


class CircuitState(StrEnum):
    """The state of a :class:`CircuitBreaker`."""

    CLOSED = "closed"
    """Requests go through; consecutive failures are counted."""
    OPEN = "open"
    """Requests are refused until the cool-down has passed."""
    HALF_OPEN = "half_open"
    """One probe request is outstanding; its outcome closes or re-opens the breaker."""


StateChangeCallback = Callable[[str, CircuitState, CircuitState], None]
"""Called with ``(name, old_state, new_state)`` after each transition."""


class CircuitBreaker:
    """A thread-safe circuit breaker: CLOSED -> OPEN -> HALF_OPEN -> CLOSED or OPEN."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        cool_down_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateChangeCallback | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        # > 0: with no cool-down a probe would count as lost at once and HALF_OPEN would admit
        # every caller.
        if not (cool_down_seconds > 0 and math.isfinite(cool_down_seconds)):
            raise ValueError(
                f"cool_down_seconds must be a finite number > 0, got {cool_down_seconds}"
            )
        self._name = name
        self._failure_threshold = failure_threshold
        self._cool_down = float(cool_down_seconds)
        self._clock = clock
        self._on_state_change = on_state_change
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._consecutive_failures = 0
        self._opened_at = 0.0
        self._probe_started_at = 0.0
        # Transitions not yet reported; appended under _lock, so in the order they happened.
        self._pending: deque[tuple[CircuitState, CircuitState]] = deque()
        # Serialises reporting so that callbacks see transitions in order. Reentrant, so that a
        # callback may itself record an outcome.
        self._report_lock = threading.RLock()

    @property
    def name(self) -> str:
        """The name given to the callback (which breaker changed state)."""
        return self._name

    @property
    def state(self) -> CircuitState:
        """The current state; stays OPEN after the cool-down until a request is allowed."""
        with self._lock:
            return self._state

    def allow_request(self) -> bool:
        """Whether the caller may send a request now; if True, it must report the outcome."""
        with self._lock:
            allowed = self._allow_locked()
        self._report()
        return allowed

    def record_success(self) -> None:
        """Report a request that succeeded: closes a half-open breaker, resets the count."""
        with self._lock:
            if self._state is CircuitState.HALF_OPEN:
                self._transition(CircuitState.CLOSED)
            # A success while OPEN is a request let through before the breaker opened: it says
            # nothing about the index now, so the cool-down stands.
            if self._state is CircuitState.CLOSED:
                self._consecutive_failures = 0
        self._report()

    def record_failure(self) -> None:
        """Report a request that failed: counts towards opening, or re-opens a half-open one."""
        with self._lock:
            if self._state is CircuitState.CLOSED:
                self._consecutive_failures += 1
                if self._consecutive_failures >= self._failure_threshold:
                    self._open()
            elif self._state is CircuitState.HALF_OPEN:
                self._open()
            # A failure while OPEN is a late request let through before it opened: ignored, so
            # that stragglers cannot extend the cool-down.
        self._report()

    def _allow_locked(self) -> bool:
        state = self._state
        if state is CircuitState.CLOSED:
            return True
        now = self._clock()  # not on the CLOSED path: that one is every request
        if state is CircuitState.OPEN:
            if now - self._opened_at < self._cool_down:
                return False
            self._transition(CircuitState.HALF_OPEN)
            self._probe_started_at = now
            return True
        # HALF_OPEN: a probe is outstanding; only a lost one is replaced.
        if now - self._probe_started_at < self._cool_down:
            return False
        self._probe_started_at = now
        return True

    def _open(self) -> None:
        self._transition(CircuitState.OPEN)
        self._opened_at = self._clock()
        self._consecutive_failures = 0

    def _transition(self, new: CircuitState) -> None:
        # Called with _lock held.
        old, self._state = self._state, new
        if self._on_state_change is not None and old is not new:
            self._pending.append((old, new))

    def _report(self) -> None:
        if self._on_state_change is None:
            return
        with self._report_lock:
            while True:
                with self._lock:
                    if not self._pending:
                        return
                    old, new = self._pending.popleft()
                self._on_state_change(self._name, old, new)
