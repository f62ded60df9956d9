"""API keys: format, salted hashes, verification and tenancy, without a server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cachesync.api.keys import (
    InvalidApiKeyError,
    Scope,
    hash_secret,
    new_api_key,
    split_key,
    verify,
)
from cachesync.exceptions import InvalidRequestError

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_a_new_key_verifies_and_its_record_holds_no_secret() -> None:
    # Given a new key for two customers
    created = new_api_key("app", ["Acme", " globex ", "acme"], [Scope.READ], NOW)
    key_id, secret = split_key(created.key)
    # When it is verified against its record
    principal = verify(created.record, secret)
    # Then it is the key's principal; the record holds a salted hash, not the secret
    assert principal.key_id == key_id == created.record.key_id
    assert principal.customers == ("acme", "globex")
    assert principal.scopes == frozenset({Scope.READ})
    assert secret not in created.record.model_dump_json()
    assert created.record.secret_hash == hash_secret(created.record.salt, secret)


def test_two_keys_with_the_same_secret_have_different_hashes() -> None:
    # Given / When / Then salts differ per key, so equal secrets hash differently
    assert hash_secret("00" * 16, "same") != hash_secret("01" * 16, "same")


def test_a_star_key_sees_every_customer() -> None:
    # Given / When a key for '*' is verified
    created = new_api_key("all", ["*"], [Scope.READ, Scope.WRITE], NOW)
    principal = verify(created.record, split_key(created.key)[1])
    # Then it has no customer restriction
    assert principal.customers is None
    assert principal.may_see(["anyone"])


def test_a_restricted_principal_sees_documents_naming_one_of_its_customers() -> None:
    # Given acme's principal
    created = new_api_key("acme", ["acme"], [Scope.READ], NOW)
    principal = verify(created.record, split_key(created.key)[1])
    # When / Then
    assert principal.may_see(["globex", "acme"])
    assert not principal.may_see(["globex"])
    assert not principal.may_see([])


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "csk_",
        "csk_0123456789ab",
        "csk_0123456789ab_",
        "csk_0123456789AB_x",
        "abc_0123456789ab_x",
    ],
)
def test_malformed_keys_are_refused(presented: str) -> None:
    # Given / When / Then
    with pytest.raises(InvalidApiKeyError, match="malformed"):
        split_key(presented)


def test_a_wrong_unknown_or_revoked_key_is_refused() -> None:
    # Given a key
    created = new_api_key("app", ["acme"], [Scope.READ], NOW)
    _, secret = split_key(created.key)
    revoked = created.record.model_copy(update={"revoked_at": NOW})
    # When / Then a wrong secret, no record and a revoked record are each refused
    with pytest.raises(InvalidApiKeyError, match="not valid"):
        verify(created.record, secret + "x")
    with pytest.raises(InvalidApiKeyError, match="not valid"):
        verify(None, secret)
    with pytest.raises(InvalidApiKeyError, match="revoked"):
        verify(revoked, secret)


def test_a_key_needs_a_customer_and_a_scope() -> None:
    # Given / When / Then
    with pytest.raises(InvalidRequestError, match="customer"):
        new_api_key("none", [" "], [Scope.READ], NOW)
    with pytest.raises(InvalidRequestError, match="scope"):
        new_api_key("none", ["acme"], [], NOW)
