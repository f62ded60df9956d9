"""The request guard through the resolver, with API Gateway events and no network.

The stores behind the routes are absent: a request the guard admits goes on to fail the route's
validation (``limit=0``: 400), one it refuses gets its 401/403/429/503 first. So "400" below
means "admitted by the guard".
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from cachesync.api.app import ApiDependencies, create_app
from cachesync.api.keys import (
    ApiKeyRecord,
    Scope,
    address_allowed,
    new_api_key,
    parse_cidrs,
    rotated_api_key,
)
from cachesync.api.request_guard import RAW_PATH_CONTEXT_FIELD, RequestFacts, RequestGuard
from cachesync.api.request_limits import FailureMode, LimitPolicy, RequestLimiter
from cachesync.api.request_signing import (
    SignatureVerifier,
    sign_headers,
    signing_master_secret,
    signing_secret,
)
from cachesync.exceptions import InvalidRequestError, UsageStoreError
from cachesync.local.lambda_functions import LocalLambdaContext
from cachesync.stores.dynamodb_api_usage import RateCount

TOKEN_SECRET = b"t" * 40
MASTER = signing_master_secret(TOKEN_SECRET)
# Now: key verification reads the real clock (a rotation's grace is checked against it).
NOW = int(time.time())
ABSENT: Any = None  # a store the requests below must never reach


class Keys:
    """The key store: records by key id."""

    def __init__(self) -> None:
        self.records: dict[str, ApiKeyRecord] = {}

    def add(self, **options: Any) -> tuple[str, ApiKeyRecord]:
        scopes = options.pop("scopes", (Scope.READ,))
        created = new_api_key("t", ["*"], scopes, datetime.now(UTC), **options)
        self.records[created.record.key_id] = created.record
        return created.key, created.record

    def get(self, key_id: str) -> ApiKeyRecord | None:
        return self.records.get(key_id)


class Usage:
    """Counters and nonces in memory; ``down``: every call fails as the table would."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}
        self.nonces: set[tuple[str, str]] = set()
        self.down = False
        self.calls = 0

    def lease(
        self,
        key_id: str,
        epoch_second: int,
        *,
        minute_tokens: int,
        second_tokens: int,  # noqa: ARG002 (the burst is not what these tests are about)
        per_minute: int,
        per_second: int,  # noqa: ARG002
    ) -> RateCount:
        self.calls += 1
        if self.down:
            raise UsageStoreError("UpdateItem", "ResourceNotFoundException", "no table")
        minute = (key_id, epoch_second // 60)
        if self.counts.get(minute, 0) + minute_tokens > per_minute:
            return RateCount(admitted=False, minute_count=self.counts[minute], second_count=0)
        self.counts[minute] = self.counts.get(minute, 0) + minute_tokens
        return RateCount(admitted=True, minute_count=self.counts[minute], second_count=1)

    def remember(self, key_id: str, nonce: str, expires_at: int) -> bool:  # noqa: ARG002
        if self.down:
            raise UsageStoreError("PutItem", "ResourceNotFoundException", "no table")
        if (key_id, nonce) in self.nonces:
            return False
        self.nonces.add((key_id, nonce))
        return True


class World:
    def __init__(
        self, mode: FailureMode = FailureMode.OPEN, *, now: float = NOW, limits: bool = True
    ) -> None:
        self.keys = Keys()
        self.usage = Usage()
        self.now = now
        guard = RequestGuard(
            signatures=SignatureVerifier(MASTER, self.usage, clock=lambda: self.now),
            limiter=(
                RequestLimiter(self.usage, failure_mode=mode, clock=lambda: self.now)
                if limits
                else None
            ),
            default_limits=LimitPolicy(per_minute=100, burst=10),
            clock=lambda: datetime.fromtimestamp(self.now, UTC),
        )
        self.app = create_app(
            ApiDependencies(
                index_store_for=cast(Any, ABSENT),
                bucket="docs",
                reader=ABSENT,
                writer=ABSENT,
                keys=cast(Any, self.keys),
                token_secret=TOKEN_SECRET,
                token_lifetime=timedelta(hours=1),
                retention=timedelta(days=90),
                version="1.2.3",
                guard=guard,
            )
        )

    def call(
        self,
        key: str,
        *,
        source_ip: str = "192.0.2.10",
        headers: dict[str, str] | None = None,
        query: dict[str, list[str]] | None = None,
        http_api_ip: bool = False,
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """GET /v1/documents (``limit=0`` unless ``query``): 400 once admitted."""
        params = query if query is not None else {"limit": ["0"]}
        context: dict[str, Any] = {"stage": "prod", "requestId": "r"}
        if http_api_ip:
            context["http"] = {"sourceIp": source_ip}
        else:
            context["identity"] = {"sourceIp": source_ip}
        sent = {"Authorization": f"Bearer {key}", **(headers or {})}
        event = {
            "resource": "/v1/documents",
            "path": "/v1/documents",
            "httpMethod": "GET",
            "headers": sent,
            "multiValueHeaders": {name: [value] for name, value in sent.items()},
            "queryStringParameters": {k: v[-1] for k, v in params.items()} or None,
            "multiValueQueryStringParameters": params or None,
            "requestContext": context,
            "body": None,
            "isBase64Encoded": False,
        }
        result = self.app.resolve(event, cast(Any, LocalLambdaContext(function_name="q")))
        flat = {name: values[-1] for name, values in result["multiValueHeaders"].items()}
        flat.update(result.get("headers") or {})
        return result["statusCode"], flat, json.loads(result["body"])


def signed_headers(
    secret: str, query: list[tuple[str, str]], *, timestamp: int = NOW, nonce: str = "n" * 16
) -> dict[str, str]:
    return sign_headers(
        secret, "GET", "/v1/documents", query, b"", timestamp=timestamp, nonce=nonce
    )


# ---------------------------------------------------------------------- allowlists


@pytest.mark.parametrize(
    ("cidrs", "address", "allowed"),
    [
        ((), "203.0.113.9", True),
        (("10.0.0.0/8",), "10.20.30.40", True),
        (("10.0.0.0/8",), "11.0.0.1", False),
        (("2001:db8::/32",), "2001:db8:0:1::5", True),
        (("2001:db8::/32",), "2001:db9::5", False),
        (("10.0.0.0/8",), "::ffff:10.1.1.1", True),  # IPv4 seen through an IPv6 socket
        (("2001:db8::/32",), "10.1.1.1", False),
        (("10.0.0.0/8",), "not-an-address", False),
        (("10.0.0.0/8",), None, False),
    ],
)
def test_an_allowlist_admits_exactly_its_networks(
    cidrs: tuple[str, ...], address: str | None, allowed: bool
) -> None:
    # Given a key pinned to cidrs
    record = new_api_key("t", ["*"], [Scope.READ], datetime.now(UTC), allowed_cidrs=cidrs).record
    # When / Then the address is admitted or not
    assert address_allowed(record, address) is allowed


def test_cidrs_are_normalised_and_a_wrong_one_is_named() -> None:
    # Given / When / Then networks come out in normal form, each once
    assert parse_cidrs(["10.0.0.0/8", "2001:DB8::/32", "10.0.0.0/8"]) == (
        "10.0.0.0/8",
        "2001:db8::/32",
    )
    # And a host address with a prefix, or text, is refused by name
    for wrong in ("10.1.2.3/8", "banana"):
        with pytest.raises(InvalidRequestError, match=wrong.replace(".", r"\.")):
            parse_cidrs([wrong])


def test_an_ipv6_caller_inside_the_allowlist_is_admitted_outside_refused() -> None:
    # Given a key pinned to an IPv6 network
    world = World()
    key, _ = world.keys.add(allowed_cidrs=["2001:db8::/32"])
    # When it calls from inside, then from outside, through API Gateway's identity.sourceIp
    inside, _, _ = world.call(key, source_ip="2001:db8::1")
    outside, _, problem = world.call(key, source_ip="2001:db9::1")
    # Then admitted (400: on to validation), then 403 naming the caller's address only
    assert inside == 400
    assert outside == 403
    assert "2001:db9::1" in problem["detail"]
    assert "2001:db8::" not in problem["detail"]


def test_the_http_api_source_ip_is_read_too_and_x_forwarded_for_never() -> None:
    # Given a key pinned to 10.0.0.0/8
    world = World()
    key, _ = world.keys.add(allowed_cidrs=["10.0.0.0/8"])
    # When the caller's address comes as requestContext.http.sourceIp
    via_http, _, _ = world.call(key, source_ip="10.9.9.9", http_api_ip=True)
    # And when an outside caller claims an inside address in X-Forwarded-For
    spoofed, _, _ = world.call(
        key, source_ip="198.51.100.7", headers={"X-Forwarded-For": "10.0.0.1"}
    )
    # Then the first is admitted, the second refused
    assert via_http == 400
    assert spoofed == 403


# ---------------------------------------------------------------------- signatures


def test_a_signing_key_refuses_unsigned_and_wrongly_signed_requests() -> None:
    # Given a key that requires signing
    world = World()
    key, record = world.keys.add(requires_signing=True)
    query = [("limit", "0")]
    right = signing_secret(MASTER, record.key_id, record.salt)
    # When it calls unsigned, signed with another secret, and signed right
    unsigned, _, problem = world.call(key)
    wrong, _, _ = world.call(key, headers=signed_headers("css_other", query))
    good, _, _ = world.call(key, headers=signed_headers(right, query, nonce="m" * 16))
    # Then 401, 401, admitted; refused ones spent nothing of the key's limit
    assert (unsigned, wrong, good) == (401, 401, 400)
    assert "requires signed requests" in problem["detail"]
    assert world.usage.calls == 1


def test_a_key_without_signing_verifies_a_signature_it_is_sent() -> None:
    # Given a key that does not require signing
    world = World()
    key, _ = world.keys.add()
    # When it sends a wrong signature / Then it is refused, not ignored
    status, _, _ = world.call(key, headers=signed_headers("css_wrong", [("limit", "0")]))
    assert status == 401


def test_a_rotation_changes_the_signing_secret_and_the_old_one_lasts_the_grace() -> None:
    # Given a signing key rotated with a one-hour grace
    world = World()
    key, record = world.keys.add(requires_signing=True)
    old = signing_secret(MASTER, record.key_id, record.salt)
    rotated = rotated_api_key(record, datetime.fromtimestamp(NOW, UTC), timedelta(hours=1))
    world.keys.records[record.key_id] = rotated.record
    new = signing_secret(MASTER, record.key_id, rotated.record.salt)
    query = [("limit", "0")]
    # When the new key signs with the new secret, and the old with the old, inside the grace
    assert new != old
    with_new, _, _ = world.call(rotated.key, headers=signed_headers(new, query, nonce="a" * 16))
    with_old, _, _ = world.call(key, headers=signed_headers(old, query, nonce="b" * 16))
    # And after the grace, the old signing secret with the new key
    world.now = NOW + 2 * 3600
    late, _, problem = world.call(
        rotated.key, headers=signed_headers(old, query, timestamp=NOW + 7200, nonce="c" * 16)
    )
    # Then both are admitted inside the grace, the old secret refused after it
    assert (with_new, with_old) == (400, 400)
    assert late == 401
    assert "does not match" in problem["detail"]


def test_a_signed_body_is_read_from_base64_when_the_event_says_so() -> None:
    # Given an event whose body is base64-encoded
    raw = b"\xff\x00binary"
    event = {
        "httpMethod": "PUT",
        "path": "/v1/documents/a%2Fb.json",
        "requestContext": {RAW_PATH_CONTEXT_FIELD: "/v1/documents/a%2Fb.json"},
        "body": base64.b64encode(raw).decode(),
        "isBase64Encoded": True,
        "headers": {"X-Cachesync-Nonce": "n"},
        "multiValueQueryStringParameters": {"a": ["1", "2"]},
    }
    # When its facts are read
    facts = RequestFacts.of(event)
    # Then the body is the bytes sent, the path as sent, headers lower-cased, every query pair
    assert facts.body == raw
    assert facts.path == "/v1/documents/a%2Fb.json"
    assert facts.headers == {"x-cachesync-nonce": "n"}
    assert facts.query == (("a", "1"), ("a", "2"))


# ---------------------------------------------------------------------- limits


def test_every_answer_of_an_evaluated_limit_carries_the_headers_and_429_says_when() -> None:
    # Given a key limited to 2 requests a minute, and a key without the scope
    world = World()
    key, _ = world.keys.add(rate_per_minute=2)
    writer_only, _ = world.keys.add(scopes=(Scope.WRITE,))
    # When it calls three times
    first = world.call(key)
    second = world.call(key)
    third = world.call(key)
    lacking = world.call(writer_only)
    # Then the two admitted answers (400s) and the 429 carry the limit and what is left
    assert (first[0], second[0], third[0]) == (400, 400, 429)
    assert [r[1]["X-RateLimit-Remaining"] for r in (first, second, third)] == ["1", "0", "0"]
    assert all(r[1]["X-RateLimit-Limit"] == "2" for r in (first, second, third))
    assert third[1]["Retry-After"] == str(60 - NOW % 60)
    assert third[2]["type"] == "urn:cachesync:problem:rate-limited"
    # And a 403 for a missing scope comes after the limit: it carries the headers too
    assert lacking[0] == 403
    assert lacking[1]["X-RateLimit-Limit"] == "100"


@pytest.mark.parametrize("mode", list(FailureMode))
def test_counters_down_fail_open_or_closed(mode: FailureMode) -> None:
    # Given a limiter whose counters are down
    world = World(mode)
    world.usage.down = True
    key, _ = world.keys.add()
    # When the key calls
    status, headers, problem = world.call(key)
    # Then open: admitted, with the policy but no Remaining; closed: a 503 problem
    if mode is FailureMode.OPEN:
        assert status == 400
        assert headers["X-RateLimit-Limit"] == "100"
        assert "X-RateLimit-Remaining" not in headers
    else:
        assert status == 503
        assert problem["type"] == "urn:cachesync:problem:rate-limiter-unavailable"
        assert headers["Retry-After"] == "1"


def test_with_limits_off_no_counter_is_touched_and_no_limit_announced() -> None:
    # Given rate limits turned off
    world = World(limits=False)
    key, _ = world.keys.add(rate_per_minute=1)
    # When the key calls twice over its own limit
    replies = [world.call(key) for _ in range(2)]
    # Then both are admitted, without a rate-limit header, and no counter was written
    assert [status for status, _, _ in replies] == [400, 400]
    assert not any("X-RateLimit-Limit" in headers for _, headers, _ in replies)
    assert world.usage.calls == 0


def test_a_query_without_its_multi_value_form_is_still_signed_in_full() -> None:
    # Given an event carrying only queryStringParameters
    event = {"path": "/v1/documents", "queryStringParameters": {"limit": "5", "kind": "change"}}
    # When its facts are read / Then every pair is there
    assert sorted(RequestFacts.of(event).query) == [("kind", "change"), ("limit", "5")]


def test_a_signed_request_is_refused_when_its_nonce_cannot_be_recorded() -> None:
    # Given a limiter failing open, and a usage table that is down
    world = World(FailureMode.OPEN)
    key, record = world.keys.add(requires_signing=True)
    world.usage.down = True
    secret = signing_secret(MASTER, record.key_id, record.salt)
    # When a correctly signed request comes
    status, headers, problem = world.call(key, headers=signed_headers(secret, [("limit", "0")]))
    # Then 503: replay protection cannot be given, whatever the limiter's failure mode
    assert status == 503
    assert problem["type"] == "urn:cachesync:problem:unavailable"
    assert headers["Retry-After"] == "1"
