"""Only named transient errors are retried, a bounded number of times."""

from __future__ import annotations

import logging
import re

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from cachesync.retry_policies import RetryPolicy, is_transient_aws_error


def client_error(code: str, status: int = 400, reasons: list[str] | None = None) -> ClientError:
    response: dict[str, object] = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    if reasons is not None:
        response["CancellationReasons"] = [{"Code": r} for r in reasons]
    return ClientError(response, "Op")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [
        client_error("ProvisionedThroughputExceededException"),
        client_error("ThrottlingException"),
        client_error("RequestLimitExceeded"),
        client_error("InternalServerError", 500),
        client_error("Whatever", 503),
        client_error("TransactionCanceledException", reasons=["None", "TransactionConflict"]),
        EndpointConnectionError(endpoint_url="http://x"),
    ],
)
def test_transient_errors(error: Exception) -> None:
    assert is_transient_aws_error(error)


@pytest.mark.parametrize(
    "error",
    [
        client_error("ValidationException"),
        client_error("ConditionalCheckFailedException"),
        client_error("ResourceNotFoundException"),
        client_error("TransactionCanceledException", reasons=["ConditionalCheckFailed", "None"]),
        client_error("AccessDeniedException", 403),
        ValueError("not aws"),
    ],
)
def test_permanent_errors(error: Exception) -> None:
    assert not is_transient_aws_error(error)


def test_transient_errors_are_retried_until_success() -> None:
    # Given a call that is throttled twice
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise client_error("ThrottlingException")
        return "ok"

    # When it runs under the policy
    result = RetryPolicy(attempts=5, initial_wait_seconds=0.001).call("Op", flaky)
    # Then it succeeds on the third attempt
    assert result == "ok"
    assert len(calls) == 3


def test_retries_are_bounded_and_the_last_error_surfaces() -> None:
    calls: list[int] = []

    def always_throttled() -> None:
        calls.append(1)
        raise client_error("ThrottlingException")

    with pytest.raises(ClientError):
        RetryPolicy(attempts=3, initial_wait_seconds=0.001).call("Op", always_throttled)
    assert len(calls) == 3


def test_permanent_errors_are_not_retried() -> None:
    calls: list[int] = []

    def invalid() -> None:
        calls.append(1)
        raise client_error("ValidationException")

    with pytest.raises(ClientError):
        RetryPolicy(attempts=5, initial_wait_seconds=0.001).call("Op", invalid)
    assert len(calls) == 1


def test_retry_logs_number_each_failed_attempt_once(caplog: pytest.LogCaptureFixture) -> None:
    # Given a call that is always throttled, under a policy of four attempts
    def always_throttled() -> None:
        raise client_error("ThrottlingException")

    # When it runs and gives up
    policy = RetryPolicy(attempts=4, initial_wait_seconds=0.001)
    with (
        caplog.at_level(logging.WARNING, logger="cachesync.retry_policies"),
        pytest.raises(ClientError),
    ):
        policy.call("Op", always_throttled)
    # Then each retry names the attempt that failed: 1, 2, 3 (the fourth is raised, not retried)
    numbers = [re.search(r"attempt (\d+)", r.getMessage()) for r in caplog.records]
    assert [int(found.group(1)) if found else None for found in numbers] == [1, 2, 3]
