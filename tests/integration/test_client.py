"""The Python client against the real query API server (gunicorn, DynamoDB Local, moto)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from cachesync.api.keys import Scope
from cachesync.client import (
    ApiAuthenticationError,
    ApiConnectionError,
    ApiForbiddenError,
    ApiNotFoundError,
    ApiRateLimitedError,
    ApiRequestError,
    BulkItem,
    CacheSyncClient,
    RetryPolicy,
)
from tests.integration.api_http import ApiWorld, api_world, change, index_document

__all__ = ["api_world"]

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def connect(world: ApiWorld, key: str) -> CacheSyncClient:
    return CacheSyncClient(f"http://{world.host}:{world.port}", key, timeout=10)


def test_health_answers_without_a_key(api_world: ApiWorld) -> None:
    # Scenario: health
    # Given a client with a key that does not exist / When health is asked
    health = connect(api_world, "csk_nosuchkey_" + "x" * 40).health()
    # Then it answers, the index reachable
    assert health.index_reachable is True
    assert health.status == "ok"


def test_a_document_round_trips_through_put_get_and_delete(api_world: ApiWorld) -> None:
    # Scenario: round-trip
    # Given a writer's client and a key with a slash, a space and a plus
    api = connect(api_world, api_world.key(scopes=(Scope.READ, Scope.WRITE)))
    key = f"changes/{uuid.uuid4().hex[:6]} b+c.json"
    body = change("CHG-CLIENT-1", modified=NOW)
    # When the document is put with an idempotency key, then put again with the same key
    idempotency_key = api.new_idempotency_key()
    first = api.put(key, body, idempotency_key=idempotency_key)
    replay = api.put(key, body, idempotency_key=idempotency_key)
    # Then the replay is the first receipt, and the document reads back as written
    assert first.index == "committed"
    assert replay == first
    read = api.get(key)
    assert read is not None
    assert (read.key, read.document["change_id"], read.etag) == (key, "CHG-CLIENT-1", first.etag)
    # and a read with its ETag says unchanged; after a delete it is gone
    assert api.get(key, if_none_match=read.etag) is None
    assert api.delete(key).operation == "delete"
    with pytest.raises(ApiNotFoundError):
        api.get(key)


def test_documents_walks_every_page_once_in_order(api_world: ApiWorld) -> None:
    # Scenario: pagination
    # Given 23 documents of one customer, a day apart
    customer = f"cl{uuid.uuid4().hex[:6]}"
    keys = []
    for number in range(23):
        key = f"client/{customer}/{number:02d}.json"
        index_document(
            api_world,
            key,
            change(f"C{number}", customers=(customer,), modified=NOW + timedelta(days=number)),
        )
        keys.append(key)
    api = connect(api_world, api_world.key())
    # When they are walked five a page, newest first
    items = list(api.documents(customer=customer, since="2026-01-01", limit=5))
    pages = list(api.pages(customer=customer, since="2026-01-01", limit=5))
    # Then each comes once, in order, over five pages, the last without a token
    assert [item.key for item in items] == list(reversed(keys))
    assert [page.count for page in pages] == [5, 5, 5, 5, 3]
    assert pages[-1].next_token is None
    assert items[0].index_time == NOW + timedelta(days=22)


def test_refusals_raise_errors_carrying_the_servers_reason(api_world: ApiWorld) -> None:
    # Scenario: refusals
    # Given a key limited to one customer, and a key that does not exist
    restricted = connect(api_world, api_world.key(customers=("acme",)))
    unknown = connect(api_world, "csk_nosuchkey_" + "x" * 40)
    # When / Then each refusal is its own error, with the problem's detail
    with pytest.raises(ApiForbiddenError, match="globex"):
        restricted.query(customer="globex")
    with pytest.raises(ApiAuthenticationError) as raised:
        unknown.query()
    assert raised.value.status == 401
    with pytest.raises(ApiRequestError) as invalid:
        restricted.query(fields=["body"])
    assert invalid.value.detail is not None
    assert "body" in invalid.value.detail


def test_an_unreachable_server_is_a_connection_error_after_bounded_retries() -> None:
    # Scenario: unreachable
    # Given a client of a port nobody listens on, allowed three quick attempts
    slept: list[float] = []
    api = CacheSyncClient(
        "http://127.0.0.1:9",
        "csk_a_b",
        timeout=2,
        retry=RetryPolicy(attempts=3, base_delay=0.01, sleep=slept.append),
    )
    # When it reads / Then it tried three times and says it could not connect
    with pytest.raises(ApiConnectionError, match="cannot connect"):
        api.health()
    assert len(slept) == 2


def test_bulk_reports_every_item_typed_and_replays_with_idempotency_keys(
    api_world: ApiWorld,
) -> None:
    # Scenario: bulk-mixed
    # Given a writer's client, a document to delete, and four items: two good puts, an invalid
    # document and the delete, each with an idempotency key
    api = connect(api_world, api_world.key(scopes=(Scope.READ, Scope.WRITE)))
    run = uuid.uuid4().hex[:6]
    api.put(f"client-bulk/{run}/old.json", change("CHG-OLD", modified=NOW))
    items = [
        BulkItem(
            op="put",
            key=f"client-bulk/{run}/a.json",
            document=change("CHG-BA", modified=NOW),
            idempotency_key=f"{run}-a",
        ),
        BulkItem(op="put", key=f"client-bulk/{run}/bad.json", document={"object_type": "change"}),
        {
            "op": "put",
            "key": f"client-bulk/{run}/b.json",
            "document": change("CHG-BB", modified=NOW),
            "idempotency_key": f"{run}-b",
        },
        BulkItem(op="delete", key=f"client-bulk/{run}/old.json", idempotency_key=f"{run}-old"),
    ]
    # When they are sent, b is changed by a single put, and the items are sent again
    first = api.bulk(items)
    read = api.get(f"client-bulk/{run}/b.json")
    changed = api.put(f"client-bulk/{run}/b.json", change("CHG-BB2", modified=NOW))
    again = api.bulk([items[0], items[2], items[3]])
    # Then every item is reported in order: receipts for three, a 422 problem for the bad one
    assert [(item.index, item.op, item.status) for item in first.items] == [
        (0, "put", 200),
        (1, "put", 422),
        (2, "put", 200),
        (3, "delete", 200),
    ]
    assert (first.succeeded, first.failed) == (3, 1)
    assert [item.key for item in first.failures] == [f"client-bulk/{run}/bad.json"]
    problem = first.items[1].problem
    assert problem is not None
    assert problem.type == "urn:cachesync:problem:invalid-document"
    receipts = [item.receipt for item in first.items if item.receipt is not None]
    assert receipts[0].index == "committed"
    assert read is not None
    assert read.etag == receipts[1].etag
    # and the replay (all items with their idempotency keys) returns the same receipts, writing
    # nothing: b keeps the single put's version
    assert again.failed == 0
    assert [item.receipt for item in again.items] == receipts
    after = api.get(f"client-bulk/{run}/b.json")
    assert after is not None
    assert (after.etag, after.document["change_id"]) == (changed.etag, "CHG-BB2")


def test_more_than_100_bulk_items_is_the_servers_413(api_world: ApiWorld) -> None:
    # Scenario: bulk-too-many
    # Given a writer's client and 101 items
    api = connect(api_world, api_world.key(scopes=(Scope.WRITE,)))
    items = [BulkItem(op="delete", key=f"client-bulk/{n}.json") for n in range(101)]
    # When they are sent / Then the request is refused with the server's reason
    with pytest.raises(ApiRequestError) as refused:
        api.bulk(items)
    assert refused.value.status == 413
    assert refused.value.detail is not None
    assert "at most 100" in refused.value.detail


def test_a_key_requiring_signatures_works_only_through_a_signing_client(
    api_world: ApiWorld,
) -> None:
    # Scenario: signed
    # Given a writer key that requires signed requests, and its signing secret
    key = api_world.key(scopes=(Scope.READ, Scope.WRITE), requires_signing=True)
    url = f"http://{api_world.host}:{api_world.port}"
    signed = CacheSyncClient(url, key, timeout=10, signing_secret=api_world.signing_secret_of(key))
    unsigned = connect(api_world, key)
    wrong = CacheSyncClient(url, key, timeout=10, signing_secret="css_" + "0" * 64)
    path = f"client-signed/{uuid.uuid4().hex[:6]}/a b+c.json"
    # When the signing client writes (one document and a bulk), reads and queries
    receipt = signed.put(path, change("CHG-SIGNED", modified=NOW))
    bulk = signed.bulk([{"op": "delete", "key": path}])
    page = signed.query(customer="acme", status=["approved", "draft"], limit=2)
    # Then each is served; unsigned or wrongly signed requests are refused with 401
    assert receipt.index == "committed"
    assert bulk.failed == 0
    assert page.count <= 2
    for refused in (unsigned, wrong):
        with pytest.raises(ApiAuthenticationError) as raised:
            refused.query()
        assert raised.value.status == 401


def test_a_429_is_retried_after_retry_after(api_world: ApiWorld) -> None:
    # Scenario: rate-limited-retry
    # Given a key allowed one request per second, a client that really waits (recording how
    # long), and one that makes a single attempt
    key = api_world.key(rate_per_minute=100, rate_burst=1)
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        time.sleep(seconds)

    url = f"http://{api_world.host}:{api_world.port}"
    patient = CacheSyncClient(url, key, timeout=10, retry=RetryPolicy(attempts=4, sleep=sleep))
    once = CacheSyncClient(url, key, timeout=10, retry=RetryPolicy(attempts=1))
    # When each asks again and again, quickly (the second's one request is soon spent)
    refusals = []
    for _ in range(10):
        try:
            once.query(limit=1)
        except ApiRateLimitedError as error:
            refusals.append(error)
            break
    pages = []
    while not waited and len(pages) < 10:
        pages.append(patient.query(limit=1))
    # Then the single attempt saw a 429 with Retry-After; the patient client waited that long
    # and was served every time
    assert len(refusals) == 1
    assert refusals[0].status == 429
    assert refusals[0].retry_after is not None
    assert refusals[0].retry_after >= 1
    assert waited, "ten quick requests never met the limit"
    assert all(wait >= 1 for wait in waited)
    assert all(page.count <= 1 for page in pages)
