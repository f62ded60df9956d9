"""Where the query API's token secret comes from: the environment locally, Secrets Manager in
AWS (exactly one), and the secret store's translation of AWS errors. A fake client, no network."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from pydantic import SecretStr

from cachesync.api.wiring import token_secret
from cachesync.exceptions import (
    ConfigurationError,
    SecretRequestError,
    SecretUnavailableError,
)
from cachesync.retry_policies import RetryPolicy
from cachesync.settings import ApiSettings, load_settings
from cachesync.stores.secrets_manager import SecretsManagerSecretStore

BASE = {"CACHESYNC_TABLE_NAME": "cachesync-index", "CACHESYNC_BUCKET_NAME": "documents"}
SECRET_VALUE = "v" * 40
NO_WAIT = RetryPolicy(attempts=3, initial_wait_seconds=0.0, max_wait_seconds=0.0)


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "GetSecretValue",
    )


class FakeSecretsManager:
    """Answers GetSecretValue from a dict; raises the queued errors first."""

    def __init__(self, secrets: dict[str, dict[str, Any]], errors: list[Exception] | None = None):
        self.secrets = secrets
        self.errors = list(errors or [])
        self.calls: list[str] = []

    def get_secret_value(self, *, SecretId: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.calls.append(SecretId)
        if self.errors:
            raise self.errors.pop(0)
        if SecretId not in self.secrets:
            raise client_error("ResourceNotFoundException", 400)
        return {
            "ARN": f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{SecretId}",
            **self.secrets[SecretId],
        }


def store(fake: FakeSecretsManager) -> SecretsManagerSecretStore:
    return SecretsManagerSecretStore(fake, retry_policy=NO_WAIT)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- settings


def test_the_secret_itself_or_a_secret_id_is_accepted() -> None:
    # Given each source alone / When the settings load
    local = load_settings(ApiSettings, {**BASE, "CACHESYNC_API_TOKEN_SECRET": SECRET_VALUE})
    aws = load_settings(ApiSettings, {**BASE, "CACHESYNC_API_TOKEN_SECRET_ID": "cachesync/api"})
    # Then each keeps its own source and the secret stays hidden
    assert local.api_token_secret == SecretStr(SECRET_VALUE)
    assert local.api_token_secret_id is None
    assert aws.api_token_secret is None
    assert aws.api_token_secret_id == "cachesync/api"
    assert SECRET_VALUE not in repr(local)


@pytest.mark.parametrize(
    "sources",
    [
        {},
        {"CACHESYNC_API_TOKEN_SECRET": SECRET_VALUE, "CACHESYNC_API_TOKEN_SECRET_ID": "x"},
    ],
    ids=["neither", "both"],
)
def test_exactly_one_source_is_required(sources: dict[str, str]) -> None:
    # Given neither or both sources / When the settings load / Then a configuration error
    # names both variables
    with pytest.raises(ConfigurationError) as caught:
        load_settings(ApiSettings, {**BASE, **sources})
    assert "CACHESYNC_API_TOKEN_SECRET " in caught.value.reason
    assert "CACHESYNC_API_TOKEN_SECRET_ID" in caught.value.reason
    assert SECRET_VALUE not in str(caught.value)


def test_a_short_local_secret_is_refused_naming_its_variable() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(ApiSettings, {**BASE, "CACHESYNC_API_TOKEN_SECRET": "short"})
    assert caught.value.variable == "CACHESYNC_API_TOKEN_SECRET"


# ---------------------------------------------------------------------- the store


def test_the_store_returns_the_string_of_the_secret() -> None:
    fake = FakeSecretsManager({"cachesync/api": {"SecretString": SECRET_VALUE}})
    value = store(fake).get_secret_string("cachesync/api")
    assert value.get_secret_value() == SECRET_VALUE
    assert fake.calls == ["cachesync/api"]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ResourceNotFoundException", 400),
        ("AccessDeniedException", 400),
        ("DecryptionFailure", 400),
        ("InvalidRequestException", 400),
    ],
)
def test_refusals_become_request_errors_at_once(code: str, status: int) -> None:
    # Given Secrets Manager refusing for a reason a retry cannot fix
    fake = FakeSecretsManager({}, errors=[client_error(code, status)])
    # When the secret is read / Then one call, and a SecretRequestError with the code
    with pytest.raises(SecretRequestError) as caught:
        store(fake).get_secret_string("cachesync/api")
    assert caught.value.code == code
    assert len(fake.calls) == 1


def test_transient_failures_are_retried_then_succeed() -> None:
    # Given a throttle and a 500 before the answer
    fake = FakeSecretsManager(
        {"cachesync/api": {"SecretString": SECRET_VALUE}},
        errors=[
            client_error("ThrottlingException", 400),
            client_error("InternalServiceError", 500),
        ],
    )
    # When the secret is read / Then the retry policy gets through to the value
    assert store(fake).get_secret_string("cachesync/api").get_secret_value() == SECRET_VALUE
    assert len(fake.calls) == 3


def test_transient_failures_past_the_retries_are_unavailable_errors() -> None:
    fake = FakeSecretsManager(
        {}, errors=[EndpointConnectionError(endpoint_url="https://sm") for _ in range(3)]
    )
    with pytest.raises(SecretUnavailableError) as caught:
        store(fake).get_secret_string("cachesync/api")
    assert caught.value.code == "EndpointConnectionError"
    assert len(fake.calls) == 3


def test_a_binary_secret_is_refused() -> None:
    fake = FakeSecretsManager({"cachesync/api": {"SecretBinary": b"\x00"}})
    with pytest.raises(SecretRequestError) as caught:
        store(fake).get_secret_string("cachesync/api")
    assert caught.value.code == "NoSecretString"


# ---------------------------------------------------------------------- wiring


def aws_settings() -> ApiSettings:
    return load_settings(ApiSettings, {**BASE, "CACHESYNC_API_TOKEN_SECRET_ID": "cachesync/api"})


def test_wiring_reads_the_secret_once_from_the_store() -> None:
    # Given settings naming a secret, and a store holding it
    fake = FakeSecretsManager({"cachesync/api": {"SecretString": SECRET_VALUE}})
    # When the token secret is resolved
    secret = token_secret(aws_settings(), secret_store=store(fake))
    # Then it is the stored value, read in one call
    assert secret == SECRET_VALUE.encode()
    assert fake.calls == ["cachesync/api"]


def test_wiring_uses_the_local_secret_without_any_store() -> None:
    settings = load_settings(ApiSettings, {**BASE, "CACHESYNC_API_TOKEN_SECRET": SECRET_VALUE})
    fake = FakeSecretsManager({})
    assert token_secret(settings, secret_store=store(fake)) == SECRET_VALUE.encode()
    assert fake.calls == []


@pytest.mark.parametrize(
    ("secrets", "reason"),
    [
        ({}, "ResourceNotFoundException"),
        ({"cachesync/api": {"SecretString": "too-short"}}, "at least 32"),
    ],
    ids=["missing", "short"],
)
def test_wiring_turns_a_bad_secret_into_a_configuration_error(
    secrets: dict[str, dict[str, Any]], reason: str
) -> None:
    # Given a secret id naming no secret, or a secret too short to sign with
    fake = FakeSecretsManager(secrets)
    # When the token secret is resolved / Then the cold start stops naming the variable
    with pytest.raises(ConfigurationError) as caught:
        token_secret(aws_settings(), secret_store=store(fake))
    assert caught.value.variable == "CACHESYNC_API_TOKEN_SECRET_ID"
    assert reason in caught.value.reason
    assert "too-short" not in str(caught.value)


def test_wiring_lets_transient_errors_through() -> None:
    # A transient failure is not a configuration problem: the next cold start tries again.
    fake = FakeSecretsManager({}, errors=[client_error("ThrottlingException", 400)] * 3)
    with pytest.raises(SecretUnavailableError):
        token_secret(aws_settings(), secret_store=store(fake))
