"""The request guard over real HTTP: IP allowlists, signed requests, rate limits.

The module's server (127.0.0.1) plus, started together once: a twin on ``::1`` (the same
tables: allowlists over IPv6, and the limit shared by two processes), and two servers whose
usage table does not exist (the limiter's storage down), one failing open, one closed.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from cachesync.api.keys import Scope, split_key
from cachesync.api.request_signing import sign_headers
from cachesync.api_usage_schema import rate_counter_id
from tests.integration.api_http import (
    CLI,
    ApiWorld,
    Reply,
    api_world,
    change,
    has_ipv6_loopback,
    serving_all,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = ["api_world"]

RATE_HEADERS = ("ratelimit-policy", "x-ratelimit-limit")


@dataclass(frozen=True)
class Servers:
    ipv6: ApiWorld
    open_down: ApiWorld
    closed_down: ApiWorld


@pytest.fixture(scope="module")
def servers(api_world: ApiWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """The extra servers of the module (see the module's doc)."""
    # Checked on this machine: it listens on ::1. Elsewhere the IPv6 allowlist is covered by
    # tests/unit/test_request_guard.py (API Gateway events with an IPv6 sourceIp).
    assert has_ipv6_loopback(), "these tests need an IPv6 loopback (::1)"
    missing = {"CACHESYNC_API_USAGE_TABLE_NAME": "no-such-usage-table"}
    with serving_all(
        api_world,
        tmp_path_factory.mktemp("security"),
        [
            ({}, "::1"),
            ({**missing, "CACHESYNC_API_RATE_LIMIT_FAILURE_MODE": "open"}, ""),
            ({**missing, "CACHESYNC_API_RATE_LIMIT_FAILURE_MODE": "closed"}, ""),
        ],
    ) as (ipv6, open_down, closed_down):
        yield Servers(ipv6, open_down, closed_down)


def signed_get(
    world: ApiWorld,
    key: str,
    secret: str,
    path: str = "/v1/documents",
    query: list[tuple[str, str]] | None = None,
    *,
    sent_query: str | None = None,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> tuple[Reply, dict[str, str]]:
    """GET ``path`` signed with ``secret``; ``sent_query``: a query other than the signed one."""
    pairs = query if query is not None else [("limit", "1")]
    headers = sign_headers(
        secret,
        "GET",
        path,
        pairs,
        b"",
        timestamp=timestamp if timestamp is not None else int(time.time()),
        nonce=nonce or secrets.token_urlsafe(18),
    )
    text = sent_query if sent_query is not None else "&".join(f"{n}={v}" for n, v in pairs)
    return world.get(f"{path}?{text}", key, **headers), headers


# ---------------------------------------------------------------------- allowlists


def test_an_ipv4_allowlist_admits_its_network_and_x_forwarded_for_never_helps(
    api_world: ApiWorld,
) -> None:
    # Given a key pinned to loopback, and one pinned to a network the test does not call from
    inside = api_world.key(allowed_cidrs=["127.0.0.0/8"])
    elsewhere = api_world.key(allowed_cidrs=["10.0.0.0/8", "192.0.2.0/24"])
    # When each calls, the second also claiming an allowed address in X-Forwarded-For
    admitted = api_world.get("/v1/documents?limit=1", inside)
    refused = api_world.get("/v1/documents?limit=1", elsewhere)
    spoofed = api_world.get(
        "/v1/documents?limit=1",
        elsewhere,
        **{"X-Forwarded-For": "10.1.2.3", "X-Real-Ip": "10.1.2.3"},
    )
    # Then 200, then 403 problems naming the caller's address but not the allowlist
    assert admitted.status == 200
    assert refused.status == 403
    assert spoofed.status == 403
    detail = spoofed.json()["detail"]
    assert "127.0.0.1" in detail
    assert "10.0.0.0" not in detail
    assert "192.0.2" not in detail
    assert refused.headers["content-type"] == "application/problem+json"


def test_an_ipv6_allowlist_over_a_server_listening_on_ipv6_loopback(
    api_world: ApiWorld, servers: Servers
) -> None:
    # Given a key pinned to ::1, one to an IPv6 network elsewhere, one to IPv4 loopback
    on_loopback = api_world.key(allowed_cidrs=["::1/128"])
    elsewhere = api_world.key(allowed_cidrs=["2001:db8::/32"])
    ipv4_only = api_world.key(allowed_cidrs=["127.0.0.0/8"])
    # When each calls the server on ::1 (and the first also the one on 127.0.0.1)
    statuses = [
        servers.ipv6.get("/v1/documents?limit=1", key).status
        for key in (on_loopback, elsewhere, ipv4_only)
    ]
    over_ipv4 = api_world.get("/v1/documents?limit=1", on_loopback)
    # Then only the key pinned to ::1 is admitted over IPv6, and not over IPv4
    assert statuses == [200, 403, 403]
    assert over_ipv4.status == 403
    assert "::1" in servers.ipv6.get("/v1/documents?limit=1", elsewhere).json()["detail"]


# ---------------------------------------------------------------------- signatures


def test_signed_requests_valid_wrong_secret_altered_stale_replayed_or_unsigned(
    api_world: ApiWorld,
) -> None:
    # Given a key that requires signing, and its signing secret
    key = api_world.key(requires_signing=True)
    secret = api_world.signing_secret_of(key)
    # When it sends a valid request, then variations of it
    valid, headers = signed_get(api_world, key, secret)
    replayed = api_world.get("/v1/documents?limit=1", key, **headers)
    wrong_secret, _ = signed_get(api_world, key, "css_" + "0" * 64)
    altered_query, _ = signed_get(api_world, key, secret, sent_query="limit=2")
    stale, _ = signed_get(api_world, key, secret, timestamp=int(time.time()) - 301)
    unsigned = api_world.get("/v1/documents?limit=1", key)
    # Then only the valid one passes; each refusal is a 401 saying why
    assert valid.status == 200, valid.body
    refusals = {
        "replayed": (replayed, "already used"),
        "wrong secret": (wrong_secret, "does not match"),
        "altered query": (altered_query, "does not match"),
        "stale": (stale, "300 s"),
        "unsigned": (unsigned, "requires signed requests"),
    }
    for name, (reply, reason) in refusals.items():
        assert reply.status == 401, name
        assert reason in reply.json()["detail"], name


def test_a_signed_write_covers_the_body_and_the_path_as_sent(api_world: ApiWorld) -> None:
    # Given a writing key that requires signing, and a document at a key that needs escapes
    key = api_world.key(scopes=(Scope.READ, Scope.WRITE), requires_signing=True)
    secret = api_world.signing_secret_of(key)
    # %2F: a path API Gateway or gunicorn decode to another canonical path than the one sent.
    path = "/v1/documents/signed/a%2Fb%20c%2Bd.json"
    body = json.dumps(change("SIGNED-1", modified=datetime.now(UTC))).encode()
    altered = json.dumps(change("SIGNED-2", modified=datetime.now(UTC))).encode()

    def put(sent: bytes, signed_body: bytes) -> Reply:
        headers = sign_headers(
            secret,
            "PUT",
            path,
            [],
            signed_body,
            timestamp=int(time.time()),
            nonce=secrets.token_urlsafe(18),
        )
        return api_world.request(
            "PUT",
            path,
            key=key,
            body=sent,
            headers={**headers, "Content-Type": "application/json"},
        )

    # When the body sent is not the one signed, then when it is
    tampered = put(altered, body)
    honest = put(body, body)
    # Then the first is refused (nothing written), the second written at the decoded key
    assert tampered.status == 401
    assert honest.status == 200, honest.body
    assert honest.json()["key"] == "signed/a/b c+d.json"


def test_keys_create_sets_the_options_and_prints_the_signing_secret_once(
    api_world: ApiWorld,
) -> None:
    # Given the command line with the server's environment (its token secret included)
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CLI, "keys", *args],
            env=api_world.environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    # When a key is created with every option, and one with a wrong network
    created = cli(
        "create",
        "--name",
        "guarded",
        "--customers",
        "*",
        "--allow-cidr",
        "127.0.0.0/8",
        "--allow-cidr",
        "::1/128",
        "--require-signing",
        "--rate-per-minute",
        "120",
        "--burst",
        "7",
        "--json",
    )
    wrong = cli("create", "--name", "bad", "--customers", "*", "--allow-cidr", "10.1.2.3/8")
    assert created.returncode == 0, created.stderr
    shown = json.loads(created.stdout)
    listed = {entry["key_id"]: entry for entry in json.loads(cli("list", "--json").stdout)}
    text_list = cli("list").stdout
    # Then the key holds its options, its signing secret is the server's, and works
    assert shown["signing_secret"] == api_world.signing_secret_of(shown["key"])
    entry = listed[shown["key_id"]]
    assert entry["allowed_cidrs"] == ["127.0.0.0/8", "::1/128"]
    assert (entry["requires_signing"], entry["rate_per_minute"], entry["rate_burst"]) == (
        True,
        120,
        7,
    )
    assert "signing_secret" not in entry
    assert "signed" in next(line for line in text_list.splitlines() if shown["key_id"] in line)
    reply, _ = signed_get(api_world, shown["key"], shown["signing_secret"])
    assert reply.status == 200
    assert reply.headers["x-ratelimit-limit"] == "120"
    # and a rotation prints the key's new signing secret, the one the server now derives
    rotated = cli("rotate", shown["key_id"], "--grace", "1h", "--json")
    assert rotated.returncode == 0, rotated.stderr
    renewed = json.loads(rotated.stdout)
    assert renewed["signing_secret"] == api_world.signing_secret_of(renewed["key"])
    assert renewed["signing_secret"] != shown["signing_secret"]
    # and a wrong network is one clear line, exit status 2, no key created
    assert wrong.returncode == 2
    assert "10.1.2.3/8" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_a_rotation_gives_a_new_signing_secret_and_the_old_one_lasts_the_grace(
    api_world: ApiWorld,
) -> None:
    # Given a signing key, rotated over the API with a 2 s grace
    key = api_world.key(requires_signing=True)
    old_secret = api_world.signing_secret_of(key)
    admin = api_world.key(scopes=(Scope.ADMIN,))
    key_id, _ = split_key(key)
    rotated = api_world.request("POST", f"/v1/api-keys/{key_id}/rotate?grace_seconds=2", key=admin)
    new_key, new_secret = rotated.json()["key"], rotated.json()["signing_secret"]
    # When the new key signs with either secret within the grace, then with the old after it
    within = [signed_get(api_world, new_key, s)[0].status for s in (new_secret, old_secret)]
    old_pair = signed_get(api_world, key, old_secret)[0].status
    time.sleep(2.5)
    after_old = signed_get(api_world, new_key, old_secret)[0]
    after_new = signed_get(api_world, new_key, new_secret)[0]
    # Then both worked within it; after it only the new one does
    assert rotated.status == 200, rotated.body
    assert new_secret != old_secret
    assert new_secret == api_world.signing_secret_of(new_key)
    assert within == [200, 200]
    assert old_pair == 200
    assert after_old.status == 401
    assert after_new.status == 200


# ---------------------------------------------------------------------- rate limits


def test_a_limit_holds_in_total_across_two_server_processes(
    api_world: ApiWorld, servers: Servers
) -> None:
    # Given a key limited to 20 requests a minute, well inside one calendar minute
    key = api_world.key(rate_per_minute=20)
    _wait_for_minute_room(seconds=20)
    # When 30 requests alternate between the server on 127.0.0.1 and its twin on ::1
    replies = [
        (api_world if n % 2 == 0 else servers.ipv6).get("/v1/documents?limit=1", key)
        for n in range(30)
    ]
    # Then exactly 20 were admitted, the first 20, by both servers (leases strand nothing
    # when both keep being called), each answer saying what was left as its server knows it:
    # falling at each of its answers, within the limit (docs/API.md: approximate across
    # servers)
    refused = [r for r in replies if r.status == 429]
    assert [r.status for r in replies] == [200] * 20 + [429] * 10
    for server in (0, 1):
        left = [int(r.headers["x-ratelimit-remaining"]) for r in replies[server:20:2]]
        assert left == sorted(set(left), reverse=True), left
        assert all(0 <= n < 20 for n in left)
    assert all(r.headers["x-ratelimit-limit"] == "20" for r in replies)
    # And a 429 is a problem with Retry-After (seconds to the minute's end) and the headers
    problem = refused[0]
    assert problem.headers["content-type"] == "application/problem+json"
    assert problem.json()["type"] == "urn:cachesync:problem:rate-limited"
    assert 1 <= int(problem.headers["retry-after"]) <= 60
    assert problem.headers["x-ratelimit-remaining"] == "0"
    assert problem.headers["ratelimit"].startswith('"default";r=0;t=')


def test_two_servers_under_concurrent_load_admit_exactly_the_limit_from_few_writes(
    api_world: ApiWorld, servers: Servers, dynamodb_client: DynamoDBClient
) -> None:
    # Given a key limited to 200 requests a minute, well inside one calendar minute
    key = api_world.key(rate_per_minute=200, rate_burst=1000)
    _wait_for_minute_room(seconds=30)
    minute = int(time.time()) // 60
    # When 150 requests go to each server at once, 4 at a time per server
    targets = [api_world, servers.ipv6] * 150
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(
            pool.map(lambda world: world.get("/v1/documents?limit=1", key).status, targets)
        )
    # Then exactly 200 were admitted in total, by both servers, the rest refused
    assert statuses.count(200) == 200
    assert statuses.count(429) == 100
    assert 200 in statuses[0::2]
    assert 200 in statuses[1::2]
    # And the shared counter holds exactly the limit, reserved in far fewer writes than
    # requests (leases: each server reserves several at a time)
    item = dynamodb_client.get_item(
        TableName=api_world.environment["CACHESYNC_API_USAGE_TABLE_NAME"],
        Key={"counter_id": {"S": rate_counter_id(api_world.created_keys[key], minute)}},
        ConsistentRead=True,
    )["Item"]
    assert item["n"]["N"] == "200"
    assert int(item["l"]["N"]) < 100


def test_every_answer_of_a_keyed_route_carries_the_limit(api_world: ApiWorld) -> None:
    # Given a reading key with its own limit
    key = api_world.key(rate_per_minute=1000)
    # When it gets a 200, a 404, a 400 and a 403 (a write: no scope), and a bad key a 401
    replies = {
        200: api_world.get("/v1/documents?limit=1", key),
        404: api_world.get("/v1/documents/no/such.json", key),
        400: api_world.get("/v1/documents?limit=0", key),
        403: api_world.request("DELETE", "/v1/documents/a.json", key=key),
    }
    unauthenticated = api_world.get("/v1/documents?limit=1", "csk_000000000000_nope")
    # Then each of the four carries the limit headers (the 403 too: limits come before scopes)
    for status, reply in replies.items():
        assert reply.status == status, reply.body
        assert reply.headers["x-ratelimit-limit"] == "1000"
        assert reply.headers["ratelimit-policy"].startswith('"default";q=1000;w=60')
        assert int(reply.headers["x-ratelimit-remaining"]) < 1000
        assert int(reply.headers["x-ratelimit-reset"]) % 60 == 0
    # And a request whose key is not known evaluated no limit: none is announced
    assert unauthenticated.status == 401
    assert not any(name in unauthenticated.headers for name in RATE_HEADERS)


def test_the_limiters_storage_down_fails_open_or_closed_as_configured(
    api_world: ApiWorld, servers: Servers
) -> None:
    # Given two servers whose usage table does not exist: one failing open, one closed
    key = api_world.key()
    # When the key calls each
    served = servers.open_down.get("/v1/documents?limit=1", key)
    refused = servers.closed_down.get("/v1/documents?limit=1", key)
    # Then open: served, announcing the policy but no count it could not make
    assert served.status == 200
    assert served.headers["x-ratelimit-limit"] == "60000"
    assert "x-ratelimit-remaining" not in served.headers
    # and closed: a 503 problem saying the limiter is down
    assert refused.status == 503
    assert refused.json()["type"] == "urn:cachesync:problem:rate-limiter-unavailable"
    assert refused.headers["retry-after"] == "1"


def _wait_for_minute_room(seconds: int) -> None:
    """Sleep into the next calendar minute if fewer than ``seconds`` are left in this one (the
    limit is per calendar minute: a burst across its end would count in two)."""
    left = 60 - time.time() % 60
    if left < seconds:
        time.sleep(left + 0.2)
