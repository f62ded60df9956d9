"""Change events: what each index stream record means to subscribers, without a server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cachesync.change_events import (
    Decision,
    EventType,
    Published,
    StreamChange,
    decide,
    event_id,
    view_of,
)
from cachesync.documents import parse_document
from cachesync.index_models import IndexEntry, ObjectVersion, Tombstone, WriteSource
from cachesync.index_schema import PARTITION_KEY, SORT_KEY
from cachesync.stores.index_items import document_items, pending_item, tombstone_item

NOW = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
KEY = "changes/a.json"


def document(
    *,
    status: str = "approved",
    title: str = "Upgrade",
    customers: tuple[str, ...] = ("acme",),
    etag: str = "e1",
) -> dict[str, Any]:
    raw = json.dumps(
        {
            "object_type": "change",
            "change_id": "CHG-1",
            "status": status,
            "title": title,
            "customers": list(customers),
            "modified_at": NOW.isoformat(),
        }
    )
    version = ObjectVersion(
        bucket="docs", key=KEY, etag=etag, size=len(raw), last_modified=NOW, sequencer=None
    )
    parsed = parse_document(KEY, raw, s3_last_modified=NOW)
    entry = IndexEntry(version=version, document=parsed, source=WriteSource.EVENT)
    return document_items(entry, NOW).document


def tombstone() -> dict[str, Any]:
    return tombstone_item(
        Tombstone(bucket="docs", key=KEY, deleted_at=NOW, source=WriteSource.EVENT),
        NOW,
        timedelta(days=30),
    )


def pending(previous: dict[str, Any] | None) -> dict[str, Any]:
    return pending_item("docs", KEY, "put", previous, NOW)


def change(
    sequence: int,
    new: dict[str, Any] | None,
    old: dict[str, Any] | None = None,
    *,
    name: str | None = None,
    by_ttl: bool = False,
    sort_key: str = "doc",
) -> StreamChange:
    event_name = name or ("INSERT" if old is None else "MODIFY" if new is not None else "REMOVE")
    return StreamChange.model_validate(
        {
            "event_name": event_name,
            "sequence": sequence,
            "occurred_at": NOW,
            "keys": {PARTITION_KEY: f"docs/{KEY}", SORT_KEY: sort_key},
            "old_image": old,
            "new_image": new,
            "by_ttl": by_ttl,
        }
    )


def published_after(decision: Decision) -> Published:
    assert decision.published is not None
    return decision.published


def test_a_new_document_is_created_once_and_its_retry_is_ignored() -> None:
    # Given nothing published for the key
    # When the document's first stream record arrives, then again (a retried batch)
    first = decide(change(100, document()), None)
    again = decide(change(100, document()), published_after(first))
    # Then one document.created carries its summary and S3 version, with an id stable per record
    assert first.event is not None
    assert first.event.type is EventType.CREATED
    assert first.event.document is not None
    assert first.event.document.status == "approved"
    assert first.event.document.etag == "e1"
    assert first.event.id == event_id("docs", KEY, 100)
    # And the retry publishes nothing
    assert again.event is None
    assert again.ignored_because == "already applied (a retried record)"


def test_a_write_through_update_is_one_update_naming_what_changed() -> None:
    # Given an approved document was published
    old = document()
    published = published_after(decide(change(100, old), None))
    # When a write-through hides it behind a pending marker, then commits a completed version
    marker = pending(old)
    hidden = decide(change(101, marker, old), published)
    committed = document(status="completed", etag="e2")
    shown = decide(change(102, committed, marker), published)
    # Then the marker publishes nothing, and the commit is one update: status and content
    assert hidden.event is None
    assert hidden.ignored_because == "pending marker"
    assert shown.event is not None
    assert shown.event.type is EventType.UPDATED
    assert shown.event.changed == ("status", "content")
    assert shown.event.previous is not None
    assert shown.event.previous.status == "approved"


def test_a_rolled_back_write_and_a_backfill_rewrite_publish_nothing() -> None:
    # Given a published document
    old = document()
    published = published_after(decide(change(100, old), None))
    # When a write-through's marker is rolled back to the same entry, and a backfill rewrites it
    rolled_back = decide(change(102, old, pending(old)), published)
    rewritten = decide(change(103, document(), old), published)
    # Then neither is a change
    assert rolled_back.event is None
    assert rewritten.event is None
    assert rewritten.ignored_because == "a rewrite that changes nothing"


@pytest.mark.parametrize(
    ("changed_document", "expected"),
    [
        (document(customers=("acme", "globex")), ("customers",)),
        (document(title="Upgrade v2"), ("title",)),
        (document(etag="e9"), ("content",)),
    ],
)
def test_an_update_names_each_changed_field(
    changed_document: dict[str, Any], expected: tuple[str, ...]
) -> None:
    # Given a published document
    published = published_after(decide(change(100, document()), None))
    # When one field changes
    decision = decide(change(101, changed_document, document()), published)
    # Then the update names exactly it
    assert decision.event is not None
    assert decision.event.changed == expected


def test_a_deletion_publishes_the_deleted_document_and_a_second_one_nothing() -> None:
    # Given a published document
    old = document()
    published = published_after(decide(change(100, old), None))
    # When its tombstone arrives, then another tombstone (a later duplicate delete)
    deleted = decide(change(101, tombstone(), old), published)
    again = decide(change(102, tombstone(), tombstone()), published_after(deleted))
    # Then one document.deleted with the document as it was, and the published state says so
    assert deleted.event is not None
    assert deleted.event.type is EventType.DELETED
    assert deleted.event.document is None
    assert deleted.event.previous is not None
    assert deleted.event.previous.etag == "e1"
    assert published_after(deleted).snapshot is None
    assert again.event is None


def test_a_document_written_after_its_deletion_is_created_again() -> None:
    # Given a document published, then deleted
    published = published_after(decide(change(100, document()), None))
    published = published_after(decide(change(101, tombstone(), document()), published))
    # When the key is written again
    decision = decide(change(102, document(etag="e2"), tombstone()), published)
    # Then it is a creation, with no previous document
    assert decision.event is not None
    assert decision.event.type is EventType.CREATED
    assert decision.event.previous is None


def test_link_items_and_ttl_removals_are_housekeeping() -> None:
    # Given records of a link item and of a TTL removal
    link = decide(change(100, document(), sort_key="customer#globex"), None)
    expired = decide(change(101, None, tombstone(), by_ttl=True), None)
    # Then neither publishes anything, and each says why
    assert link.event is None
    assert link.ignored_because == "link item"
    assert expired.event is None
    assert expired.ignored_because is not None
    assert "TTL" in expired.ignored_because


def test_without_published_state_the_old_image_is_the_baseline() -> None:
    # Given a feed that starts after the document was indexed (nothing published)
    # When the document's status changes
    decision = decide(change(100, document(status="completed"), document()), None)
    # Then the old image stands in: an update of the status, not a creation
    assert decision.event is not None
    assert decision.event.type is EventType.UPDATED
    assert decision.event.changed == ("status",)


def test_images_show_documents_deletions_or_nothing() -> None:
    # Given each kind of entry image
    # Then a document is a snapshot, a tombstone a deletion, a marker or no image nothing
    assert view_of(document()) != view_of(tombstone())
    assert view_of(tombstone()) == "deleted"
    assert view_of(pending(None)) is view_of(None)


def test_a_rolled_back_marker_on_a_new_key_is_no_deletion() -> None:
    # Given a document published, then gone by retention (its TTL removal ignored), and a
    # write-through on the key that rolled back: it deletes its own pending marker
    published = published_after(decide(change(100, document()), None))
    removal = change(102, None, pending(None), name="REMOVE")
    # When the marker's removal arrives
    decision = decide(removal, published)
    # Then nothing is published: S3 still holds the document
    assert decision.event is None
    assert decision.ignored_because == "pending marker removed (a rolled-back write)"
    # And a document item removed by a writer (not TTL) is still a deletion
    assert decide(change(103, None, document(), name="REMOVE"), published).event is not None
