"""What each domain event adds to the analytics: counters per day, customer, status and kind.

Pure: the change feed store writes these increments in the same transaction as the published
state (``change_feed_schema.py``), so each event counts exactly once.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from cachesync.change_events import DocumentSnapshot, DomainEvent, EventType
from cachesync.change_feed_schema import LAG_BUCKETS_MS, NO_CUSTOMER, FeedAttr
from cachesync.index_models import WriteSource


class VolumeIncrement(BaseModel):
    """Counters to add to one (day, customer, status, kind) item."""

    model_config = ConfigDict(frozen=True)

    day: str
    customer: str
    status: str
    kind: str
    adds: dict[str, int]


class LagIncrement(BaseModel):
    """One sync-lag sample of a day: how long S3's change took to show in the index."""

    model_config = ConfigDict(frozen=True)

    day: str
    lag_ms: int

    def adds(self) -> dict[str, int]:
        """The counters this sample adds: count, sum and its histogram bucket."""
        bucket = next(
            (
                f"{FeedAttr.LAG_LE_PREFIX}{bound}"
                for bound in LAG_BUCKETS_MS
                if self.lag_ms <= bound
            ),
            FeedAttr.LAG_OVER,
        )
        return {FeedAttr.LAG_COUNT: 1, FeedAttr.LAG_MS_SUM: self.lag_ms, bucket: 1}


def day_of(moment: datetime) -> str:
    """The UTC day (``YYYY-MM-DD``) a moment is counted under."""
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"


def volume_increments(event: DomainEvent) -> list[VolumeIncrement]:
    """The counters ``event`` adds, merged per (customer, status, kind) cell it touches.

    Per cell, ``created + entered - left - deleted`` summed over all days is the number of
    documents in it now: a document that moves (another status or kind, or a customer added or
    dropped) leaves its old cells and enters its new ones; ``from:<status>`` counts the
    transitions of a customer's document from that status.
    """
    day = day_of(event.occurred_at)
    merged: dict[tuple[str, str, str], dict[str, int]] = {}

    def add(customer: str, snapshot: DocumentSnapshot, counters: dict[str, int]) -> None:
        into = merged.setdefault((customer, snapshot.status, snapshot.kind.value), {})
        for name, amount in counters.items():
            into[name] = into.get(name, 0) + amount

    new, old = event.document, event.previous
    if event.type is EventType.CREATED and new is not None:
        for customer in _customers(new):
            add(customer, new, {FeedAttr.CREATED: 1})
    elif event.type is EventType.DELETED and old is not None:
        for customer in _customers(old):
            add(customer, old, {FeedAttr.DELETED: 1})
    elif new is not None and old is not None:
        kept = set(_customers(old))
        for customer in _customers(new):
            counters = {FeedAttr.UPDATED: 1}
            if customer not in kept:
                counters[FeedAttr.ENTERED] = 1
            elif (new.status, new.kind) != (old.status, old.kind):
                counters[FeedAttr.ENTERED] = 1
                add(customer, old, {FeedAttr.LEFT: 1})
                if new.status != old.status:
                    counters[f"{FeedAttr.FROM_PREFIX}{old.status}"] = 1
            add(customer, new, counters)
        for customer in kept - set(_customers(new)):
            add(customer, old, {FeedAttr.LEFT: 1})
    return [
        VolumeIncrement(day=day, customer=customer, status=status, kind=kind, adds=adds)
        for (customer, status, kind), adds in sorted(merged.items())
    ]


def _customers(snapshot: DocumentSnapshot) -> tuple[str, ...]:
    return snapshot.customers or (NO_CUSTOMER,)


def lag_increment(event: DomainEvent) -> LagIncrement | None:
    """The sync lag ``event`` shows: from S3's LastModified to the moment the index took the
    version, for versions an S3 event brought (a backfill or a write-through says nothing about
    how far behind the event pipeline is)."""
    document = event.document
    if document is None or document.source is not WriteSource.EVENT:
        return None
    if document.indexed_at is None:
        return None
    lag = (document.indexed_at - document.s3_last_modified).total_seconds()
    if lag < 0:
        # A LastModified ahead of the indexer's clock: clock skew, not a lag.
        return None
    return LagIncrement(day=day_of(document.indexed_at), lag_ms=int(lag * 1000))
