"""Query planning: the GSI, the periods of the window and the filters of a query."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cachesync.documents import DocumentKind
from cachesync.exceptions import InvalidQueryError
from cachesync.index_models import IndexQuery
from cachesync.index_schema import CUSTOMER_TIME_INDEX, STATUS_TIME_INDEX, TIME_RANGE_INDEX
from cachesync.ordering import format_time
from cachesync.stores.index_query_plan import CLOCK_SLACK, next_position, plan_query

NOW = datetime(2026, 3, 15, 9, 0, tzinfo=UTC)
JAN = datetime(2026, 1, 10, tzinfo=UTC)


def test_a_customer_query_uses_the_customer_index_and_filters_status() -> None:
    # Given a query by customer (mixed case) and status over two years
    query = IndexQuery(customer=" ACME ", status="approved", since=JAN - timedelta(days=365))
    # When it is planned
    plan = plan_query(query, NOW, None)
    # Then the customer index serves it, newest year first, and the status filters
    assert plan.index is CUSTOMER_TIME_INDEX
    assert plan.partitions == ("acme#2026", "acme#2025")
    request = plan.period_request(0)
    assert request["IndexName"] == "CustomerTimeIndex"
    assert request["ExpressionAttributeValues"][":p"] == {"S": "acme#2026"}
    assert "#f1 = :f1" in request["FilterExpression"]
    assert request["ExpressionAttributeNames"]["#f1"] == "status"
    assert request["ScanIndexForward"] is False


def test_a_status_query_uses_the_status_index_by_month() -> None:
    # Given a query by status alone, ascending, from January
    query = IndexQuery(status="draft", since=JAN, order="asc")
    # When it is planned
    plan = plan_query(query, NOW, None)
    # Then the status index serves it, one partition per month, oldest first
    assert plan.index is STATUS_TIME_INDEX
    assert plan.partitions == ("draft#2026-01", "draft#2026-02", "draft#2026-03")
    assert plan.ascending


def test_a_plain_query_uses_the_time_index_with_the_default_window() -> None:
    # Given a query with no customer, status or window
    query = IndexQuery(kind=DocumentKind.CHANGE)
    # When it is planned
    plan = plan_query(query, NOW, None)
    # Then the time index serves the last 365 days (and a day ahead), newest month first
    assert plan.index is TIME_RANGE_INDEX
    assert plan.since == format_time(NOW - timedelta(days=365))
    assert plan.until == format_time(NOW + CLOCK_SLACK)
    assert plan.partitions[0] == "2026-03"
    assert plan.partitions[-1] == "2025-03"
    assert len(plan.partitions) == 13
    # And expired entries and other kinds are filtered out
    request = plan.period_request(0)
    assert request["FilterExpression"] == ("(attribute_not_exists(#f0) OR #f0 > :f0) AND #f1 = :f1")
    assert request["ExpressionAttributeValues"][":f0"] == {"N": str(int(NOW.timestamp()))}
    assert request["ExpressionAttributeValues"][":f1"] == {"S": "change"}


def test_a_token_window_wins_over_the_moving_default() -> None:
    # Given the window of a first page planned a month earlier
    window = (format_time(JAN), format_time(JAN + timedelta(days=20)))
    # When the next page is planned now
    plan = plan_query(IndexQuery(), NOW, window)
    # Then the window has not moved
    assert (plan.since, plan.until) == window
    assert plan.partitions == ("2026-01",)


def test_the_next_page_starts_in_the_same_period_or_the_next() -> None:
    # Given a plan over three monthly periods
    plan = plan_query(IndexQuery(since=JAN, until=NOW), NOW, None)
    # When / Then a page cut inside a period resumes there, an exhausted period at the next,
    # and the last exhausted period ends the query
    assert next_position(plan, 1, period_done=False) == 1
    assert next_position(plan, 1, period_done=True) == 2
    assert next_position(plan, 2, period_done=True) is None


def test_several_statuses_are_lanes_of_the_status_index() -> None:
    # Given a query for any of two statuses, without a customer
    query = IndexQuery(statuses=("approved", "draft"), since=JAN, until=NOW)
    # When it is planned
    plan = plan_query(query, NOW, None)
    # Then the status index serves it, one lane per status in every period, newest period first
    assert plan.index.name == "StatusTimeIndex"
    assert plan.lanes == ("approved", "draft")
    assert plan.partitions[:2] == ("approved#2026-03", "draft#2026-03")
    assert plan.period_request(0, lane=1)["ExpressionAttributeValues"][":p"] == {
        "S": "draft#2026-03"
    }
    # and no filter on the status is needed
    assert all(condition.attribute != "status" for condition in plan.filters)


def test_several_statuses_with_a_customer_filter_the_customer_index() -> None:
    # Given a query for any of two statuses of one customer
    query = IndexQuery(customer="acme", statuses=("approved", "draft"), since=JAN, until=NOW)
    # When it is planned
    plan = plan_query(query, NOW, None)
    request = plan.period_request(0)
    # Then the customer index serves it and an IN filter keeps either status
    assert plan.index.name == "CustomerTimeIndex"
    assert plan.lanes == ("acme",)
    assert "#f1 IN (:f1_0, :f1_1)" in request["FilterExpression"]
    assert request["ExpressionAttributeValues"][":f1_1"] == {"S": "draft"}


def test_a_tenancy_of_one_customer_reads_that_customers_partition() -> None:
    # Given a query limited to one customer, without a customer parameter
    query = IndexQuery(within_customers=("acme",), status="approved")
    # When it is planned
    plan = plan_query(query, NOW, None)
    # Then it is a customer query (status filtered), with no further filter on customers
    assert plan.index.name == "CustomerTimeIndex"
    assert plan.partitions[0] == "acme#2026"
    assert all(condition.attribute != "customers" for condition in plan.filters)


def test_a_tenancy_of_several_customers_filters_on_the_named_customers() -> None:
    # Given a query limited to two customers
    query = IndexQuery(within_customers=("acme", "globex"))
    # When it is planned
    request = plan_query(query, NOW, None).period_request(0)
    # Then any document naming one of them passes the filter
    assert "(contains(#f1, :f1_0) OR contains(#f1, :f1_1))" in request["FilterExpression"]
    assert request["ExpressionAttributeNames"]["#f1"] == "customers"


def test_a_customer_outside_the_tenancy_is_refused() -> None:
    # Given / When / Then a customer outside the query's tenancy cannot be planned
    with pytest.raises(InvalidQueryError, match="outside"):
        IndexQuery(customer="globex", within_customers=("acme",))
