"""The schema module: GSIs, time periods and the CreateTable request derived from it."""

from __future__ import annotations

from datetime import UTC, datetime

from cachesync.index_schema import (
    CUSTOMER_TIME_INDEX,
    GLOBAL_INDEXES,
    PARTITION_KEY,
    SORT_KEY,
    STATUS_TIME_INDEX,
    SUMMARY_ATTRIBUTES,
    TIME_RANGE_INDEX,
    create_table_request,
)


def test_the_three_gsis_are_named_as_the_product_documents() -> None:
    assert [index.name for index in GLOBAL_INDEXES] == [
        "TimeRangeIndex",
        "CustomerTimeIndex",
        "StatusTimeIndex",
    ]


def test_create_table_request_declares_every_key_attribute_once() -> None:
    # Given the CreateTable request
    request = create_table_request("t")
    declared = [a["AttributeName"] for a in request["AttributeDefinitions"]]
    # Then every table and GSI key attribute is declared exactly once, as a string
    expected = {PARTITION_KEY, SORT_KEY}
    for index in GLOBAL_INDEXES:
        expected |= {index.partition_key, index.sort_key}
    assert sorted(declared) == sorted(expected)
    assert {a["AttributeType"] for a in request["AttributeDefinitions"]} == {"S"}
    # And each GSI projects the summary attributes only (no body)
    for gsi in request["GlobalSecondaryIndexes"]:
        assert gsi["Projection"]["NonKeyAttributes"] == list(SUMMARY_ATTRIBUTES)


def test_periods_between_spans_months_across_years() -> None:
    since = datetime(2025, 11, 15, tzinfo=UTC)
    until = datetime(2026, 2, 1, tzinfo=UTC)
    assert TIME_RANGE_INDEX.periods_between(since, until) == [
        "2025-11",
        "2025-12",
        "2026-01",
        "2026-02",
    ]
    assert CUSTOMER_TIME_INDEX.periods_between(since, until) == ["2025", "2026"]
    assert STATUS_TIME_INDEX.period_of(until) == "2026-02"


def test_a_ten_year_window_is_120_monthly_periods() -> None:
    since = datetime(2016, 1, 1, tzinfo=UTC)
    until = datetime(2025, 12, 31, tzinfo=UTC)
    assert len(TIME_RANGE_INDEX.periods_between(since, until)) == 120
    assert len(CUSTOMER_TIME_INDEX.periods_between(since, until)) == 10
