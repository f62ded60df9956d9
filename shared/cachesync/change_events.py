"""Domain events from the index's change stream: what a document change means to subscribers.

The index table's stream (NEW_AND_OLD_IMAGES) shows every item write, most of which are not a
document change a subscriber cares about: a write-through first hides the entry behind a pending
marker (whose image keeps no status or title), link items follow their document, backfills
rewrite what is already there, and retries deliver a record again. So the feed does not compare
a record's two images. It keeps, per document, what it last *published* (:class:`Published`: the
snapshot subscribers were last told about, and the stream position it came from) and compares
each visible state the stream shows against that:

* a visible document where nothing (or a deletion) was published: ``document.created``;
* one that differs from the published snapshot: ``document.updated``, naming what changed;
* a tombstone where a document was published: ``document.deleted``;
* a pending marker, a link item, the same snapshot again, a record at or before the published
  position (a retry), a TTL removal: nothing.

Before the feed has published anything for a key (it started after the document was written),
the record's old image stands in for the published state when it is visible.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict

from cachesync.documents import DocumentKind
from cachesync.exceptions import InvalidEventError
from cachesync.index_models import WriteSource
from cachesync.index_schema import DOCUMENT_SORT_KEY, SORT_KEY, Attr, RecordType
from cachesync.ordering import parse_time

EVENT_ID_PREFIX: Final = "evt_"
# DynamoDB marks the removals its TTL process makes with this principal.
TTL_PRINCIPAL: Final = "dynamodb.amazonaws.com"
# The summary fields a subscriber filters and reacts on; "content" stands for a new body.
WATCHED_FIELDS: Final = ("status", "customers", "title", "kind")


class EventType(StrEnum):
    """The domain events the change feed publishes."""

    CREATED = "document.created"
    UPDATED = "document.updated"
    DELETED = "document.deleted"


class DocumentSnapshot(BaseModel):
    """A document as subscribers see it: its summary and the S3 version it came from."""

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
    source: WriteSource
    """Who indexed this version: an S3 event, a write-through, a backfill or a fallback read."""
    indexed_at: datetime | None = None
    """When the index took this version (the writer's clock)."""

    def changed_from(self, earlier: DocumentSnapshot) -> tuple[str, ...]:
        """The watched fields that differ from ``earlier``, then ``content`` if the body did."""
        changed = tuple(
            name for name in WATCHED_FIELDS if getattr(self, name) != getattr(earlier, name)
        )
        if (self.etag, self.version_id) != (earlier.etag, earlier.version_id):
            changed += ("content",)
        return changed


class Published(BaseModel):
    """What the feed last published for one document key."""

    model_config = ConfigDict(frozen=True)

    snapshot: DocumentSnapshot | None
    """``None``: the last event published was its deletion."""
    sequence: int
    """The stream sequence number of the record it came from (retries come at or before it)."""


class DomainEvent(BaseModel):
    """One document change, as subscribers receive it."""

    model_config = ConfigDict(frozen=True)

    id: str
    """Stable across retries of the stream record: receivers deduplicate on it."""
    type: EventType
    occurred_at: datetime
    bucket: str
    key: str
    document: DocumentSnapshot | None
    """The document after the change (``None`` after a deletion)."""
    previous: DocumentSnapshot | None
    """The document before it, as last published (``None`` for a creation)."""
    changed: tuple[str, ...] = ()
    """For ``document.updated``: which of status, customers, title, kind and content changed."""


class StreamChange(BaseModel):
    """One index stream record, reduced to what the feed decides on (images deserialized)."""

    model_config = ConfigDict(frozen=True)

    event_name: Literal["INSERT", "MODIFY", "REMOVE"]
    sequence: int
    occurred_at: datetime
    keys: dict[str, Any]
    old_image: dict[str, Any] | None = None
    new_image: dict[str, Any] | None = None
    by_ttl: bool = False
    """Removed by DynamoDB's TTL process (retention or an expired tombstone), not by a writer."""


class Decision(BaseModel):
    """What one stream record means: the event to publish (if any) and the new published
    state (``None``: unchanged)."""

    model_config = ConfigDict(frozen=True)

    event: DomainEvent | None = None
    published: Published | None = None
    ignored_because: str | None = None


class _Hidden:
    """An image that tells nothing about the document (pending marker, no image)."""


HIDDEN: Final = _Hidden()
_Deleted = Literal["deleted"]
View = DocumentSnapshot | _Deleted | _Hidden


def view_of(image: dict[str, Any] | None) -> View:
    """What ``image`` (a document entry) shows subscribers: a snapshot, a deletion, or nothing."""
    if image is None:
        return HIDDEN
    record_type = image.get(Attr.RECORD_TYPE)
    if record_type == RecordType.TOMBSTONE:
        return "deleted"
    if record_type != RecordType.DOCUMENT:
        return HIDDEN
    try:
        return _snapshot(image)
    except (KeyError, TypeError, ValueError) as error:
        # Not an image the index writes (a field missing or mangled): the record's error.
        raise InvalidEventError(f"document image lacks or mangles {error}") from error


def _snapshot(image: dict[str, Any]) -> DocumentSnapshot:
    return DocumentSnapshot(
        bucket=image[Attr.BUCKET],
        key=image[Attr.KEY],
        kind=image[Attr.KIND],
        doc_id=image[Attr.DOC_ID],
        title=image.get(Attr.TITLE, ""),
        status=image[Attr.STATUS],
        customers=tuple(image.get(Attr.CUSTOMERS, ())),
        index_time=parse_time(image[Attr.INDEX_TIME]),
        etag=image[Attr.ETAG],
        version_id=image.get(Attr.VERSION_ID),
        size=int(image[Attr.SIZE]),
        s3_last_modified=parse_time(image[Attr.S3_LAST_MODIFIED]),
        source=image[Attr.SOURCE],
        indexed_at=parse_time(image[Attr.UPDATED_AT]) if image.get(Attr.UPDATED_AT) else None,
    )


def event_id(bucket: str, key: str, sequence: int) -> str:
    """The id of the event a stream record produced: the same on every retry of the record."""
    digest = hashlib.sha256(f"{bucket}/{key}\n{sequence}".encode()).hexdigest()
    return f"{EVENT_ID_PREFIX}{digest[:32]}"


def decide(change: StreamChange, published: Published | None) -> Decision:
    """The event (if any) that ``change`` means, given what was last ``published`` for its key."""
    if change.keys.get(SORT_KEY) != DOCUMENT_SORT_KEY:
        return Decision(ignored_because="link item")
    if published is not None and change.sequence <= published.sequence:
        return Decision(ignored_because="already applied (a retried record)")
    if change.event_name == "REMOVE":
        if change.by_ttl:
            return Decision(ignored_because="removed by TTL (retention or tombstone expiry)")
        if isinstance(view_of(change.old_image), _Hidden):
            # A write-through on a key with no entry rolled back: it deletes its own marker.
            return Decision(ignored_because="pending marker removed (a rolled-back write)")
        new: View = "deleted"
    else:
        new = view_of(change.new_image)
    if isinstance(new, _Hidden):
        return Decision(ignored_because="pending marker")
    before = _baseline(change, published)
    if isinstance(new, DocumentSnapshot):
        return _document_shown(change, new, before)
    if not isinstance(before, DocumentSnapshot):
        return Decision(ignored_because="deleted, and no document was published")
    return _publish(change, EventType.DELETED, None, before, ())


def _baseline(change: StreamChange, published: Published | None) -> DocumentSnapshot | None:
    """What subscribers last saw: the published snapshot, else the old image when visible."""
    if published is not None:
        return published.snapshot
    old = view_of(change.old_image)
    return old if isinstance(old, DocumentSnapshot) else None


def _document_shown(
    change: StreamChange, new: DocumentSnapshot, before: DocumentSnapshot | None
) -> Decision:
    if before is None:
        return _publish(change, EventType.CREATED, new, None, ())
    changed = new.changed_from(before)
    if not changed:
        return Decision(ignored_because="a rewrite that changes nothing")
    return _publish(change, EventType.UPDATED, new, before, changed)


def _publish(
    change: StreamChange,
    event_type: EventType,
    document: DocumentSnapshot | None,
    previous: DocumentSnapshot | None,
    changed: tuple[str, ...],
) -> Decision:
    shown = document or previous
    assert shown is not None  # a deletion always has the document it deletes
    event = DomainEvent(
        id=event_id(shown.bucket, shown.key, change.sequence),
        type=event_type,
        occurred_at=change.occurred_at,
        bucket=shown.bucket,
        key=shown.key,
        document=document,
        previous=previous,
        changed=changed,
    )
    return Decision(event=event, published=Published(snapshot=document, sequence=change.sequence))
