"""The query API client without a server: answers to errors, retries, waits, paths."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import urllib3

from cachesync.api.models import SUMMARY_FIELDS
from cachesync.api.request_signing import SignatureVerifier, signing_secret
from cachesync.client import (
    ApiAuthenticationError,
    ApiConnectionError,
    ApiForbiddenError,
    ApiNotFoundError,
    ApiRateLimitedError,
    ApiRequestError,
    ApiServerError,
    CacheSyncClient,
    QueryItem,
    RetryPolicy,
)

HEALTH = {
    "status": "ok",
    "version": "1",
    "index_reachable": True,
    "cache": {"hits": 0, "misses": 0, "hit_ratio": None},
}
RECEIPT = {"operation": "put", "bucket": "b", "key": "k", "index": "committed"}


def problem(status: int, detail: str = "because") -> dict[str, Any]:
    return {
        "type": f"urn:cachesync:problem:{status}",
        "title": "t",
        "status": status,
        "detail": detail,
    }


class ScriptedPool:
    """Stands in for urllib3's pool: answers from a script, records what was sent."""

    def __init__(self, *answers: urllib3.HTTPResponse | Exception) -> None:
        self.answers = list(answers)
        self.sent: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> urllib3.HTTPResponse:
        self.sent.append({"method": method, "url": url, **kwargs})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def clear(self) -> None:
        pass


def answer(
    status: int, body: Any = None, headers: Mapping[str, str] | None = None
) -> urllib3.HTTPResponse:
    data = json.dumps(body).encode() if body is not None else b""
    return urllib3.HTTPResponse(
        body=data, status=status, headers=dict(headers or {}), preload_content=True
    )


class Waits:
    """The sleeps a policy asked for, and a jitter that always picks the upper bound."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self.bounds: list[tuple[float, float]] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def jitter(self, low: float, high: float) -> float:
        self.bounds.append((low, high))
        return high


def client(pool: ScriptedPool, waits: Waits | None = None, attempts: int = 4) -> CacheSyncClient:
    waits = waits or Waits()
    policy = RetryPolicy(
        attempts=attempts, base_delay=0.1, max_delay=5, sleep=waits.sleep, jitter=waits.jitter
    )
    return CacheSyncClient("http://api.test/", "csk_id_secret", retry=policy, pool=pool)  # type: ignore[arg-type]


def test_a_query_item_has_every_summary_field() -> None:
    # Given / When / Then the client's item model and the API's projectable fields agree
    assert tuple(QueryItem.model_fields) == SUMMARY_FIELDS


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, ApiRequestError),
        (401, ApiAuthenticationError),
        (403, ApiForbiddenError),
        (404, ApiNotFoundError),
        (422, ApiRequestError),
        (500, ApiServerError),
    ],
)
def test_each_refusal_is_its_own_error_with_the_servers_reason(
    status: int, error: type[Exception]
) -> None:
    # Given a server refusing a read with a problem body
    pool = ScriptedPool(answer(status, problem(status, "the reason")))
    # When the client reads / Then the error says the server's reason, once (no retry)
    with pytest.raises(error, match="the reason") as raised:
        client(pool).get("a.json")
    assert raised.value.status == status  # type: ignore[attr-defined]
    assert raised.value.problem_type == f"urn:cachesync:problem:{status}"  # type: ignore[attr-defined]
    assert len(pool.sent) == 1


def test_a_read_is_retried_on_503_with_growing_jittered_waits() -> None:
    # Given a server that is unavailable three times, then answers
    pool = ScriptedPool(
        answer(503, problem(503)),
        answer(503, problem(503)),
        answer(502, problem(502)),
        answer(200, HEALTH),
    )
    waits = Waits()
    # When the client reads
    health = client(pool, waits).health()
    # Then it waited up to 0.1, 0.2, 0.4 s (full jitter: anywhere from 0 to the bound)
    assert health.status == "ok"
    assert waits.bounds == [(0, 0.1), (0, 0.2), (0, 0.4)]
    assert waits.slept == [0.1, 0.2, 0.4]


def test_retries_are_bounded() -> None:
    # Given a server that stays unavailable
    pool = ScriptedPool(*[answer(503, problem(503)) for _ in range(3)])
    # When the client reads with three attempts / Then the last error comes out after three
    with pytest.raises(ApiServerError):
        client(pool, attempts=3).health()
    assert len(pool.sent) == 3


@pytest.mark.parametrize(("as_date", "expected"), [(False, 2.0), (True, 4.0)])
def test_retry_after_is_honoured_in_seconds_or_as_a_date(as_date: bool, expected: float) -> None:
    # Given a 429 asking for a wait (in seconds, or as the date it ends), then success
    retry_after = (
        format_datetime(datetime.now(UTC) + timedelta(seconds=expected), usegmt=True)
        if as_date
        else str(int(expected))
    )
    pool = ScriptedPool(
        answer(429, problem(429), {"Retry-After": retry_after}), answer(200, HEALTH)
    )
    waits = Waits()
    # When the client reads
    client(pool, waits).health()
    # Then it waited what the server asked (plus at most the base jitter)
    assert len(waits.slept) == 1
    assert expected - 1.1 <= waits.slept[0] <= expected + 0.1


def test_a_retry_after_beyond_the_longest_wait_ends_the_retries() -> None:
    # Given a 429 asking for a minute (the policy waits at most 5 s)
    pool = ScriptedPool(answer(429, problem(429), {"Retry-After": "60"}))
    # When the client reads / Then it gives up at once with the wait the server asked for
    with pytest.raises(ApiRateLimitedError) as raised:
        client(pool).health()
    assert raised.value.retry_after == 60
    assert len(pool.sent) == 1


def test_a_write_without_idempotency_key_is_not_repeated_after_a_lost_answer() -> None:
    # Given a write whose connection broke after it was sent (did the server apply it?)
    pool = ScriptedPool(urllib3.exceptions.ProtocolError("connection reset"), answer(200, RECEIPT))
    # When it is sent without an idempotency key / Then it is not repeated
    with pytest.raises(ApiConnectionError):
        client(pool).put("k", {"a": 1})
    assert len(pool.sent) == 1


def test_a_write_with_idempotency_key_is_repeated_with_the_same_key() -> None:
    # Given the same broken connection, then a 503, then the receipt
    pool = ScriptedPool(
        urllib3.exceptions.ProtocolError("connection reset"),
        answer(503, problem(503)),
        answer(200, RECEIPT),
    )
    # When the write carries an idempotency key
    receipt = client(pool).put("k", {"a": 1}, idempotency_key="idem-1")
    # Then it was sent three times, each with that key
    assert receipt.index == "committed"
    assert [sent["headers"]["Idempotency-Key"] for sent in pool.sent] == ["idem-1"] * 3


def test_a_write_refused_before_it_was_sent_is_repeated() -> None:
    # Given a connection refused once (nothing reached the server)
    refused = urllib3.exceptions.NewConnectionError(None, "refused")  # type: ignore[arg-type]
    pool = ScriptedPool(refused, answer(200, RECEIPT))
    # When a write without idempotency key is sent / Then the second attempt carries it
    assert client(pool).delete("k").index == "committed"
    assert len(pool.sent) == 2


def test_a_not_modified_read_is_none_and_sends_a_quoted_etag() -> None:
    # Given a document unchanged since the ETag the caller holds
    pool = ScriptedPool(answer(304))
    # When it is read with that ETag (as the body's etag field gives it, unquoted)
    result = client(pool).get("changes/a b+c.json", if_none_match="abc")
    # Then there is nothing new, the ETag went quoted, and the key's characters were escaped
    assert result is None
    assert pool.sent[0]["headers"]["If-None-Match"] == '"abc"'
    assert pool.sent[0]["url"] == "http://api.test/v1/documents/changes/a%20b%2Bc.json"


def test_query_parameters_repeat_statuses_and_join_fields() -> None:
    # Given a one-page answer
    pool = ScriptedPool(
        answer(
            200,
            {
                "items": [],
                "count": 0,
                "progress": {"index": "StatusTimeIndex", "period": None, "reached": None},
            },
        )
    )
    # When a query names two statuses and two fields
    client(pool).query(
        status=["draft", "approved"], fields=["key", "title"], since="2026-01-01", limit=5
    )
    # Then both statuses are sent, the fields joined
    url = pool.sent[0]["url"]
    assert "status=draft&status=approved" in url
    assert "fields=key%2Ctitle" in url
    assert "limit=5" in url


def test_a_signing_client_signs_every_attempt_afresh() -> None:
    # Given a key's signing secret, and a server that is unavailable once
    master = b"m" * 32
    secret = signing_secret(master, "k1")
    pool = ScriptedPool(answer(503, problem(503)), answer(200, RECEIPT))
    policy = RetryPolicy(attempts=2, base_delay=0.01, sleep=lambda _: None)
    api = CacheSyncClient(
        "http://api.test", "csk_k1_x", retry=policy, pool=pool, signing_secret=secret
    )  # type: ignore[arg-type]
    # When it writes with an idempotency key (so the 503 is retried)
    api.put("changes/a b.json", {"a": 1}, idempotency_key="i-1")
    # Then each attempt verifies on the server's side, with its own nonce
    nonces: set[str] = set()
    for sent in pool.sent:
        headers = {name.lower(): value for name, value in sent["headers"].items()}
        url = urllib3.util.parse_url(sent["url"])
        verifier = SignatureVerifier(master, Remembered(), clock=time.time)
        verifier.verify("k1", sent["method"], url.path or "", [], headers, sent["body"])
        nonces.add(headers["x-cachesync-nonce"])
    assert len(nonces) == 2


class Remembered:
    """A nonce store that has seen nothing (each attempt is checked by a verifier of its own)."""

    def __init__(self) -> None:
        self.nonces: list[tuple[str, str, int]] = []

    def remember(self, key_id: str, nonce: str, expires_at: int) -> bool:
        self.nonces.append((key_id, nonce, expires_at))
        return True


BULK_ANSWER = {
    "items": [{"index": 0, "key": "k", "op": "put", "status": 200, "receipt": RECEIPT}],
    "succeeded": 1,
    "failed": 0,
}


def test_a_bulk_is_repeated_only_when_every_item_has_an_idempotency_key() -> None:
    # Given a bulk whose connection broke after it was sent, twice: once with an item lacking an
    # idempotency key, once with keys on every item
    def broken_then_answered() -> ScriptedPool:
        reset = urllib3.exceptions.ProtocolError("connection reset")
        return ScriptedPool(reset, answer(200, BULK_ANSWER))

    partly, fully = broken_then_answered(), broken_then_answered()
    put = {"op": "put", "key": "k", "document": {"a": 1}, "idempotency_key": "i-1"}
    # When each is sent
    with pytest.raises(ApiConnectionError):
        client(partly).bulk([put, {"op": "delete", "key": "other"}])
    result = client(fully).bulk([put])
    # Then only the fully keyed one was repeated; it went as JSON without absent fields
    assert (len(partly.sent), len(fully.sent)) == (1, 2)
    assert result.items[0].receipt is not None
    assert result.failures == []
    sent = fully.sent[-1]
    assert (sent["method"], sent["url"]) == ("POST", "http://api.test/v1/documents/bulk")
    assert json.loads(sent["body"]) == {"items": [put]}
    assert json.loads(partly.sent[0]["body"])["items"][1] == {"op": "delete", "key": "other"}
