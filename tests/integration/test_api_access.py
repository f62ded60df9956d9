"""Query API over HTTP: API keys, scopes, tenancy, signed page tokens, OpenAPI and docs."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from openapi_spec_validator import validate

from cachesync.api.keys import Scope, rotated_api_key, split_key
from cachesync.api.tokens import SigningSealer
from cachesync.index_models import IndexQuery
from cachesync.stores.page_tokens import PageTokens, query_fingerprint
from tests.integration.api_http import (
    CLI,
    TOKEN_SECRET,
    ApiWorld,
    api_world,
    change,
    index_document,
)

__all__ = ["api_world"]

WHEN = datetime(2026, 6, 1, tzinfo=UTC)
WINDOW = "since=2026-01-01&until=2027-01-01"


@pytest.fixture(scope="module")
def tenants(api_world: ApiWorld) -> dict[str, str]:
    """One document per customer set, by name."""
    documents = {
        "acme": ("acme",),
        "globex": ("globex",),
        "both": ("acme", "globex"),
        "initech": ("initech",),
    }
    keys = {}
    for number, (name, customers) in enumerate(documents.items()):
        key = f"tenancy/{name}.json"
        index_document(
            api_world,
            key,
            change(f"T-{name}", customers=customers, modified=WHEN + timedelta(hours=number)),
        )
        keys[name] = key
    return keys


def query_keys(world: ApiWorld, key: str, params: str = "") -> list[str]:
    reply = world.get(f"/v1/documents?{WINDOW}&limit=100{params}", key)
    assert reply.status == 200, reply.body
    return sorted(
        item["key"] for item in reply.json()["items"] if item["key"].startswith("tenancy/")
    )


# ---------------------------------------------------------------------- authentication


def test_a_missing_unknown_malformed_or_revoked_key_is_a_401_problem(api_world: ApiWorld) -> None:
    # Given a valid key, then revoked
    revoked = api_world.key()
    key_id, secret = split_key(revoked)
    api_world.keys.revoke(key_id, datetime.now(UTC))
    unknown = f"csk_{'0' * 12}_{secret}"
    wrong_secret = f"csk_{key_id}_{'x' * len(secret)}"
    # When the documents are queried without a key and with each bad key
    replies = [
        api_world.get("/v1/documents"),
        api_world.get("/v1/documents", unknown),
        api_world.get("/v1/documents", wrong_secret),
        api_world.get("/v1/documents", "not-a-key"),
        api_world.get("/v1/documents", revoked),
        api_world.get("/v1/documents", Authorization=f"Basic {revoked}"),
    ]
    # Then each is a 401 problem with a challenge, and no reply repeats the key
    for reply in replies:
        assert reply.status == 401, reply.body
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.headers["www-authenticate"].startswith("Bearer")
        assert reply.json()["type"] == "urn:cachesync:problem:unauthorized"
        assert secret.encode() not in reply.body
    assert "revoked" in replies[4].json()["detail"]


def test_a_key_is_accepted_as_bearer_or_x_api_key(api_world: ApiWorld) -> None:
    # Given a reader key
    key = api_world.key()
    # When it is sent either way / Then both are accepted, and the answer is not cacheable
    bearer = api_world.get("/v1/documents?limit=1", key)
    header = api_world.get("/v1/documents?limit=1", **{"X-Api-Key": key})
    assert bearer.status == 200
    assert header.status == 200
    assert bearer.headers["cache-control"] == "no-store"


def test_scopes_gate_reads_and_writes(api_world: ApiWorld) -> None:
    # Given a read-only key and a write-only key
    reader = api_world.key(scopes=(Scope.READ,))
    writer = api_world.key(scopes=(Scope.WRITE,))
    body = change("SCOPE", modified=WHEN)
    # When each does what it may not
    put = api_world.request("PUT", "/v1/documents/scope/a.json", key=reader, body=body)
    delete = api_world.request("DELETE", "/v1/documents/scope/a.json", key=reader)
    query = api_world.get("/v1/documents", writer)
    get = api_world.get("/v1/documents/scope/a.json", writer)
    # Then each is a 403 problem naming the missing scope, and nothing was written
    for reply, scope in ((put, "write"), (delete, "write"), (query, "read"), (get, "read")):
        assert reply.status == 403
        assert reply.json()["type"] == "urn:cachesync:problem:forbidden"
        assert repr(scope) in reply.json()["detail"]
    assert api_world.s3.list_objects_v2(Bucket=api_world.bucket, Prefix="scope/")["KeyCount"] == 0


# ---------------------------------------------------------------------- tenancy


def test_a_restricted_key_sees_only_its_customers_documents(
    api_world: ApiWorld, tenants: dict[str, str]
) -> None:
    # Given keys for acme, for acme and initech, and for everyone
    acme = api_world.key(customers=("acme",))
    two = api_world.key(customers=("ACME", "initech"))
    everyone = api_world.key()
    # When each queries without a customer, and acme's key asks for globex
    seen_by_acme = query_keys(api_world, acme)
    seen_by_two = query_keys(api_world, two)
    seen_by_all = query_keys(api_world, everyone)
    refused = api_world.get(f"/v1/documents?customer=globex&{WINDOW}", acme)
    allowed = query_keys(api_world, acme, "&customer=Acme")
    # Then each sees the documents naming one of its customers, and globex is a 403
    assert seen_by_acme == [tenants["acme"], tenants["both"]]
    assert seen_by_two == [tenants["acme"], tenants["both"], tenants["initech"]]
    assert seen_by_all == sorted(tenants.values())
    assert refused.status == 403
    assert allowed == [tenants["acme"], tenants["both"]]


def test_a_restricted_key_gets_404_for_another_customers_document(
    api_world: ApiWorld, tenants: dict[str, str]
) -> None:
    # Given acme's key
    acme = api_world.key(customers=("acme",), scopes=(Scope.READ, Scope.WRITE))
    # When it reads globex's document, a shared one, and a missing one
    foreign = api_world.get(f"/v1/documents/{tenants['globex']}", acme)
    foreign_304 = api_world.get(
        f"/v1/documents/{tenants['globex']}", acme, **{"If-None-Match": "*"}
    )
    shared = api_world.get(f"/v1/documents/{tenants['both']}", acme)
    missing = api_world.get("/v1/documents/tenancy/missing.json", acme)
    deleting = api_world.request("DELETE", f"/v1/documents/{tenants['globex']}", key=acme)
    # Then the foreign document is indistinguishable from a missing one
    assert foreign.status == 404
    assert foreign_304.status == 404
    assert deleting.status == 404
    assert shared.status == 200
    assert missing.status == 404
    assert foreign.json()["title"] == missing.json()["title"]


def test_a_restricted_key_writes_only_its_customers_documents(api_world: ApiWorld) -> None:
    # Given acme's writer key
    acme = api_world.key(customers=("acme",), scopes=(Scope.READ, Scope.WRITE))
    # When it writes a document for acme, then one naming globex too
    own = api_world.request(
        "PUT", "/v1/documents/tenancy/w-acme.json", key=acme, body=change("W1", modified=WHEN)
    )
    foreign = api_world.request(
        "PUT",
        "/v1/documents/tenancy/w-both.json",
        key=acme,
        body=change("W2", customers=("acme", "globex"), modified=WHEN),
    )
    # Then the first is written, the second refused
    assert own.status == 200, own.body
    assert foreign.status == 403


# ---------------------------------------------------------------------- page tokens


def first_token(world: ApiWorld, key: str, params: str) -> str:
    reply = world.get(f"/v1/documents?{params}&limit=1", key)
    assert reply.status == 200, reply.body
    token: str = reply.json()["next_token"]
    return token


def test_a_token_is_refused_for_another_query_key_byte_or_after_expiry(
    api_world: ApiWorld, tenants: dict[str, str]
) -> None:
    # Given a token of one key's query
    key, other = api_world.key(), api_world.key()
    params = f"{WINDOW}&order=asc"
    token = first_token(api_world, key, params)
    raw = bytearray(base64.urlsafe_b64decode(token))
    raw[len(raw) // 2] ^= 0x01
    altered = base64.urlsafe_b64encode(bytes(raw)).decode()
    expired = _reissued_expired(token, api_world.created_keys[key])
    # When it is used as issued, with another query, another key, altered, expired
    same = api_world.get(f"/v1/documents?{params}&limit=1&next_token={quote(token)}", key)
    replies = {
        "another query": api_world.get(
            f"/v1/documents?{params}&kind=change&limit=1&next_token={quote(token)}", key
        ),
        "another API key": api_world.get(
            f"/v1/documents?{params}&limit=1&next_token={quote(token)}", other
        ),
        "altered": api_world.get(
            f"/v1/documents?{params}&limit=1&next_token={quote(altered)}", key
        ),
        "expired": api_world.get(
            f"/v1/documents?{params}&limit=1&next_token={quote(expired)}", key
        ),
    }
    # Then only the first is honoured; each other is a 400 saying why
    assert same.status == 200
    for reason, reply in replies.items():
        assert reply.status == 400, (reason, reply.body)
        assert reply.json()["type"] == "urn:cachesync:problem:invalid-request"
        assert reason in reply.json()["detail"], reply.json()["detail"]


def _reissued_expired(token: str, key_id: str) -> str:
    """``token``'s cursor, signed with the server's secret but expired an hour ago."""
    secret = TOKEN_SECRET.encode()
    valid = PageTokens(SigningSealer(secret, key_id, lifetime=timedelta(hours=1)))
    query = IndexQuery(
        since=datetime(2026, 1, 1, tzinfo=UTC),
        until=datetime(2027, 1, 1, tzinfo=UTC) - timedelta(microseconds=1),
        order="asc",
    )
    cursor = valid.open(token, query_fingerprint(query))
    past = datetime.now(UTC) - timedelta(hours=2)
    stale = PageTokens(
        SigningSealer(secret, key_id, lifetime=timedelta(hours=1), clock=lambda: past)
    )
    return stale.issue(cursor)


def test_a_restricted_key_cannot_replay_an_unrestricted_keys_token(
    api_world: ApiWorld, tenants: dict[str, str]
) -> None:
    # Given a token of an unrestricted key's query
    everyone, acme = api_world.key(), api_world.key(customers=("acme",))
    token = first_token(api_world, everyone, WINDOW)
    # When acme's key presents it with the same parameters
    reply = api_world.get(f"/v1/documents?{WINDOW}&limit=1&next_token={quote(token)}", acme)
    # Then it is refused
    assert reply.status == 400


# ---------------------------------------------------------------------- OpenAPI and docs


def test_the_openapi_document_is_valid_openapi_3_and_names_every_route(
    api_world: ApiWorld,
) -> None:
    # Given / When the OpenAPI document is fetched without a key
    reply = api_world.get("/v1/openapi.json")
    # Then it validates, and holds the routes and both ways to send a key
    assert reply.status == 200
    document = reply.json()
    validate(document)
    assert document["openapi"].startswith("3.")
    assert {"/v1/documents", "/v1/documents/{key}", "/v1/health"} <= set(document["paths"])
    assert set(document["paths"]["/v1/documents/{key}"]) == {"get", "put", "delete"}
    assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}


def test_the_docs_page_and_its_assets_come_from_the_api_itself(api_world: ApiWorld) -> None:
    # Given / When the docs page and the assets it names are fetched
    page = api_world.get("/v1/docs")
    html = page.body.decode()
    assets = [
        api_world.get(f"/v1/docs/{name}")
        for name in ("swagger-ui-bundle.min.js", "swagger-ui.min.css", "swagger-initializer.js")
    ]
    missing = api_world.get("/v1/docs/other.js")
    # Then the page loads only same-origin scripts under a strict CSP, and the assets exist
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self';" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "http" not in html
    assert 'src="docs/swagger-ui-bundle.min.js"' in html
    for reply in assets:
        assert reply.status == 200
        assert len(reply.body) > 100
    assert "SwaggerUIBundle" in assets[0].body.decode()
    assert missing.status == 404


# ---------------------------------------------------------------------- keys CLI


def test_keys_create_list_and_revoke_from_the_command_line(api_world: ApiWorld) -> None:
    # Given the API's environment
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CLI, "keys", *args],
            env=api_world.environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    # When a key is created for two customers
    created = cli("create", "--name", "cli-test", "--customers", "acme,globex", "--scopes", "read")
    key = created.stdout.strip()
    key_id, _ = split_key(key)
    works = api_world.get("/v1/documents?limit=1", key)
    listed = cli("list", "--json")
    revoked = cli("revoke", key_id)
    refused = api_world.get("/v1/documents?limit=1", key)
    # Then the key prints once on stdout, works, is listed without its secret, and stops working
    assert created.returncode == 0, created.stderr
    assert works.status == 200
    assert listed.returncode == 0, listed.stderr
    entry = next(k for k in json.loads(listed.stdout) if k["key_id"] == key_id)
    assert entry["customers"] == ["acme", "globex"]
    assert entry["scopes"] == ["read"]
    assert key.split("_", 2)[2] not in listed.stdout
    assert revoked.returncode == 0, revoked.stderr
    assert refused.status == 401


def test_concurrent_requests_of_different_tenants_never_mix(
    api_world: ApiWorld, tenants: dict[str, str]
) -> None:
    # Given an acme key and a globex key
    keys = {
        "acme": api_world.key(customers=("acme",)),
        "globex": api_world.key(customers=("globex",)),
    }
    failures: list[str] = []

    def client(customer: str) -> None:
        for number in range(25):
            # Distinct limits: no two requests share a cached page.
            reply = api_world.get(f"/v1/documents?{WINDOW}&limit={number + 1}", keys[customer])
            if reply.status != 200:
                failures.append(f"{customer}: {reply.status} {reply.body[:120]!r}")
            elif any(customer not in item["customers"] for item in reply.json()["items"]):
                seen = [(item["key"], item["customers"]) for item in reply.json()["items"]]
                failures.append(f"{customer} saw {seen}")

    # When both query at once from eight threads
    threads = [
        threading.Thread(target=client, args=(customer,)) for customer in ("acme", "globex") * 4
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every answer succeeded and held only the caller's documents
    assert failures == []


def test_a_rotated_key_works_in_its_grace_period_and_is_refused_as_rotated_after(
    api_world: ApiWorld,
) -> None:
    # Given a key created and rotated from the command line with a 3 s grace period
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CLI, "keys", *args],
            env=api_world.environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    old = cli("create", "--name", "rotating", "--customers", "*", "--scopes", "read").stdout.strip()
    key_id, _ = split_key(old)
    rotated = cli("rotate", key_id, "--grace", "3s", "--json")
    new = json.loads(rotated.stdout)["key"]
    # When both secrets are used within the grace, and again after it
    within = [api_world.get("/v1/documents?limit=1", key).status for key in (old, new)]
    listed = json.loads(cli("list", "--json").stdout)
    time.sleep(3.5)
    after_old = api_world.get("/v1/documents?limit=1", old)
    after_new = api_world.get("/v1/documents?limit=1", new)
    # Then both worked within it; after it the old secret is a 401 saying it was rotated, the
    # new one still works, and the list shows the previous secret's end
    assert rotated.returncode == 0, rotated.stderr
    assert split_key(new)[0] == key_id
    assert new != old
    assert within == [200, 200]
    assert after_old.status == 401
    assert "rotated" in after_old.json()["detail"]
    assert after_new.status == 200
    entry = next(k for k in listed if k["key_id"] == key_id)
    assert entry["previous_secret_valid_until"] is not None
    # and a revoked key cannot be rotated back to life
    cli("revoke", key_id)
    again = cli("rotate", key_id)
    assert again.returncode == 2
    assert api_world.get("/v1/documents?limit=1", new).status == 401


def test_two_rotations_from_the_same_secret_cannot_both_win(api_world: ApiWorld) -> None:
    # Given a key's record, read by two operators at once
    key_id, _ = split_key(api_world.key())
    record = api_world.keys.get(key_id)
    assert record is not None
    now = datetime.now(UTC)
    first = rotated_api_key(record, now, timedelta(hours=1))
    second = rotated_api_key(record, now, timedelta(hours=1))
    # When both store their rotation / Then only the first does; the stored secret is its
    assert api_world.keys.rotate(record, first.record) is True
    assert api_world.keys.rotate(record, second.record) is False
    stored = api_world.keys.get(key_id)
    assert stored is not None
    assert stored.secret_hash == first.record.secret_hash


def test_an_admin_key_rotates_a_key_over_the_api(api_world: ApiWorld) -> None:
    # Given a reader key, an admin key for every customer, and an admin key limited to acme
    reader = api_world.key()
    admin = api_world.key(scopes=(Scope.ADMIN,))
    limited_admin = api_world.key(customers=("acme",), scopes=(Scope.ADMIN,))
    key_id, _ = split_key(reader)
    path = f"/v1/api-keys/{key_id}/rotate?grace_seconds=2"
    # When the admin rotates the reader's key with a 2 s grace (and others try to)
    rotated = api_world.request("POST", path, key=admin)
    by_reader = api_world.request("POST", path, key=reader)
    by_limited = api_world.request("POST", path, key=limited_admin)
    unknown = api_world.request("POST", "/v1/api-keys/000000000000/rotate", key=admin)
    new = rotated.json()["key"]
    within = [api_world.get("/v1/documents?limit=1", key).status for key in (reader, new)]
    time.sleep(2.5)
    after = [api_world.get("/v1/documents?limit=1", key).status for key in (reader, new)]
    # Then the admin got the new form once (never cached), the others were refused, and the
    # old secret worked only within the grace
    assert rotated.status == 200, rotated.body
    assert rotated.headers["cache-control"] == "no-store"
    assert split_key(new)[0] == key_id
    assert by_reader.status == 403
    assert by_limited.status == 403
    assert unknown.status == 404
    assert within == [200, 200]
    assert after == [401, 200]
