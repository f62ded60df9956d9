"""Query parameters of the API: dates, windows, statuses, projections and ETags."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cachesync.api.models import SUMMARY_FIELDS
from cachesync.api.parameters import (
    MAX_WINDOW,
    etag_matches,
    parse_moment,
    parse_projection,
    parse_statuses,
    parse_window,
)
from cachesync.api.problems import ApiProblemError
from cachesync.index_models import DocumentSummary

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T10:30:00", datetime(2026, 3, 1, 10, 30, tzinfo=UTC)),
        ("2026-03-01T10:30:00Z", datetime(2026, 3, 1, 10, 30, tzinfo=UTC)),
        ("2026-03-01T12:30:00+02:00", datetime(2026, 3, 1, 10, 30, tzinfo=UTC)),
    ],
)
def test_dates_and_date_times_are_read_as_utc_instants(text: str, moment: datetime) -> None:
    # Given / When / Then
    assert parse_moment("since", text) == moment


@pytest.mark.parametrize(
    ("since", "until", "reason"),
    [
        ("yesterday", None, "since is not"),
        ("2026-03-02", "2026-03-01", "before until"),
        ("2026-03-01", "2026-03-01", "before until"),
        ("2010-01-01", None, "window spans"),
    ],
)
def test_bad_windows_are_400s_saying_why(since: str, until: str | None, reason: str) -> None:
    # Given / When / Then
    with pytest.raises(ApiProblemError, match=reason) as raised:
        parse_window(since, until, NOW)
    assert raised.value.problem.status == 400


def test_a_window_of_exactly_the_maximum_is_accepted() -> None:
    # Given / When / Then
    start = NOW - MAX_WINDOW
    assert parse_window(start.isoformat(), NOW.isoformat(), NOW) == (start, NOW)
    assert parse_window(None, None, NOW) == (None, None)


def test_statuses_are_deduplicated_sorted_and_checked() -> None:
    # Given / When / Then
    assert parse_statuses(["published", " draft", "published", ""]) == ["draft", "published"]
    with pytest.raises(ApiProblemError, match="aproved"):
        parse_statuses(["approved", "aproved"])


def test_projections_keep_the_order_given_and_refuse_unknown_fields() -> None:
    # Given / When / Then
    assert parse_projection("status, key,status") == ("status", "key")
    assert "title" in parse_projection(None)
    with pytest.raises(ApiProblemError, match="body"):
        parse_projection("key,body")
    with pytest.raises(ApiProblemError, match="none given"):
        parse_projection(" , ")


@pytest.mark.parametrize(
    ("header", "matches"),
    [('"abc"', True), ('W/"abc"', True), ('"x", "abc"', True), ("*", True), ('"abd"', False)],
)
def test_if_none_match_uses_weak_comparison(header: str, matches: bool) -> None:
    # Given / When / Then
    assert etag_matches(header, '"abc"') is matches


def test_every_projectable_field_is_a_field_of_the_index_summary() -> None:
    # Given the API's public list of result fields and the index's summary model
    # When they are compared
    missing = [name for name in SUMMARY_FIELDS if name not in DocumentSummary.model_fields]
    # Then the API promises nothing the index cannot give (projection would fail on it)
    assert missing == []
