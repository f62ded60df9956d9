"""Asynchronous invocations of a Lambda function (a long backfill invoking itself again).

All Lambda I/O of cachesync happens here, through an injected boto3 Lambda client. Lambda error
codes become cachesync errors in exactly one function, :func:`_translate`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from cachesync.exceptions import (
    CacheSyncError,
    FunctionRequestError,
    FunctionUnavailableError,
)
from cachesync.retry_policies import (
    DEFAULT_RETRY_POLICY,
    RetryPolicy,
    error_code,
    is_transient_aws_error,
)

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

# What Lambda answers to an accepted asynchronous invocation.
_ACCEPTED: Final = 202


class LambdaInvoker:
    """Invokes functions asynchronously through an injected boto3 Lambda client."""

    def __init__(
        self, client: LambdaClient, *, retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY
    ) -> None:
        self._client = client
        self._retry = retry_policy

    def invoke_async(self, function_arn: str, payload: dict[str, Any]) -> None:
        """Queue an invocation of ``function_arn`` with ``payload`` (``InvocationType=Event``).

        Returns once Lambda has accepted the event; the function runs later, at least once.
        """
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")

        def invoke() -> None:
            response = self._client.invoke(
                FunctionName=function_arn, InvocationType="Event", Payload=body
            )
            status = int(response.get("StatusCode", 0))
            if status != _ACCEPTED:
                raise FunctionRequestError(
                    function_arn, str(status), "the asynchronous invocation was not accepted"
                )

        try:
            self._retry.call("Invoke", invoke)
        except ClientError as error:
            raise _translate(function_arn, error) from error
        except BotoCoreError as error:
            raise FunctionUnavailableError(
                function_arn, type(error).__name__, str(error)
            ) from error


def _translate(function: str, error: ClientError) -> CacheSyncError:
    """The one place Lambda error codes become cachesync errors."""
    code = error_code(error)
    message = str(error.response.get("Error", {}).get("Message", code))
    if is_transient_aws_error(error):
        return FunctionUnavailableError(function, code, message)
    return FunctionRequestError(function, code, message)
