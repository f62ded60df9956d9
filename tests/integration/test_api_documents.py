"""Query API over HTTP: read, write and delete one document; health, docs, headers, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cachesync.api.keys import Scope
from cachesync.index_models import Tombstone, WriteSource
from tests.integration.api_http import ApiWorld, api_world, change, index_document

__all__ = ["api_world"]

NOW = datetime.now(UTC).replace(microsecond=0)
ODD_KEY = "changes/a b+c.json"


def test_health_answers_without_a_key(api_world: ApiWorld) -> None:
    # Given a running server / When health is asked without a key
    reply = api_world.get("/v1/health")
    # Then it is up, its index reachable, with the security headers
    assert reply.status == 200
    assert reply.json()["index_reachable"] is True
    assert reply.json()["status"] == "ok"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["x-frame-options"] == "DENY"
    assert "max-age=" in reply.headers["strict-transport-security"]
    assert reply.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]
    assert reply.headers["cache-control"] == "no-store"


def test_a_key_with_slash_space_and_plus_round_trips(api_world: ApiWorld) -> None:
    # Given a writer key and a document at a key holding "/", " " and "+"
    key = api_world.key(scopes=(Scope.READ, Scope.WRITE))
    body = change("CHG-ODD", modified=NOW)
    # When it is put with the slash as is, and read with the slash encoded too
    put = api_world.request("PUT", "/v1/documents/changes/a%20b%2Bc.json", key=key, body=body)
    plain = api_world.get("/v1/documents/changes/a%20b%2Bc.json", key)
    encoded = api_world.get("/v1/documents/changes%2Fa%20b%2Bc.json", key)
    # Then the write is committed at exactly that key, and both reads find it
    assert put.status == 200, put.body
    assert put.json()["key"] == ODD_KEY
    assert put.json()["index"] == "committed"
    for reply in (plain, encoded):
        assert reply.status == 200, reply.body
        assert reply.json()["key"] == ODD_KEY
        assert reply.json()["document"]["change_id"] == "CHG-ODD"
    stored = api_world.s3.get_object(Bucket=api_world.bucket, Key=ODD_KEY)
    assert stored["ETag"] == plain.headers["etag"]


def test_an_unchanged_document_is_304_and_a_deleted_one_404(api_world: ApiWorld) -> None:
    # Given a document written through the API
    key = api_world.key(scopes=(Scope.READ, Scope.WRITE))
    path = "/v1/documents/changes/etag.json"
    api_world.request("PUT", path, key=key, body=change("CHG-ETAG", modified=NOW))
    first = api_world.get(path, key)
    # When it is read again with its ETag, then deleted and read again
    again = api_world.get(path, key, **{"If-None-Match": first.headers["etag"]})
    other = api_world.get(path, key, **{"If-None-Match": '"something-else"'})
    deleted = api_world.request("DELETE", path, key=key)
    gone = api_world.get(path, key)
    # Then: 304 without a body, 200 for another ETag, a delete receipt, a 404 problem
    assert first.json()["source"] in ("index", "s3")
    assert again.status == 304
    assert again.body == b""
    assert again.headers["etag"] == first.headers["etag"]
    assert other.status == 200
    assert deleted.status == 200
    assert deleted.json()["operation"] == "delete"
    assert gone.status == 404
    assert gone.headers["content-type"] == "application/problem+json"
    problem = gone.json()
    assert problem["status"] == 404
    assert problem["type"] == "urn:cachesync:problem:not-found"
    assert problem["instance"] == path


def test_an_idempotency_key_replays_the_first_receipt_and_refuses_another_body(
    api_world: ApiWorld,
) -> None:
    # Given a write with an idempotency key
    key = api_world.key(scopes=(Scope.READ, Scope.WRITE))
    path = "/v1/documents/changes/idem.json"
    headers = {"Idempotency-Key": "idem-1"}
    first = api_world.request(
        "PUT", path, key=key, headers=headers, body=change("CHG-I", modified=NOW)
    )
    # When it is sent again, then with another body under the same idempotency key
    replay = api_world.request(
        "PUT", path, key=key, headers=headers, body=change("CHG-I", modified=NOW)
    )
    conflict = api_world.request(
        "PUT", path, key=key, headers=headers, body=change("CHG-I2", modified=NOW)
    )
    # Then the replay is the first receipt, the other body a 422 problem
    assert first.status == 200, first.body
    assert replay.json() == first.json()
    assert conflict.status == 422
    assert conflict.json()["type"] == "urn:cachesync:problem:idempotency-conflict"


def test_idempotency_keys_of_different_api_keys_never_collide(api_world: ApiWorld) -> None:
    # Given two writer keys choosing the same idempotency key
    first, second = (api_world.key(scopes=(Scope.WRITE,)) for _ in range(2))
    headers = {"Idempotency-Key": "shared-value"}
    # When each writes its own document with it
    one = api_world.request(
        "PUT",
        "/v1/documents/changes/idem-a.json",
        key=first,
        headers=headers,
        body=change("CHG-A", modified=NOW),
    )
    two = api_world.request(
        "PUT",
        "/v1/documents/changes/idem-b.json",
        key=second,
        headers=headers,
        body=change("CHG-B", modified=NOW),
    )
    # Then both are written, each at its own key
    assert one.status == 200, one.body
    assert two.status == 200, two.body
    assert two.json()["key"] == "changes/idem-b.json"


def test_an_invalid_document_is_a_422_problem_naming_the_field(api_world: ApiWorld) -> None:
    # Given a writer key / When a document without its id is put
    key = api_world.key(scopes=(Scope.READ, Scope.WRITE))
    reply = api_world.request(
        "PUT", "/v1/documents/changes/bad.json", key=key, body={"object_type": "change"}
    )
    # Then nothing is written and the problem names the field
    assert reply.status == 422
    assert reply.json()["field"] == "change_id"
    assert (
        api_world.s3.list_objects_v2(Bucket=api_world.bucket, Prefix="changes/bad")["KeyCount"] == 0
    )


def test_unknown_routes_and_bad_parameters_are_problems(api_world: ApiWorld) -> None:
    # Given a reader key
    key = api_world.key()
    # When an unknown route and an out-of-range limit are asked for
    unknown = api_world.get("/v1/nothing-here", key)
    too_many = api_world.get("/v1/documents?limit=501", key)
    bad_date = api_world.get("/v1/documents?since=yesterday", key)
    bad_status = api_world.get("/v1/documents?status=approved&status=aproved", key)
    too_long = api_world.get("/v1/documents?since=2000-01-01&until=2020-01-01", key)
    not_json = api_world.request(
        "PUT",
        "/v1/documents/changes/x.json",
        key=api_world.key(scopes=(Scope.WRITE,)),
        headers={"Content-Type": "application/json"},
        body="{not json",
    )
    # Then each is a problem, with the security headers
    assert unknown.status == 404
    assert too_many.status == 400
    assert too_many.json()["errors"][0]["location"] == "query.limit"
    assert bad_date.status == 400
    assert "since" in bad_date.json()["detail"]
    assert bad_status.status == 400
    assert "aproved" in bad_status.json()["detail"]
    assert too_long.status == 400
    assert "window" in too_long.json()["detail"]
    assert not_json.status == 400
    for reply in (unknown, too_many, bad_date, bad_status, too_long, not_json):
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.headers["x-content-type-options"] == "nosniff"


def test_cors_is_off_by_default(api_world: ApiWorld) -> None:
    # Given / When a browser-style request from another origin
    reply = api_world.get("/v1/health", Origin="https://elsewhere.example")
    # Then no CORS header allows it
    assert "access-control-allow-origin" not in reply.headers


def test_reads_are_cached_per_process_and_a_write_through_it_evicts(api_world: ApiWorld) -> None:
    # Given a document written through the API and read once
    key = api_world.key(scopes=(Scope.READ, Scope.WRITE))
    path = "/v1/documents/changes/cached.json"
    api_world.request("PUT", path, key=key, body=change("CHG-C", modified=NOW))
    first = api_world.get(path, key)
    # When it is read again, rewritten through the API, and read again
    second = api_world.get(path, key)
    api_world.request("PUT", path, key=key, body=change("CHG-C", modified=NOW, status="draft"))
    third = api_world.get(path, key)
    # Then the second read is a hit, and the write made the third a miss with the new version
    assert first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == "hit"
    assert second.json() == first.json()
    assert third.headers["x-cache"] == "miss"
    assert third.json()["document"]["status"] == "draft"
    assert third.headers["etag"] != first.headers["etag"]
    assert api_world.get("/v1/health").json()["cache"]["hits"] >= 1


def test_a_cached_document_is_still_hidden_from_other_tenants(api_world: ApiWorld) -> None:
    # Given a globex document, read (and cached) by an unrestricted key
    everyone = api_world.key(scopes=(Scope.READ, Scope.WRITE))
    acme = api_world.key(customers=("acme",))
    path = "/v1/documents/changes/globex-cached.json"
    api_world.request(
        "PUT", path, key=everyone, body=change("CHG-G", customers=("globex",), modified=NOW)
    )
    cached = api_world.get(path, everyone)
    # When acme's key reads it while it is cached
    foreign = api_world.get(path, acme)
    # Then acme gets the same 404 as for a missing document
    assert cached.status == 200
    assert foreign.status == 404


def test_query_pages_are_cached_per_caller(api_world: ApiWorld) -> None:
    # Given an acme and a globex document, and two keys with different tenancy
    writer = api_world.key(scopes=(Scope.WRITE,))
    for code in ("acme", "globex"):
        body = change(f"CHG-{code}", customers=(code,), modified=NOW)
        api_world.request("PUT", f"/v1/documents/changes/pq-{code}.json", key=writer, body=body)
    everyone, acme = api_world.key(), api_world.key(customers=("acme",))
    path = "/v1/documents?since=2020-01-01&limit=500"
    # When each asks the same query twice
    first, again = api_world.get(path, everyone), api_world.get(path, everyone)
    acme_first = api_world.get(path, acme)
    # Then the repeat is a hit, and the other caller's first page is computed for it
    assert first.headers["x-cache"] == "miss"
    assert again.headers["x-cache"] == "hit"
    assert again.json() == first.json()
    assert acme_first.headers["x-cache"] == "miss"
    assert all("acme" in item["customers"] for item in acme_first.json()["items"])
    assert any("acme" not in item["customers"] for item in first.json()["items"])


def test_a_key_with_control_characters_is_a_400_problem_on_every_document_route(
    api_world: ApiWorld,
) -> None:
    # Given a key holding a carriage return and a line feed, sent percent-encoded (schemathesis
    # found DELETE answering 502: the S3 delete of such a key failed after the index intent)
    writer = api_world.key(scopes=(Scope.READ, Scope.WRITE))
    path = "/v1/documents/changes/a%0D%0Ab.json"
    body = change("CTRL-1", modified=datetime.now(UTC))
    # When it is read, written and deleted
    replies = [
        api_world.get(path, writer),
        api_world.request("PUT", path, key=writer, body=body),
        api_world.request("DELETE", path, key=writer),
    ]
    # Then each is a 400 problem naming the reason, never a 5xx
    for reply in replies:
        assert reply.status == 400, reply.body
        assert reply.headers["content-type"] == "application/problem+json"
        assert "control character" in reply.json()["detail"]


def test_a_body_that_is_not_utf8_json_is_a_400_problem(api_world: ApiWorld) -> None:
    # Given a writer, and a body of bytes that are not UTF-8 (schemathesis found a 500)
    writer = api_world.key(scopes=(Scope.WRITE,))
    # When it is PUT as JSON
    reply = api_world.request(
        "PUT",
        "/v1/documents/changes/binary.json",
        key=writer,
        headers={"Content-Type": "application/json"},
        body=b"\xff\x1f\xd6\xb1{",
    )
    # Then a 400 problem, not a server error
    assert reply.status == 400, reply.body
    assert reply.headers["content-type"] == "application/problem+json"


def test_a_cached_document_changed_or_deleted_elsewhere_is_not_served_from_memory(
    api_world: ApiWorld,
) -> None:
    # Given a document read twice through this server (the second read a memory hit)
    key = api_world.key(scopes=(Scope.READ, Scope.WRITE))
    path = "/v1/documents/changes/elsewhere.json"
    api_world.request("PUT", path, key=key, body=change("CHG-E", modified=NOW))
    api_world.get(path, key)
    assert api_world.get(path, key).headers["x-cache"] == "hit"
    # When another writer (another API process, an S3 event) replaces it, then deletes it
    index_document(
        api_world, "changes/elsewhere.json", change("CHG-E", modified=NOW, status="draft")
    )
    changed = api_world.get(path, key)
    api_world.index.put_tombstone(
        Tombstone(
            bucket=api_world.bucket,
            key="changes/elsewhere.json",
            deleted_at=datetime.now(UTC),
            source=WriteSource.EVENT,
        )
    )
    api_world.s3.delete_object(Bucket=api_world.bucket, Key="changes/elsewhere.json")
    deleted = api_world.get(path, key)
    # Then the cached copy revalidates against the index at once: the new version, then 404
    assert changed.headers["x-cache"] == "miss"
    assert changed.json()["document"]["status"] == "draft"
    assert deleted.status == 404


def test_a_body_that_is_not_json_is_a_415(api_world: ApiWorld) -> None:
    # Given a valid document sent as text, and as a form (curl --data without a type)
    key = api_world.key(scopes=(Scope.READ, Scope.WRITE))
    path = "/v1/documents/changes/typed.json"
    document = json.dumps(change("CHG-T", modified=NOW))
    as_text = api_world.request(
        "PUT", path, key=key, headers={"Content-Type": "text/plain"}, body=document
    )
    as_form = api_world.request(
        "PUT",
        path,
        key=key,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=document,
    )
    anonymous = api_world.request(
        "PUT", path, headers={"Content-Type": "text/plain"}, body=document
    )
    # Then both are 415 problems saying to send JSON (the anonymous one: 401 first)
    for reply in (as_text, as_form):
        assert reply.status == 415, reply.body
        assert reply.headers["content-type"] == "application/problem+json"
        assert "application/json" in reply.json()["detail"]
    assert anonymous.status == 401
    assert api_world.get(path, key).status == 404
