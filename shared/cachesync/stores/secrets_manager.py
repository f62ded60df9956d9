"""The secret store: read one secret's string from AWS Secrets Manager, through an injected client.

The query API reads its pagination-token secret here once, at cold start (``api/wiring.py``).
Secrets Manager error codes become cachesync errors in exactly one function, :func:`_translate`.
The value is returned as a ``SecretStr`` and never logged: errors name the secret, not its value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import SecretStr

from cachesync.exceptions import SecretRequestError, SecretStoreError, SecretUnavailableError
from cachesync.retry_policies import DEFAULT_RETRY_POLICY, RetryPolicy, error_code
from cachesync.retry_policies import is_transient_aws_error as _is_transient

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_secretsmanager.type_defs import GetSecretValueResponseTypeDef


class SecretsManagerSecretStore:
    """Secrets in AWS Secrets Manager, read through an injected boto3 client."""

    def __init__(
        self, client: SecretsManagerClient, *, retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY
    ) -> None:
        self._client = client
        self._retry = retry_policy

    def get_secret_string(self, secret_id: str) -> SecretStr:
        """The current (``AWSCURRENT``) string value of ``secret_id`` (an ARN or a name)."""
        response = self._get(secret_id)
        value = response.get("SecretString")
        if value is None:
            raise SecretRequestError(
                secret_id, "NoSecretString", "the secret holds binary data, not a string"
            )
        return SecretStr(value)

    def _get(self, secret_id: str) -> GetSecretValueResponseTypeDef:
        try:
            return self._retry.call(
                "GetSecretValue", lambda: self._client.get_secret_value(SecretId=secret_id)
            )
        except ClientError as error:
            raise _translate(secret_id, error) from error
        except BotoCoreError as error:
            raise SecretUnavailableError(secret_id, type(error).__name__, str(error)) from error


def _translate(secret_id: str, error: ClientError) -> SecretStoreError:
    """The one place Secrets Manager error codes become cachesync errors."""
    code = error_code(error)
    reason = str(error.response.get("Error", {}).get("Message", error))
    # Throttling, dropped connections and 5xx (Secrets Manager's InternalServiceError is a 500).
    if _is_transient(error):
        return SecretUnavailableError(secret_id, code, reason)
    # ResourceNotFoundException, AccessDeniedException, DecryptionFailure,
    # InvalidRequestException (a secret scheduled for deletion), InvalidParameterException.
    return SecretRequestError(secret_id, code, reason)
