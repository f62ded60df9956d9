"""Signed requests without a server: the canonical request, the worked example, each refusal."""

from __future__ import annotations

import pytest

from cachesync.api.request_signing import (
    SignatureError,
    SignatureVerifier,
    canonical_request,
    sign_headers,
    signature,
    signing_secret,
)

MASTER = b"example-master-secret-0123456789abcdef"
NOW = 1_780_000_000
QUERY = [("status", "draft"), ("customer", "acme"), ("status", "approved"), ("limit", "10")]


class Nonces:
    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], int] = {}

    def remember(self, key_id: str, nonce: str, expires_at: int) -> bool:
        if (key_id, nonce) in self.seen:
            return False
        self.seen[(key_id, nonce)] = expires_at
        return True


def verifier(nonces: Nonces | None = None, now: float = NOW) -> SignatureVerifier:
    return SignatureVerifier(MASTER, nonces or Nonces(), clock=lambda: now)


def signed(
    method: str = "GET",
    path: str = "/v1/documents",
    query: list[tuple[str, str]] = QUERY,
    body: bytes = b"",
    *,
    key_id: str = "k7Hq2",
    timestamp: int = NOW,
    nonce: str = "3f2b8c1d9e7a4b6f",
) -> dict[str, str]:
    headers = sign_headers(
        signing_secret(MASTER, key_id), method, path, query, body, timestamp=timestamp, nonce=nonce
    )
    return {name.lower(): value for name, value in headers.items()}


def test_the_worked_example_of_docs_api_md() -> None:
    # Given the example request of docs/API.md
    canonical = canonical_request("GET", "/v1/documents", QUERY, str(NOW), "3f2b8c1d9e7a4b6f", b"")
    secret = signing_secret(MASTER, "k7Hq2")
    # When it is signed / Then the canonical text, secret and signature are the documented ones
    assert canonical == (
        "CACHESYNC-HMAC-SHA256\nGET\n/v1/documents\n"
        "customer=acme&limit=10&status=approved&status=draft\n1780000000\n3f2b8c1d9e7a4b6f\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert secret == "css_427eae70f6e9572ecdf965569825db77d139967c42459fff07399850dd053bc6"
    assert signature(secret, canonical) == (
        "v1=40793a969ad4773fa1d9fafa2a0fca1541758e4fce93f41c862b7b67d283a6a2"
    )


def test_paths_and_queries_are_compared_decoded() -> None:
    # Given one path and query written two ways a client may encode them
    one = canonical_request("PUT", "/v1/documents/a%20b+c.json", [("q", "x y")], "1", "n", b"")
    two = canonical_request("PUT", "/v1/documents/a b%2Bc.json", [("q", "x y")], "1", "n", b"")
    # When / Then they are one canonical request, "+" in a path staying a plus
    assert one == two
    assert "/v1/documents/a%20b%2Bc.json" in one


def test_a_signed_request_passes_once() -> None:
    # Given a verifier and a signed PUT
    nonces = Nonces()
    body = b'{"a": 1}'
    headers = signed("PUT", "/v1/documents/x.json", [], body)
    # When it is verified / Then it passes and its nonce is kept past the skew window
    verifier(nonces).verify("k7Hq2", "PUT", "/v1/documents/x.json", [], headers, body)
    assert nonces.seen[("k7Hq2", "3f2b8c1d9e7a4b6f")] == NOW + 600


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"key_id": "other"}, "does not match"),  # signed with another key's secret
        ({"body": b'{"a": 2}'}, "does not match"),  # body altered
        ({"query": [("status", "draft")]}, "does not match"),  # query altered
        ({"method": "DELETE"}, "does not match"),
        ({"timestamp": NOW - 301}, "more than 300 s"),
        ({"timestamp": NOW + 301}, "more than 300 s"),
        ({"nonce": "short"}, "16-64"),
    ],
)
def test_each_alteration_is_refused_with_its_reason(change: dict[str, object], reason: str) -> None:
    # Given a request signed as by the client, then changed (or signed wrongly)
    sent = {"method": "PUT", "query": [("x", "1")], "body": b'{"a": 1}'}
    signing = {
        "key_id": change.get("key_id", "k7Hq2"),
        "timestamp": change.get("timestamp", NOW),
        "nonce": change.get("nonce", "3f2b8c1d9e7a4b6f"),
    }
    headers = signed("PUT", "/v1/documents/x.json", [("x", "1")], b'{"a": 1}', **signing)  # type: ignore[arg-type]
    method = str(change.get("method", sent["method"]))
    query = change.get("query", sent["query"])
    body = change.get("body", sent["body"])
    # When it is verified / Then it is refused, saying which rule
    with pytest.raises(SignatureError, match=reason):
        verifier().verify("k7Hq2", method, "/v1/documents/x.json", query, headers, body)  # type: ignore[arg-type]


def test_a_replayed_nonce_is_refused() -> None:
    # Given a request that was verified once
    nonces = Nonces()
    headers = signed()
    verifier(nonces).verify("k7Hq2", "GET", "/v1/documents", QUERY, headers, b"")
    # When the same request comes again a minute later / Then it is a replay
    with pytest.raises(SignatureError, match="replayed"):
        verifier(nonces, now=NOW + 60).verify("k7Hq2", "GET", "/v1/documents", QUERY, headers, b"")


def test_an_unsigned_request_is_told_what_to_send() -> None:
    # Given / When a key that requires signing sends no signature / Then the headers are named
    with pytest.raises(SignatureError, match="X-Cachesync-Signature"):
        verifier().verify("k7Hq2", "GET", "/v1/documents", [], {}, b"")


def test_a_failed_verification_does_not_use_up_the_nonce() -> None:
    # Given a request with a wrong body
    nonces = Nonces()
    headers = signed("PUT", "/v1/documents/x.json", [], b"right")
    with pytest.raises(SignatureError):
        verifier(nonces).verify("k7Hq2", "PUT", "/v1/documents/x.json", [], headers, b"wrong")
    # When / Then its nonce was not recorded
    assert nonces.seen == {}
