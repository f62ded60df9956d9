"""Make the index hold S3's *current* state of one key, verified against S3 after the write.

Used wherever no sequencer can order a write: events without a sequencer, a write-through that
lost a race, repairs. No clock is trusted: the write is conditioned on the index entry being the
one read just before (optimistic concurrency), and S3 is checked again afterwards; if either
changed in between, the sync starts over. Whoever syncs last after the key's last change sees
the final state, so the index converges.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from cachesync.documents import DEFAULT_RETENTION, parse_document
from cachesync.exceptions import (
    ConcurrentModificationError,
    InvalidDocumentError,
    ObjectNotFoundError,
)
from cachesync.index_models import IndexEntry, ObjectVersion, StoredState, Tombstone, WriteSource
from cachesync.stores.interfaces import IndexStore, ObjectStore
from cachesync.stores.s3_objects import StoredObject

# Each round means another writer or another S3 change got in between.
MAX_SYNC_ROUNDS: Final = 5


class CurrentStateOutcome(StrEnum):
    """What a sync did."""

    APPLIED = "applied"
    UNCHANGED = "unchanged"
    """The index already held S3's current state."""


def index_entry(
    stored: StoredObject, *, source: WriteSource, retention: timedelta, sequencer: str | None = None
) -> IndexEntry:
    """The index entry for an object read from S3; raises :class:`InvalidDocumentError`."""
    parsed = parse_document(
        stored.key, stored.body, s3_last_modified=stored.last_modified, retention=retention
    )
    version = ObjectVersion(
        bucket=stored.bucket,
        key=stored.key,
        etag=stored.etag,
        version_id=stored.version_id,
        size=stored.size,
        last_modified=stored.last_modified,
        sequencer=sequencer,
    )
    return IndexEntry(version=version, document=parsed, source=source)


def holds(state: StoredState | None, stored: StoredObject | None) -> bool:
    """Whether the index entry ``state`` already is S3's state ``stored`` (``None``: absent)."""
    if stored is None:
        return state is None or state.is_tombstone
    return (
        state is not None
        and not state.is_tombstone
        and not state.is_pending
        and state.ordering.etag == stored.etag
        # The same content written again on a versioned bucket: same ETag, another version.
        and (stored.version_id is None or state.version_id == stored.version_id)
    )


class CurrentStateSync:
    """Syncs one key of the index to S3's current state."""

    def __init__(
        self,
        index: IndexStore,
        objects: ObjectStore,
        *,
        retention: timedelta = DEFAULT_RETENTION,
    ) -> None:
        self._index = index
        self._objects = objects
        self._retention = retention

    def sync(
        self, bucket: str, key: str, *, source: WriteSource, deleted_at: datetime
    ) -> CurrentStateOutcome:
        """Sync ``bucket/key``; ``deleted_at`` dates the tombstone if the key is gone.

        Raises :class:`InvalidDocumentError` (after evicting the entry) when S3 holds an invalid
        document, and :class:`ConcurrentModificationError` when the key keeps changing.
        """
        for _ in range(MAX_SYNC_ROUNDS):
            state = self._index.get_state(bucket, key)
            try:
                stored: StoredObject | None = self._objects.get(bucket, key)
            except ObjectNotFoundError:
                stored = None
            if holds(state, stored):
                return CurrentStateOutcome.UNCHANGED
            if stored is None:
                tombstone = Tombstone(bucket=bucket, key=key, deleted_at=deleted_at, source=source)
                written = self._index.replace_with_tombstone(tombstone, state)
            else:
                try:
                    entry = index_entry(stored, source=source, retention=self._retention)
                except InvalidDocumentError:
                    eviction = Tombstone(
                        bucket=bucket, key=key, deleted_at=stored.last_modified, source=source
                    )
                    self._index.replace_with_tombstone(eviction, state)
                    raise
                written = self._index.replace_document(entry, state)
            # Not written: the entry changed since we read it. Written: S3 may have changed
            # after we read it, and our write may have landed after a newer one.
            if written and self._still_current(bucket, key, stored):
                return CurrentStateOutcome.APPLIED
        raise ConcurrentModificationError(bucket, key, MAX_SYNC_ROUNDS)

    def _still_current(self, bucket: str, key: str, stored: StoredObject | None) -> bool:
        listed = self._objects.find(bucket, key)
        if stored is None or listed is None:
            return stored is None and listed is None
        return listed.etag == stored.etag
