"""API keys: format, salted hashes, verification and tenancy, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cachesync.api.keys import (
    ApiKeyRecord,
    InvalidApiKeyError,
    KeyRecordCache,
    Scope,
    hash_secret,
    new_api_key,
    rotated_api_key,
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


# ---------------------------------------------------------------------- the key record cache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Lookups:
    """A key store's ``get``: records by key id, each call counted."""

    def __init__(self, *records: ApiKeyRecord) -> None:
        self.records = {record.key_id: record for record in records}
        self.calls: list[str] = []

    def __call__(self, key_id: str) -> ApiKeyRecord | None:
        self.calls.append(key_id)
        return self.records.get(key_id)


def test_a_key_record_is_read_once_per_ttl() -> None:
    # Given a cache with a 5 s TTL in front of a store holding one key
    created = new_api_key("app", ["*"], [Scope.READ], NOW)
    lookups, clock = Lookups(created.record), Clock()
    cache = KeyRecordCache(lookups, ttl_seconds=5, timer=clock)
    key_id = created.record.key_id
    # When the key is looked up three times within 5 s, then at 5 s
    within = [cache.get(key_id) for _ in range(3)]
    clock.now = 5.0
    after = cache.get(key_id)
    # Then the store is read once, then again once the entry expired
    assert within == [created.record] * 3
    assert after == created.record
    assert lookups.calls == [key_id, key_id]


def test_a_revocation_takes_effect_once_the_cached_record_expires() -> None:
    # Given a key read through a 5 s cache, then revoked in the store
    created = new_api_key("app", ["*"], [Scope.READ], NOW)
    key_id, secret = split_key(created.key)
    lookups, clock = Lookups(created.record), Clock()
    cache = KeyRecordCache(lookups, ttl_seconds=5, timer=clock)
    assert verify(cache.get(key_id), secret).key_id == key_id
    lookups.records[key_id] = created.record.model_copy(update={"revoked_at": NOW})
    # When it is presented within the TTL, then after it
    clock.now = 4.9
    still_cached = verify(cache.get(key_id), secret)
    clock.now = 5.0
    # Then it works until the entry expires, and is refused as revoked from then on
    assert still_cached.key_id == key_id
    with pytest.raises(InvalidApiKeyError, match="revoked"):
        verify(cache.get(key_id), secret)


def test_an_unknown_key_id_is_never_cached() -> None:
    # Given a cache in front of a store without the key
    created = new_api_key("app", ["*"], [Scope.READ], NOW)
    lookups = Lookups()
    cache = KeyRecordCache(lookups, ttl_seconds=60, timer=Clock())
    key_id = created.record.key_id
    # When it is looked up, then created in the store and looked up again at the same instant
    before = cache.get(key_id)
    lookups.records[key_id] = created.record
    after = cache.get(key_id)
    # Then the first lookup found nothing, the second found the new key (no negative caching)
    assert before is None
    assert after == created.record
    assert lookups.calls == [key_id, key_id]


def test_a_ttl_of_zero_reads_the_store_every_time() -> None:
    # Given a cache with TTL 0
    created = new_api_key("app", ["*"], [Scope.READ], NOW)
    lookups = Lookups(created.record)
    cache = KeyRecordCache(lookups, ttl_seconds=0, timer=Clock())
    # When the key is looked up three times at the same instant
    for _ in range(3):
        cache.get(created.record.key_id)
    # Then the store is read three times
    assert len(lookups.calls) == 3


def test_the_least_recently_used_key_record_goes_past_the_bound() -> None:
    # Given a cache of two records, the first one read again
    records = [new_api_key(f"k{n}", ["*"], [Scope.READ], NOW).record for n in range(3)]
    lookups = Lookups(*records)
    cache = KeyRecordCache(lookups, ttl_seconds=60, max_entries=2, timer=Clock())
    first, second, third = (record.key_id for record in records)
    cache.get(first)
    cache.get(second)
    cache.get(first)
    # When a third key comes in, then the first two are looked up again
    cache.get(third)
    lookups.calls.clear()
    cache.get(first)
    cache.get(second)
    # Then only the least recently used one (the second) had to be read again
    assert lookups.calls == [second]


def test_a_rotation_keeps_the_old_secret_for_its_grace_only() -> None:
    # Given a key rotated with a one-hour grace
    created = new_api_key("app", ["*"], [Scope.READ], NOW)
    _, old = split_key(created.key)
    rotated = rotated_api_key(created.record, NOW, timedelta(hours=1))
    key_id, new = split_key(rotated.key)
    # When / Then both secrets verify within the grace, only the new one after it
    assert key_id == created.record.key_id
    assert verify(rotated.record, old, NOW + timedelta(minutes=59)).key_id == key_id
    assert verify(rotated.record, new, NOW + timedelta(days=9)).key_id == key_id
    with pytest.raises(InvalidApiKeyError, match="rotated at 2026-12-01T00:00:00Z"):
        verify(rotated.record, old, NOW + timedelta(hours=1))


def test_a_second_rotation_ends_the_first_grace_at_once() -> None:
    # Given a key rotated twice, each with a day's grace
    created = new_api_key("app", ["*"], [Scope.READ], NOW)
    _, first = split_key(created.key)
    once = rotated_api_key(created.record, NOW, timedelta(days=1))
    _, second = split_key(once.key)
    twice = rotated_api_key(once.record, NOW + timedelta(minutes=1), timedelta(days=1))
    # When / Then the first secret is refused at once, the second works in its grace
    with pytest.raises(InvalidApiKeyError, match="not valid"):
        verify(twice.record, first, NOW + timedelta(minutes=2))
    assert verify(twice.record, second, NOW + timedelta(minutes=2)).name == "app"


def test_a_revoked_rotated_key_refuses_both_secrets() -> None:
    # Given a rotated key, revoked
    created = new_api_key("app", ["*"], [Scope.READ], NOW)
    rotated = rotated_api_key(created.record, NOW, timedelta(hours=1))
    revoked = rotated.record.model_copy(update={"revoked_at": NOW})
    # When / Then neither secret works
    for key in (created.key, rotated.key):
        with pytest.raises(InvalidApiKeyError, match="revoked"):
            verify(revoked, split_key(key)[1], NOW)
