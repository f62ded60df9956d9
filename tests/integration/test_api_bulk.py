"""``POST /v1/documents/bulk`` over HTTP: per-item results in order, 200/207, limits, replays."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from cachesync.api.keys import Scope
from tests.integration.api_http import ApiWorld, api_world, change

__all__ = ["api_world"]

NOW = datetime.now(UTC).replace(microsecond=0)
BULK = "/v1/documents/bulk"


def in_s3(world: ApiWorld, key: str) -> bool:
    listed = world.s3.list_objects_v2(Bucket=world.bucket, Prefix=key)
    return any(entry["Key"] == key for entry in listed.get("Contents", []))


def put(key: str, doc_id: str, **extra: Any) -> dict[str, Any]:
    return {"op": "put", "key": key, "document": change(doc_id, modified=NOW), **extra}


def test_a_mixed_bulk_is_207_with_every_item_in_order_and_s3_and_the_index_agree(
    api_world: ApiWorld,
) -> None:
    # Given an acme-only writer, a globex document already stored, and 12 items: 7 good puts, an
    # invalid document, a control character in a key, a document naming globex, an overwrite of
    # globex's document, a delete of it, and a put then a delete of one key
    run = uuid.uuid4().hex[:6]
    admin = api_world.key(scopes=(Scope.READ, Scope.WRITE))
    theirs = f"bulk/{run}/globex.json"
    stored = api_world.request(
        "PUT",
        f"/v1/documents/{theirs}",
        key=admin,
        body=change("CHG-GLOBEX", customers=("globex",), modified=NOW),
    )
    assert stored.status == 200, stored.body
    writer = api_world.key(customers=("acme",), scopes=(Scope.READ, Scope.WRITE))
    good = [f"bulk/{run}/{n}.json" for n in range(7)]
    items = [put(key, f"CHG-{run}-{n}") for n, key in enumerate(good)]
    items[2:2] = [{"op": "put", "key": f"bulk/{run}/bad.json", "document": {"x": 1}}]
    items[4:4] = [put(f"bulk/{run}/tab\there.json", "CHG-TAB")]
    items += [
        {
            "op": "put",
            "key": f"bulk/{run}/named-globex.json",
            "document": change("CHG-G2", customers=("globex",), modified=NOW),
        },
        put(theirs, "CHG-TAKEOVER"),
        {"op": "delete", "key": theirs},
        put(f"bulk/{run}/short.json", "CHG-SHORT"),
        {"op": "delete", "key": f"bulk/{run}/short.json"},
    ]
    # When they are sent in one request
    reply = api_world.request("POST", BULK, key=writer, body={"items": items})
    # Then 207, every item in request order with its own status
    assert reply.status == 207, reply.body
    result = reply.json()
    statuses = [
        (item["index"], item["key"], item["op"], item["status"]) for item in result["items"]
    ]
    assert [s[:3] for s in statuses] == [(n, i["key"], i["op"]) for n, i in enumerate(items)]
    by_key = {item["key"]: item for item in result["items"] if item["op"] == "put"}
    assert by_key[f"bulk/{run}/bad.json"]["status"] == 422
    assert (
        by_key[f"bulk/{run}/bad.json"]["problem"]["type"]
        == "urn:cachesync:problem:invalid-document"
    )
    assert by_key[f"bulk/{run}/tab\there.json"]["status"] == 400
    assert by_key[f"bulk/{run}/named-globex.json"]["status"] == 403
    assert by_key[theirs]["status"] == 403
    assert [i["status"] for i in result["items"] if i["op"] == "delete"] == [404, 200]
    assert (result["succeeded"], result["failed"]) == (len(good) + 2, 5)
    for item in result["items"]:
        assert (item["receipt"] is None) == (item["status"] != 200), item
        assert (item["problem"] is None) == (item["status"] == 200), item
    assert all(by_key[key]["receipt"]["index"] == "committed" for key in good)
    # and S3 and the index agree on every key: globex's document untouched, the rest as reported
    expected = {*good, theirs}
    for item in items:
        key = item["key"]
        indexed = api_world.index.get_document(api_world.bucket, key)
        assert in_s3(api_world, key) == (key in expected), key
        assert (indexed is not None) == (key in expected), key
    untouched = api_world.index.get_document(api_world.bucket, theirs)
    assert untouched is not None
    assert untouched.doc_id == "CHG-GLOBEX"


def test_an_all_good_bulk_is_200_and_reads_back(api_world: ApiWorld) -> None:
    # Given a writer and 30 puts
    run = uuid.uuid4().hex[:6]
    writer = api_world.key(scopes=(Scope.READ, Scope.WRITE))
    items = [put(f"bulk/{run}/{n:02d}.json", f"CHG-{run}-{n}") for n in range(30)]
    # When they are sent in one request
    reply = api_world.request("POST", BULK, key=writer, body={"items": items})
    # Then 200, 30 receipts in order, and each document reads back with its receipt's ETag
    assert reply.status == 200, reply.body
    result = reply.json()
    assert (result["succeeded"], result["failed"]) == (30, 0)
    assert [item["key"] for item in result["items"]] == [item["key"] for item in items]
    for item in result["items"][::7]:
        read = api_world.get(f"/v1/documents/{item['key']}", writer)
        assert read.status == 200, read.body
        assert read.json()["etag"] == item["receipt"]["etag"]


def test_more_than_100_items_or_a_malformed_item_are_refused_before_any_write(
    api_world: ApiWorld,
) -> None:
    # Given a writer
    run = uuid.uuid4().hex[:6]
    writer = api_world.key(scopes=(Scope.WRITE,))
    too_many = [put(f"bulk/{run}/{n}.json", f"C{n}") for n in range(101)]
    # When 101 items, none, a put without a document, or no key at all are sent
    large = api_world.request("POST", BULK, key=writer, body={"items": too_many})
    empty = api_world.request("POST", BULK, key=writer, body={"items": []})
    malformed = api_world.request(
        "POST", BULK, key=writer, body={"items": [{"op": "put", "key": f"bulk/{run}/x.json"}]}
    )
    anonymous = api_world.request("POST", BULK, body={"items": too_many})
    reader = api_world.request("POST", BULK, key=api_world.key(), body={"items": too_many[:1]})
    # Then 413 saying the limit, 400s naming the item, 401, 403; nothing was written
    assert large.status == 413, large.body
    assert large.headers["content-type"] == "application/problem+json"
    assert "at most 100" in large.json()["detail"]
    assert empty.status == 400
    assert malformed.status == 400
    assert "a put needs a document" in malformed.json()["detail"]
    assert malformed.json()["errors"][0]["location"].startswith("body.items.0")
    assert anonymous.status == 401
    assert reader.status == 403
    assert (
        api_world.s3.list_objects_v2(Bucket=api_world.bucket, Prefix=f"bulk/{run}/")["KeyCount"]
        == 0
    )


def test_a_replayed_idempotency_key_returns_the_first_receipt(api_world: ApiWorld) -> None:
    # Given a bulk put with an idempotency key, then the document changed by a single PUT
    run = uuid.uuid4().hex[:6]
    writer = api_world.key(scopes=(Scope.READ, Scope.WRITE))
    key = f"bulk/{run}/idem.json"
    item = put(key, "CHG-IDEM", idempotency_key="bulk-idem-1")
    first = api_world.request("POST", BULK, key=writer, body={"items": [item]})
    changed = api_world.request(
        "PUT", f"/v1/documents/{key}", key=writer, body=change("CHG-IDEM-2", modified=NOW)
    )
    # When the same item is sent again, by the same key and by another key
    replay = api_world.request("POST", BULK, key=writer, body={"items": [item]})
    after_replay = api_world.get(f"/v1/documents/{key}", writer)
    other = api_world.request(
        "POST", BULK, key=api_world.key(scopes=(Scope.WRITE,)), body={"items": [item]}
    )
    # Then the replay is the first receipt and wrote nothing; another API key's is a new write
    assert first.status == 200, first.body
    assert changed.status == 200, changed.body
    receipt = first.json()["items"][0]["receipt"]
    assert replay.status == 200, replay.body
    assert replay.json()["items"][0]["receipt"] == receipt
    assert replay.json()["items"][0]["receipt"]["etag"] != changed.json()["etag"]
    assert after_replay.json()["document"]["change_id"] == "CHG-IDEM-2"
    assert other.status == 200, other.body
    assert other.json()["items"][0]["receipt"]["etag"] == receipt["etag"]
    read = api_world.get(f"/v1/documents/{key}", writer)
    assert read.json()["document"]["change_id"] == "CHG-IDEM"
