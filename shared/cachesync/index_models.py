"""What goes into the index and what comes out of it.

These models are the index store's public contract; the DynamoDB item layout stays inside
``stores/`` (``stores/index_items.py`` maps it) and never leaks into a response.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cachesync.documents import DocumentKind, ParsedDocument
from cachesync.exceptions import InvalidQueryError
from cachesync.ordering import OrderingFacts


class WriteSource(StrEnum):
    """Who wrote an index entry."""

    EVENT = "event"
    BACKFILL = "backfill"
    WRITE_THROUGH = "write_through"
    FALLBACK_READ = "fallback_read"


class ObjectVersion(BaseModel):
    """One version of one S3 object, as S3 described it."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    etag: str
    version_id: str | None = None
    size: int
    last_modified: datetime
    sequencer: str | None = None
    """Normalised sequencer of the event that announced this version, if any."""

    def ordering(self) -> OrderingFacts:
        """The facts that order this version against other states of the key."""
        return OrderingFacts(sequencer=self.sequencer, s3_time=self.last_modified, etag=self.etag)


class IndexEntry(BaseModel):
    """A document to index: the S3 version it came from and its parsed content."""

    model_config = ConfigDict(frozen=True)

    version: ObjectVersion
    document: ParsedDocument
    source: WriteSource


class Tombstone(BaseModel):
    """The record that ``bucket/key`` was deleted, so a late stale write can be refused."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    deleted_at: datetime
    """S3's time of the deletion (the event time)."""
    sequencer: str | None = None
    source: WriteSource

    def ordering(self) -> OrderingFacts:
        """The facts that order this deletion against other states of the key."""
        return OrderingFacts(sequencer=self.sequencer, s3_time=self.deleted_at, etag=None)


class WriteOutcome(StrEnum):
    """What a guarded write did."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    """The index already holds exactly this state (a redelivered event)."""
    STALE = "stale"
    """The index holds a newer state; the write was refused."""


class StoredState(BaseModel):
    """The ordering-relevant state of a key in the index, tombstones included."""

    model_config = ConfigDict(frozen=True)

    is_tombstone: bool
    is_pending: bool = False
    """A write-through holds the entry (its ordering facts are those of the entry it replaced)."""
    pending_since: datetime | None = None
    ordering: OrderingFacts
    version_id: str | None
    customers: tuple[str, ...]
    kind: str | None = None
    index_time: datetime | None = None
    revision_token: str
    """Changes with every write: a condition on it proves nobody wrote in between."""
    expires_at: datetime | None


class PendingWrite(BaseModel):
    """A write-through's claim on an index entry: what to restore, and the marker to commit over."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    marker: StoredState
    """The pending marker as written; commit and rollback are conditioned on it."""
    previous: StoredState | None
    previous_item: dict[str, Any] | None
    """The entry the marker replaced, restored verbatim on rollback."""


class WriteResult(BaseModel):
    """The outcome of a guarded write, and the state it replaced or lost to."""

    model_config = ConfigDict(frozen=True)

    outcome: WriteOutcome
    previous: StoredState | None = None


class DocumentSummary(BaseModel):
    """One document as a query returns it (no body)."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    kind: DocumentKind
    doc_id: str
    title: str
    status: str
    customers: tuple[str, ...]
    index_time: datetime
    etag: str
    version_id: str | None
    size: int
    s3_last_modified: datetime
    expires_at: datetime | None


class IndexedDocument(DocumentSummary):
    """One document as a get returns it: the summary plus body and provenance."""

    body: str | None
    """The document's JSON, or ``None`` when it was too large for the index (fetch from S3)."""
    body_in_s3: bool
    sequencer: str | None
    source: WriteSource
    updated_at: datetime


SortOrder = Literal["asc", "desc"]


class IndexQuery(BaseModel):
    """A query by time range, optionally by customer or status, and by document kind.

    With a customer the CustomerTimeIndex serves it (a status then filters); with only a status the
    StatusTimeIndex; otherwise the TimeRangeIndex. ``since``/``until`` bound the document's index
    time; when omitted the window is :data:`DEFAULT_WINDOW_DAYS` days back from now.
    """

    model_config = ConfigDict(frozen=True)

    customer: str | None = None
    status: str | None = None
    statuses: tuple[str, ...] = ()
    """Any of these statuses (two or more; one goes in ``status``): one lane of the status index
    per status, merged in time order (with a customer: a filter on the customer index)."""
    within_customers: tuple[str, ...] | None = None
    """Only documents naming one of these customers (an API key's tenancy; ``None``: any)."""
    kind: DocumentKind | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(default=50, ge=1, le=1000)
    order: SortOrder = "desc"
    next_token: str | None = None

    @model_validator(mode="after")
    def _window_is_ordered(self) -> IndexQuery:
        if self.since and self.until and self.since > self.until:
            raise InvalidQueryError(f"since ({self.since}) is after until ({self.until})")
        if self.status is not None and self.statuses:
            raise InvalidQueryError("give one status in status, or several in statuses")
        if self.within_customers is not None and not self.within_customers:
            raise InvalidQueryError("within_customers names no customer")
        if (
            self.customer is not None
            and self.within_customers is not None
            and self.customer.strip().lower() not in self.within_customers
        ):
            raise InvalidQueryError(f"customer {self.customer!r} is outside within_customers")
        return self


DEFAULT_WINDOW_DAYS = 365


class QueryPage(BaseModel):
    """One page of query results and the token for the next page (``None``: no more)."""

    model_config = ConfigDict(frozen=True)

    items: list[DocumentSummary]
    next_token: str | None
