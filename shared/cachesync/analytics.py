"""Analytics read from the change feed's counters: volume by day, breakdowns, transitions, lag.

Every figure is a sum of counters the change feed wrote (``change_feed_schema.py``), restricted
to the customers the caller may see: a key limited to some customers never learns about the
others' documents, not even their number.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cachesync.change_feed_schema import LAG_BUCKETS_MS, FeedAttr
from cachesync.exceptions import InvalidRequestError
from cachesync.stores.dynamodb_change_feed import LagRow, VolumeRow

# A window is read one month partition at a time: a year is 12 queries.
MAX_WINDOW_DAYS = 366
_ACTIVITY = (FeedAttr.CREATED, FeedAttr.UPDATED, FeedAttr.DELETED, FeedAttr.ENTERED, FeedAttr.LEFT)


class AnalyticsSource(Protocol):
    """Where the counters are (``DynamoDBChangeFeedStore``)."""

    def volume(self, since_day: str, until_day: str) -> list[VolumeRow]:
        """The volume rows of the days in the window (inclusive)."""
        ...

    def lag(self, since_day: str, until_day: str) -> list[LagRow]:
        """The sync-lag rows of the days in the window (inclusive)."""
        ...


class AnalyticsWindow(BaseModel):
    """Which days, customers and kind a report covers."""

    model_config = ConfigDict(frozen=True)

    since: date
    until: date
    """Inclusive."""
    customers: tuple[str, ...] | None = None
    """Only these customers (``None``: every customer the caller may see)."""
    kind: str | None = None

    @model_validator(mode="after")
    def _bounded(self) -> AnalyticsWindow:
        if self.until < self.since:
            raise InvalidRequestError("until is before since", "until")
        if (self.until - self.since).days + 1 > MAX_WINDOW_DAYS:
            raise InvalidRequestError(f"a window is at most {MAX_WINDOW_DAYS} days", "since")
        return self


class Activity(BaseModel):
    """Counts of document changes."""

    created: int = 0
    updated: int = 0
    deleted: int = 0
    entered: int = 0
    """Documents that moved into the status (or customer, or kind) of the row."""
    left: int = 0

    def add(self, counters: dict[str, int]) -> None:
        """Add a counter item's values."""
        for name in _ACTIVITY:
            setattr(self, name, getattr(self, name) + counters.get(name, 0))


class DailyVolume(Activity):
    """One day and status: what happened to documents in it."""

    day: date
    status: str


class Breakdown(Activity):
    """Totals of the window for one status or customer."""

    key: str
    net: int = 0
    """``created + entered - left - deleted``: how many more documents it holds than before."""


class Transition(BaseModel):
    """Documents that moved from one status to another in the window (per customer naming)."""

    from_status: str
    to_status: str
    count: int


class DailyLag(BaseModel):
    """One day's sync lag: how long S3's changes took to reach the index."""

    day: date
    count: int
    mean_ms: float
    buckets: dict[str, int] = Field(description="Changes per lag bucket, e.g. le_1000, over")


class AnalyticsReader:
    """Answers analytics questions for one caller's customers."""

    def __init__(self, source: AnalyticsSource) -> None:
        self._source = source

    def volume_by_day(
        self, window: AnalyticsWindow, visible: Sequence[str] | None
    ) -> list[DailyVolume]:
        """Per day and status, summed over the customers shown, oldest day first."""
        days: dict[tuple[date, str], DailyVolume] = {}
        for row in self._rows(window, visible):
            day = date.fromisoformat(row.day)
            entry = days.setdefault((day, row.status), DailyVolume(day=day, status=row.status))
            entry.add(row.counters)
        return [days[key] for key in sorted(days)]

    def breakdown(
        self,
        window: AnalyticsWindow,
        visible: Sequence[str] | None,
        by: Literal["status", "customer", "kind"],
    ) -> list[Breakdown]:
        """Totals of the window per status, customer or kind, largest activity first."""
        totals: dict[str, Breakdown] = {}
        for row in self._rows(window, visible):
            key = getattr(row, by)
            entry = totals.setdefault(key, Breakdown(key=key))
            entry.add(row.counters)
        for entry in totals.values():
            entry.net = entry.created + entry.entered - entry.left - entry.deleted
        return sorted(totals.values(), key=lambda b: (-(b.created + b.updated + b.deleted), b.key))

    def transitions(
        self, window: AnalyticsWindow, visible: Sequence[str] | None
    ) -> list[Transition]:
        """Status transitions of the window, most frequent first."""
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for row in self._rows(window, visible):
            for name, value in row.counters.items():
                if name.startswith(FeedAttr.FROM_PREFIX):
                    counts[(name.removeprefix(FeedAttr.FROM_PREFIX), row.status)] += value
        return [
            Transition(from_status=source, to_status=target, count=count)
            for (source, target), count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        ]

    def sync_lag(self, window: AnalyticsWindow) -> list[DailyLag]:
        """Per day, the sync lag of the changes S3 events brought (not per customer: lag is the
        pipeline's, not a document's)."""
        result: list[DailyLag] = []
        for row in sorted(self._source.lag(_day(window.since), _day(window.until)), key=_by_day):
            count = row.counters.get(FeedAttr.LAG_COUNT, 0)
            buckets = {
                f"le_{bound}": row.counters.get(f"{FeedAttr.LAG_LE_PREFIX}{bound}", 0)
                for bound in LAG_BUCKETS_MS
            }
            buckets["over"] = row.counters.get(FeedAttr.LAG_OVER, 0)
            mean = row.counters.get(FeedAttr.LAG_MS_SUM, 0) / count if count else 0.0
            result.append(
                DailyLag(
                    day=date.fromisoformat(row.day), count=count, mean_ms=mean, buckets=buckets
                )
            )
        return result

    def _rows(self, window: AnalyticsWindow, visible: Sequence[str] | None) -> list[VolumeRow]:
        wanted = set(window.customers) if window.customers is not None else None
        allowed = set(visible) if visible is not None else None
        return [
            row
            for row in self._source.volume(_day(window.since), _day(window.until))
            if (allowed is None or row.customer in allowed)
            and (wanted is None or row.customer in wanted)
            and (window.kind is None or row.kind == window.kind)
        ]


def as_csv(rows: Iterable[BaseModel]) -> str:
    """Rows as CSV with a header (nested values as their JSON), for spreadsheet export."""
    listed = [row.model_dump(mode="json") for row in rows]
    if not listed:
        return ""
    flat = [
        {
            **{k: v for k, v in row.items() if not isinstance(v, dict)},
            **{
                f"{k}.{inner}": value
                for k, v in row.items()
                if isinstance(v, dict)
                for inner, value in v.items()
            },
        }
        for row in listed
    ]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(flat[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return out.getvalue()


def default_window(today: date, days: int = 30) -> tuple[date, date]:
    """The last ``days`` days up to ``today``, inclusive."""
    return today - timedelta(days=days - 1), today


def _day(value: date) -> str:
    return value.isoformat()


def _by_day(row: LagRow) -> str:
    return row.day
