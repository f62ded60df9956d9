"""Analytics from the change feed's counters, scoped to the caller's customers (no server)."""

from __future__ import annotations

from datetime import date

import pytest

from cachesync.analytics import AnalyticsReader, AnalyticsWindow, as_csv
from cachesync.exceptions import InvalidRequestError
from cachesync.stores.dynamodb_change_feed import LagRow, VolumeRow


class CountersInMemory:
    """The counters a change feed wrote, without DynamoDB."""

    def __init__(self, volume: list[VolumeRow], lag: list[LagRow]) -> None:
        self._volume, self._lag = volume, lag

    def volume(self, since_day: str, until_day: str) -> list[VolumeRow]:
        return [row for row in self._volume if since_day <= row.day <= until_day]

    def lag(self, since_day: str, until_day: str) -> list[LagRow]:
        return [row for row in self._lag if since_day <= row.day <= until_day]


def row(day: str, customer: str, status: str, **counters: int) -> VolumeRow:
    named = {name.replace("from_", "from:"): value for name, value in counters.items()}
    return VolumeRow(day=day, customer=customer, status=status, kind="change", counters=named)


SOURCE = CountersInMemory(
    [
        row("2026-11-01", "acme", "approved", created=3, left=1),
        row("2026-11-01", "globex", "approved", created=5),
        row("2026-11-02", "acme", "completed", updated=1, entered=1, from_approved=1),
        row("2026-11-02", "globex", "completed", updated=2, entered=2, from_approved=2),
        row("2026-12-05", "acme", "approved", created=9),
    ],
    [LagRow(day="2026-11-01", counters={"lag_count": 4, "lag_ms_sum": 1000, "lag_le_100": 3})],
)
NOVEMBER = AnalyticsWindow(since=date(2026, 11, 1), until=date(2026, 11, 30))


def test_a_restricted_caller_sees_only_its_customers_figures() -> None:
    # Given counters of acme and globex
    reader = AnalyticsReader(SOURCE)
    # When acme's key asks for November's volume by day
    days = reader.volume_by_day(NOVEMBER, ["acme"])
    # Then only acme's changes are counted, per day and status, and December is outside
    assert [(d.day, d.status, d.created, d.entered) for d in days] == [
        (date(2026, 11, 1), "approved", 3, 0),
        (date(2026, 11, 2), "completed", 0, 1),
    ]


def test_breakdowns_and_transitions_sum_the_window() -> None:
    # Given every customer visible
    reader = AnalyticsReader(SOURCE)
    # When the window is broken down by customer, and its transitions listed
    by_customer = reader.breakdown(NOVEMBER, None, "customer")
    transitions = reader.transitions(NOVEMBER, None)
    # Then each customer's totals and net change add up, busiest first
    assert [(b.key, b.created, b.updated, b.net) for b in by_customer] == [
        ("globex", 5, 2, 7),
        ("acme", 3, 1, 3),
    ]
    assert [(t.from_status, t.to_status, t.count) for t in transitions] == [
        ("approved", "completed", 3)
    ]


def test_sync_lag_reports_the_mean_and_the_histogram() -> None:
    # Given one day of lag samples
    (day,) = AnalyticsReader(SOURCE).sync_lag(NOVEMBER)
    # Then the mean is the sum over the count, and the buckets are all named
    assert day.mean_ms == 250
    assert day.buckets == {"le_100": 3, "le_1000": 0, "le_10000": 0, "le_60000": 0, "over": 0}


def test_csv_export_has_a_header_and_flattens_nested_values() -> None:
    # Given the lag report
    text = as_csv(AnalyticsReader(SOURCE).sync_lag(NOVEMBER))
    # Then it is CSV with one header and one row per day
    header, line = text.splitlines()
    assert header.split(",")[:3] == ["day", "count", "mean_ms"]
    assert "buckets.le_100" in header
    assert line.startswith("2026-11-01,4,250.0,")


@pytest.mark.parametrize(
    ("since", "until"),
    [(date(2026, 11, 2), date(2026, 11, 1)), (date(2024, 1, 1), date(2026, 1, 1))],
)
def test_a_backwards_or_too_long_window_is_refused(since: date, until: date) -> None:
    with pytest.raises(InvalidRequestError):
        AnalyticsWindow(since=since, until=until)
