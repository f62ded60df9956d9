"""Signed requests without a server: the canonical request, the worked example, each refusal."""

from __future__ import annotations

import re
from pathlib import Path

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


# Shared with clients/typescript/test/unit.test.ts: both must compute these bytes.
VECTOR_CANONICAL = (
    "CACHESYNC-HMAC-SHA256\nGET\n/v1/documents/caf%C3%A9/a~b%2Ac.json\n"
    "a%20b=1&name=~%2A%C3%A9&q=x%20y%2Bz\n1780000000\nvector-nonce-0001\n"
    "3c48591d8d098a4538f5e013dfcf406e948eac4d3277b10bf614e295d6068179"
)
VECTOR_SIGNATURE = "v1=2a31973549c31cf92172c195a4ff16d3a4175fab53512421af2a1e5cc2f0a4b8"


def test_the_shared_vector_of_awkward_characters() -> None:
    # Given a path with UTF-8 and "~*", a query with spaces, "+", "~", "*" and UTF-8, a UTF-8 body
    canonical = canonical_request(
        "GET",
        "/v1/documents/caf%C3%A9/a~b*c.json",
        [("q", "x y+z"), ("name", "~*é"), ("a b", "1")],
        "1780000000",
        "vector-nonce-0001",
        "héllo".encode(),
    )
    # When / Then the canonical bytes and signature are the ones the TypeScript client computes
    assert canonical == VECTOR_CANONICAL
    assert signature("css_vector", canonical) == VECTOR_SIGNATURE


@pytest.mark.parametrize("timestamp", ["²", "1" * 5000, "-5", " 1780000000"])
def test_a_timestamp_that_is_not_plain_seconds_is_a_401_reason_not_a_crash(timestamp: str) -> None:
    # Given a signed request whose timestamp header is not ASCII digits (or absurdly long)
    headers = signed() | {"x-cachesync-timestamp": timestamp}
    # When / Then it is refused as a signature error (a 401), not a ValueError (a 500)
    with pytest.raises(SignatureError, match="Unix seconds"):
        verifier().verify("k7Hq2", "GET", "/v1/documents", QUERY, headers, b"")


def test_a_percent_that_starts_no_escape_is_refused() -> None:
    # Given a raw path with a "%" that is not an escape (clients would decode it differently)
    headers = signed(path="/v1/documents/100%zz.json", query=[])
    # When / Then it is refused, saying why
    with pytest.raises(SignatureError, match="starts no escape"):
        verifier().verify("k7Hq2", "GET", "/v1/documents/100%zz.json", [], headers, b"")


def test_the_worked_example_printed_in_docs_api_md_is_right() -> None:
    # Given the worked example as docs/API.md prints it: secret, canonical text, signature
    page = (Path(__file__).parents[2] / "docs" / "API.md").read_text(encoding="utf-8")
    example = page[page.index("Worked example") :]
    secret = re.search(r"signing secret\s+`(css_[0-9a-f]{64})`", example)
    block = re.search(r"```\n(CACHESYNC-HMAC-SHA256\n.*?)\n```", example, re.DOTALL)
    printed = re.search(r"`X-Cachesync-Signature: (v1=[0-9a-f]{64})`", example)
    assert secret is not None
    assert block is not None
    assert printed is not None
    # When the example request is made canonical and signed here
    canonical = canonical_request("GET", "/v1/documents", QUERY, str(NOW), "3f2b8c1d9e7a4b6f", b"")
    # Then the page shows exactly that text and that signature
    assert block.group(1) == canonical
    assert signature(secret.group(1), canonical) == printed.group(1)
