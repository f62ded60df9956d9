"""/v1/analytics over real HTTP: counters the change feed wrote from the index's real stream."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from cachesync.api.keys import Scope
from cachesync.local import LocalStack
from tests.integration.api_feed import feed_the_stream
from tests.integration.api_http import ApiWorld, api_world, change, index_document

__all__ = ["api_world"]  # the module's server fixture

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def fed(api_world: ApiWorld, local_stack: LocalStack) -> ApiWorld:
    """Given two acme changes (one moved from approved to completed) and one globex change,
    indexed and run through the change feed."""
    index_document(api_world, "changes/a1.json", change("A1", modified=NOW))
    index_document(api_world, "changes/a2.json", change("A2", modified=NOW))
    index_document(api_world, "changes/g1.json", change("G1", customers=("globex",), modified=NOW))
    index_document(api_world, "changes/a1.json", change("A1", status="completed", modified=NOW))
    assert feed_the_stream(api_world, local_stack) >= 4
    return api_world


def test_volume_per_day_counts_every_customer_for_an_unrestricted_key(fed: ApiWorld) -> None:
    # When an unrestricted key asks for the last 30 days (the default window)
    reply = fed.get("/v1/analytics/volume", fed.key())
    # Then today's rows count three creations as approved and one move to completed
    assert reply.status == 200, reply.body
    days = reply.json()["days"]
    by_status = {row["status"]: row for row in days}
    assert by_status["approved"]["created"] == 3
    assert by_status["approved"]["left"] == 1
    assert by_status["completed"]["entered"] == 1
    assert {row["day"] for row in days} == {NOW.date().isoformat()}


def test_a_restricted_key_sees_only_its_customers_and_is_refused_others(fed: ApiWorld) -> None:
    # Given a key for acme only
    acme = fed.key(("acme",))
    # When it asks for the breakdown by customer, and for globex's volume
    breakdown = fed.get("/v1/analytics/breakdown?by=customer", acme)
    refused = fed.get("/v1/analytics/volume?customer=globex", acme)
    # Then only acme is counted, and asking for globex is a 403 problem
    assert breakdown.status == 200
    assert [(r["key"], r["created"], r["net"]) for r in breakdown.json()["rows"]] == [
        ("acme", 2, 2)
    ]
    assert refused.status == 403
    assert refused.headers["content-type"] == "application/problem+json"
    # And the sync lag, which counts every customer's changes together, is not for it
    assert fed.get("/v1/analytics/sync-lag", acme).status == 403


def test_transitions_and_csv_export(fed: ApiWorld) -> None:
    key = fed.key()
    # When the transitions are asked for as JSON and as CSV
    as_json = fed.get("/v1/analytics/transitions", key)
    as_csv = fed.get("/v1/analytics/transitions?format=csv", key)
    # Then both say one document moved from approved to completed
    assert as_json.json()["transitions"] == [
        {"from_status": "approved", "to_status": "completed", "count": 1}
    ]
    assert as_csv.status == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.body.decode())))
    assert rows == [{"from_status": "approved", "to_status": "completed", "count": "1"}]


def test_sync_lag_reports_the_changes_s3_events_indexed(fed: ApiWorld) -> None:
    # When the sync lag is asked for
    days = fed.get("/v1/analytics/sync-lag", fed.key()).json()["days"]
    # Then today's four indexed versions are counted, each in a bucket
    (today,) = days
    assert today["count"] == 4
    assert sum(today["buckets"].values()) == 4


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("since=2026-13-01", 400),
        ("since=2026-11-10&until=2026-11-01", 400),
        ("since=2024-01-01&until=2026-01-01", 400),
        ("format=xml", 400),
    ],
)
def test_bad_windows_and_formats_are_400_problems(fed: ApiWorld, query: str, status: int) -> None:
    reply = fed.get(f"/v1/analytics/volume?{query}", fed.key())
    assert reply.status == status, reply.body
    assert reply.json()["status"] == status


def test_analytics_need_a_key_with_the_read_scope(fed: ApiWorld) -> None:
    # A caller without a key, and one with only the write scope
    anonymous = fed.get("/v1/analytics/volume")
    writer = fed.get("/v1/analytics/volume", fed.key(scopes=(Scope.WRITE,)))
    assert anonymous.status == 401
    assert writer.status == 403
