"""Signed page tokens: bound to the caller's key and an expiry, refused when altered."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from cachesync.api.tokens import SigningSealer
from cachesync.exceptions import ConfigurationError, InvalidQueryError
from cachesync.index_models import IndexQuery
from cachesync.stores.page_tokens import PageCursor, PageTokens, query_fingerprint

SECRET = b"s" * 32
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CURSOR = PageCursor(
    fingerprint=query_fingerprint(IndexQuery(customer="acme")),
    position=1,
    lanes=({"pk": "docs/a.json", "sk": "doc"},),
    window=("2026-01-01T00:00:00.000000Z", "2026-02-01T00:00:00.000000Z"),
)


def tokens(key_id: str = "k1", at: datetime = NOW, secret: bytes = SECRET) -> PageTokens:
    return PageTokens(SigningSealer(secret, key_id, lifetime=timedelta(hours=1), clock=lambda: at))


def test_a_signed_token_opens_for_its_key_within_its_lifetime() -> None:
    # Given a token issued to key k1
    token = tokens().issue(CURSOR)
    # When k1 opens it 59 minutes later / Then it is the cursor
    assert tokens(at=NOW + timedelta(minutes=59)).open(token, CURSOR.fingerprint) == CURSOR


@pytest.mark.parametrize(
    ("opener", "reason"),
    [
        (tokens(key_id="k2"), "another API key"),
        (tokens(at=NOW + timedelta(hours=1)), "expired"),
        (tokens(secret=b"t" * 32), "altered"),
    ],
)
def test_a_token_is_refused_by_another_key_after_expiry_or_under_another_secret(
    opener: PageTokens, reason: str
) -> None:
    # Given a token issued to k1
    token = tokens().issue(CURSOR)
    # When another key, a later time or another secret opens it / Then it says why
    with pytest.raises(InvalidQueryError, match=reason):
        opener.open(token, CURSOR.fingerprint)


def test_a_token_is_refused_for_another_query() -> None:
    # Given / When a token is opened by another query / Then it is refused
    token = tokens().issue(CURSOR)
    with pytest.raises(InvalidQueryError, match="another query"):
        tokens().open(token, query_fingerprint(IndexQuery(customer="globex")))


def test_every_single_byte_change_is_refused() -> None:
    # Given a token's bytes
    raw = base64.urlsafe_b64decode(tokens().issue(CURSOR))
    # When any one byte is changed / Then the token is refused
    for position in range(len(raw)):
        changed = bytearray(raw)
        changed[position] ^= 0x20
        token = base64.urlsafe_b64encode(bytes(changed)).decode()
        with pytest.raises(InvalidQueryError):
            tokens().open(token, CURSOR.fingerprint)


def test_a_token_is_readable_but_names_its_key_and_expiry() -> None:
    # Given / When a token is issued
    raw = base64.urlsafe_b64decode(tokens().issue(CURSOR))
    # Then past the 32-byte MAC, the envelope names the key and the expiry
    assert b'"a":"k1"' in raw[32:]
    assert f'"e":{int((NOW + timedelta(hours=1)).timestamp())}'.encode() in raw[32:]


def test_a_short_secret_is_a_configuration_error() -> None:
    # Given / When / Then a secret under 32 bytes is refused
    with pytest.raises(ConfigurationError, match="CACHESYNC_API_TOKEN_SECRET"):
        SigningSealer(b"short", "k1", lifetime=timedelta(hours=1))
