"""The one declaration of how cachesync retries AWS calls.

Only named transient failures are retried (throttling, 5xx, transaction conflicts, dropped
connections), with exponential backoff and full jitter, a bounded number of times. Everything else
surfaces at once.

How this composes with botocore: clients built by :mod:`cachesync.aws_clients` make exactly one
attempt per call (``total_max_attempts=1``), so this policy is the only retry layer and attempts do
not multiply (botocore's standard mode would otherwise retry three times inside each of our five
attempts). A client injected by a caller keeps whatever botocore retry configuration it has; then
both layers apply and the caller owns that choice.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

T = TypeVar("T")
logger = logging.getLogger(__name__)

TRANSIENT_ERROR_CODES: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeoutException",
        "TransactionInProgressException",
        "TooManyRequestsException",  # Lambda's throttling (HTTP 429)
    }
)
# Reasons inside a TransactionCanceledException that say "try again", not "your condition failed".
TRANSIENT_CANCELLATION_CODES: Final = frozenset(
    {
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
    }
)
_CONNECTION_ERRORS: Final = (
    EndpointConnectionError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ReadTimeoutError,
)


def error_code(error: ClientError) -> str:
    """The AWS error code of a botocore ``ClientError``."""
    return str(error.response.get("Error", {}).get("Code", "Unknown"))


def is_transient_aws_error(error: BaseException) -> bool:
    """Whether an AWS call that raised ``error`` may succeed if simply tried again."""
    if isinstance(error, _CONNECTION_ERRORS):
        return True
    if not isinstance(error, ClientError):
        return False
    code = error_code(error)
    if code in TRANSIENT_ERROR_CODES:
        return True
    if code == "TransactionCanceledException":
        reasons = {
            str(r.get("Code", "None")) for r in error.response.get("CancellationReasons", [])
        }
        return (
            bool(reasons & TRANSIENT_CANCELLATION_CODES) and "ConditionalCheckFailed" not in reasons
        )
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return status >= 500


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and full jitter on transient AWS errors."""

    attempts: int = 5
    initial_wait_seconds: float = 0.05
    max_wait_seconds: float = 2.0

    def call(self, operation: str, fn: Callable[[], T]) -> T:
        """Run ``fn``; retry it while it raises a transient AWS error; re-raise the last one."""
        # The first attempt runs bare: the happy path pays for no retry machinery.
        try:
            return fn()
        except (ClientError, *_CONNECTION_ERRORS) as error:
            if self.attempts <= 1 or not is_transient_aws_error(error):
                raise
            logger.warning(
                "retrying %s after transient error (attempt 1 of %d): %s",
                operation,
                self.attempts,
                error,
            )
        time.sleep(random.uniform(0, self.initial_wait_seconds))  # full jitter, first retry
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts - 1),
            wait=wait_random_exponential(
                multiplier=self.initial_wait_seconds * 2, max=self.max_wait_seconds
            ),
            retry=retry_if_exception(is_transient_aws_error),
            before_sleep=lambda state: _log_retry(operation, self.attempts, state),
            reraise=True,
        )
        return retrying(fn)


def _log_retry(operation: str, attempts: int, state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    # Tenacity counts only its own attempts; the bare first attempt in RetryPolicy.call came
    # before them, so its attempt n is the policy's attempt n + 1.
    logger.warning(
        "retrying %s after transient error (attempt %d of %d): %s",
        operation,
        state.attempt_number + 1,
        attempts,
        error,
    )


DEFAULT_RETRY_POLICY: Final = RetryPolicy()
NO_RETRY: Final = RetryPolicy(attempts=1)


@dataclass(frozen=True, slots=True)
class BackoffSchedule:
    """Exponential backoff with full jitter for work retried later (webhook deliveries).

    The wait before retry ``n`` (after the n-th failed attempt) is drawn uniformly from
    ``[0, min(base * 2 ** (n - 1), max)]``: full jitter spreads a receiver's outage's backlog
    instead of retrying it all at once.
    """

    base_seconds: float = 60.0
    max_seconds: float = 21_600.0

    def ceiling(self, failed_attempts: int) -> float:
        """The longest wait after ``failed_attempts`` (1 or more) failures."""
        exponent = min(max(failed_attempts - 1, 0), 62)  # 2**62 s is beyond any cap
        return min(self.base_seconds * float(1 << exponent), self.max_seconds)

    def delay(self, failed_attempts: int, rng: random.Random | None = None) -> float:
        """A jittered wait after ``failed_attempts`` failures."""
        return float((rng or random).uniform(0, self.ceiling(failed_attempts)))
