"""The secret store against moto server's Secrets Manager, over HTTP through boto3."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

from cachesync import aws_clients
from cachesync.exceptions import SecretRequestError
from cachesync.local import LocalStack
from cachesync.local.dynamodb_local import (
    LOCAL_ACCESS_KEY_ID,
    LOCAL_REGION,
    LOCAL_SECRET_ACCESS_KEY,
)
from cachesync.stores.secrets_manager import SecretsManagerSecretStore

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


@pytest.fixture
def secretsmanager(local_stack: LocalStack) -> SecretsManagerClient:
    """A Secrets Manager client bound to the stack's moto server."""
    return aws_clients.client(
        "secretsmanager",
        endpoint_url=local_stack.moto_endpoint,
        region_name=LOCAL_REGION,
        aws_access_key_id=LOCAL_ACCESS_KEY_ID,
        aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY,
    )


def test_reads_the_current_string_by_name_and_by_arn(
    secretsmanager: SecretsManagerClient,
) -> None:
    # Given a secret with two versions (the second is current)
    name = f"cachesync/test/{uuid.uuid4().hex[:8]}"
    created = secretsmanager.create_secret(Name=name, SecretString="first-value")
    secretsmanager.put_secret_value(SecretId=name, SecretString="second-value")
    store = SecretsManagerSecretStore(secretsmanager)
    # When it is read by name and by ARN
    by_name = store.get_secret_string(name)
    by_arn = store.get_secret_string(created["ARN"])
    # Then both give the current value, kept out of repr
    assert by_name.get_secret_value() == by_arn.get_secret_value() == "second-value"
    assert "second-value" not in repr(by_name)


def test_a_missing_secret_is_a_refusal_naming_the_secret(
    secretsmanager: SecretsManagerClient,
) -> None:
    # Given no such secret
    name = f"cachesync/missing/{uuid.uuid4().hex[:8]}"
    # When it is read / Then the store refuses with the AWS code and the secret's name
    with pytest.raises(SecretRequestError) as caught:
        SecretsManagerSecretStore(secretsmanager).get_secret_string(name)
    assert caught.value.code == "ResourceNotFoundException"
    assert caught.value.secret_id == name


def test_a_binary_secret_is_refused(secretsmanager: SecretsManagerClient) -> None:
    # Given a secret holding bytes, not a string
    name = f"cachesync/binary/{uuid.uuid4().hex[:8]}"
    secretsmanager.create_secret(Name=name, SecretBinary=b"\x00\x01")
    # When it is read / Then it is refused: the token secret must be a string
    with pytest.raises(SecretRequestError) as caught:
        SecretsManagerSecretStore(secretsmanager).get_secret_string(name)
    assert caught.value.code == "NoSecretString"


def test_a_secret_scheduled_for_deletion_is_refused(secretsmanager: SecretsManagerClient) -> None:
    # Given a secret deleted with a recovery window
    name = f"cachesync/deleted/{uuid.uuid4().hex[:8]}"
    secretsmanager.create_secret(Name=name, SecretString="x" * 40)
    secretsmanager.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    # When it is read / Then Secrets Manager's refusal becomes a SecretRequestError
    with pytest.raises(SecretRequestError):
        SecretsManagerSecretStore(secretsmanager).get_secret_string(name)
