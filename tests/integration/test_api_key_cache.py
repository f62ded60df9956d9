"""The key record cache over HTTP: a revoked key keeps working for at most the cache's TTL.

The server of this module caches key records for a few seconds (the other API modules run
theirs without, to see revocations at once).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Final

from cachesync.api.keys import Scope, new_api_key, split_key
from tests.integration.api_http import ApiWorld, api_world

__all__ = ["api_world"]

KEY_CACHE_TTL_SECONDS: Final = 3.0
API_SERVER_ENVIRONMENT: Final = {"CACHESYNC_API_KEY_CACHE_TTL_SECONDS": str(KEY_CACHE_TTL_SECONDS)}


def test_a_revoked_key_is_refused_once_the_key_cache_ttl_has_passed(api_world: ApiWorld) -> None:
    # Given a key the server has just verified (its record now cached), then revoked in the store
    key = api_world.key()
    key_id, _ = split_key(key)
    first_use = time.monotonic()
    accepted = api_world.get("/v1/documents?limit=1", key)
    api_world.keys.revoke(key_id, datetime.now(UTC))
    # When it is presented at once, then until it is refused
    within_ttl = api_world.get("/v1/documents?limit=1", key)
    within_ttl_after = time.monotonic() - first_use
    replies = []
    deadline = first_use + KEY_CACHE_TTL_SECONDS + 10
    while time.monotonic() < deadline:
        replies.append(api_world.get("/v1/documents?limit=1", key))
        if replies[-1].status != 200:
            break
        time.sleep(0.25)
    refused_after = time.monotonic() - first_use
    # Then the cached record still lets it in at once, and it is refused as revoked once the
    # TTL has passed (not before: the record was cached)
    assert accepted.status == 200, accepted.body
    assert within_ttl.status == 200, f"refused {within_ttl_after:.2f} s after first use"
    assert replies[-1].status == 401, f"still accepted {refused_after:.1f} s after first use"
    assert "revoked" in replies[-1].json()["detail"]
    assert refused_after >= KEY_CACHE_TTL_SECONDS


def test_a_key_unknown_at_first_works_as_soon_as_it_is_stored(api_world: ApiWorld) -> None:
    # Given a key presented before its record is stored
    created = new_api_key("late", ["*"], [Scope.READ], datetime.now(UTC))
    key_id, secret = split_key(created.key)
    unknown = api_world.get("/v1/documents?limit=1", created.key)
    # When its record is stored, then it is presented, then with a wrong secret
    assert api_world.keys.create(created.record)
    accepted = api_world.get("/v1/documents?limit=1", created.key)
    wrong = api_world.get("/v1/documents?limit=1", f"csk_{key_id}_{'x' * len(secret)}")
    # Then it was refused while unknown, is accepted at once (an unknown key id is not cached),
    # and a wrong secret is refused although its record is cached
    assert unknown.status == 401
    assert accepted.status == 200, accepted.body
    assert wrong.status == 401
    assert secret.encode() not in wrong.body
