"""Use case: apply one S3 change to the index, exactly as S3 ordered it.

* A created object is indexed at the version the event describes, or not at all: the key's
  current object is read while it still has the event's ETag, and on a versioned bucket only if
  it is still the event's version. If S3 says it is gone or changed, a newer event exists and will
  be applied: the change is stale. (A late event for a noncurrent version must not be indexed
  even though S3 still holds that version: against a state without sequencer, such as a
  write-through delete within the same second, the clock ties and the event would win, bringing
  a deleted key back until the delete's own event arrives.)
* A removal leaves a tombstone. The permanent deletion of one version (which may not have been the
  current one) is checked against a listing first, so the removed handler needs no permission to
  read objects.
* Every write is guarded by the per-key order (``ordering.py``): the event's sequencer.

Events without a usable sequencer (moto, some S3-compatible stores) cannot be ordered against
each other: S3's LastModified has whole seconds, so two changes within a second tie. Such an
event is taken to mean only "this key changed": the key is synced to S3's *current* state, with
a write conditioned on the index entry being the one read just before (optimistic concurrency),
and S3 is checked again after the write; if it changed meanwhile, the sync starts over. The last
event of a key is processed after its last change, so its sync sees the final state: the index
converges. This path reads objects for removals too; on AWS every event has a sequencer and the
removed handler (which may not read objects) never takes it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from cachesync.changes import ObjectChange, Operation
from cachesync.clock import utc_now
from cachesync.current_state import CurrentStateOutcome, CurrentStateSync, index_entry
from cachesync.documents import DEFAULT_RETENTION
from cachesync.exceptions import (
    InvalidDocumentError,
    InvalidEventError,
    ObjectChangedError,
    ObjectNotFoundError,
    WrongOperationError,
)
from cachesync.index_models import (
    IndexEntry,
    Tombstone,
    WriteOutcome,
    WriteResult,
    WriteSource,
)
from cachesync.stores.interfaces import IndexStore, ObjectStore
from cachesync.stores.s3_objects import StoredObject


class SyncOutcome(StrEnum):
    """What applying one change did to the index."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    """Already applied (a redelivered event): nothing changed."""
    STALE = "stale"
    """A newer state of the key exists (in the index or in S3): nothing changed."""
    IGNORED = "ignored"
    """Not a content change (restore, tagging, ...)."""


class SyncResult(BaseModel):
    """The result of applying one change."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    operation: Operation
    outcome: SyncOutcome
    reason: str
    lag_seconds: float
    """Now minus the event time: how far the index trailed S3."""


_OUTCOMES = {
    WriteOutcome.APPLIED: SyncOutcome.APPLIED,
    WriteOutcome.DUPLICATE: SyncOutcome.DUPLICATE,
    WriteOutcome.STALE: SyncOutcome.STALE,
}


def _creates_delete_marker(change: ObjectChange) -> bool:
    """A delete on a versioned bucket that hides the object behind a delete marker."""
    return (
        "DeleteMarkerCreated" in change.event_name or "Delete Marker Created" in change.event_name
    )


class S3EventSync:
    """Applies :class:`ObjectChange` records to the index."""

    def __init__(
        self,
        index: IndexStore,
        objects: ObjectStore,
        *,
        buckets: Collection[str] | None = None,
        retention: timedelta = DEFAULT_RETENTION,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """``buckets``: the buckets this deployment indexes (``None``: any)."""
        self._index = index
        self._objects = objects
        self._buckets = frozenset(buckets) if buckets is not None else None
        self._retention = retention
        self._clock = clock
        self._current_state = CurrentStateSync(index, objects, retention=retention)

    def apply(self, change: ObjectChange, expected: Operation) -> SyncResult:
        """Apply ``change``, which must be of the ``expected`` operation (the handler's kind).

        Raises :class:`WrongOperationError` for the other handler's kind (a misconfigured
        notification: the record must reach a DLQ, not vanish), :class:`InvalidEventError` for a
        bucket this deployment does not index, and :class:`InvalidDocumentError` when the object
        is not a valid document (its stale entry is evicted first).
        """
        if self._buckets is not None and change.bucket not in self._buckets:
            raise InvalidEventError(
                f"event for bucket {change.bucket!r}; this deployment indexes "
                f"{sorted(self._buckets)}"
            )
        if change.operation is Operation.OTHER:
            return self._result(
                change, SyncOutcome.IGNORED, f"{change.event_name} changes no content"
            )
        if change.operation is not expected:
            raise WrongOperationError(
                f"{change.event_name} for s3://{change.bucket}/{change.key} reached the "
                f"{expected.value} handler; check the bucket's notification configuration"
            )
        if change.operation is Operation.CREATED:
            return self._apply_created(change)
        return self._apply_removed(change)

    # ------------------------------------------------------------------ created

    def _apply_created(self, change: ObjectChange) -> SyncResult:
        if change.sequencer is None:
            return self._sync_current_state(change)
        try:
            stored = self._objects.get(change.bucket, change.key, if_match=change.etag)
        except ObjectNotFoundError:
            reason = "the object is no longer in S3 (a delete's event follows)"
            return self._result(change, SyncOutcome.STALE, reason)
        except ObjectChangedError:
            reason = "the object was overwritten since (a newer event follows)"
            return self._result(change, SyncOutcome.STALE, reason)
        if change.version_id is not None and stored.version_id != change.version_id:
            reason = "a newer version of the object is current (its event follows)"
            return self._result(change, SyncOutcome.STALE, reason)
        try:
            entry = self._entry(stored, change.sequencer)
        except InvalidDocumentError:
            # S3 now holds an invalid document at this key: the index must stop serving the
            # older, valid one. Evict it (guarded like any write), then fail the record so it
            # reaches the DLQ with its reason.
            self._index.put_tombstone(self._eviction(stored, change.sequencer))
            raise
        written = self._index.put_document(entry)
        previous = written.previous
        if (
            written.outcome is WriteOutcome.DUPLICATE
            and previous is not None
            and previous.version_id != stored.version_id
        ):
            # The index holds this ETag from the same second without a sequencer, but another
            # version (the same content written twice): the clock cannot tell them apart, S3
            # can. The event's version was current a moment ago: sync to S3's current state.
            return self._sync_current_state(change)
        return self._from_write(change, written)

    def _entry(self, stored: StoredObject, sequencer: str | None) -> IndexEntry:
        return index_entry(
            stored, source=WriteSource.EVENT, retention=self._retention, sequencer=sequencer
        )

    @staticmethod
    def _eviction(stored: StoredObject, sequencer: str | None) -> Tombstone:
        return Tombstone(
            bucket=stored.bucket,
            key=stored.key,
            deleted_at=stored.last_modified,
            sequencer=sequencer,
            source=WriteSource.EVENT,
        )

    # ------------------------------------------------------------------ no sequencer

    def _sync_current_state(self, change: ObjectChange) -> SyncResult:
        """Without a sequencer the event only says "this key changed": sync to S3's state."""
        outcome = self._current_state.sync(
            change.bucket, change.key, source=WriteSource.EVENT, deleted_at=change.event_time
        )
        if outcome is CurrentStateOutcome.UNCHANGED:
            return self._result(change, SyncOutcome.DUPLICATE, "index already holds S3's state")
        return self._result(change, SyncOutcome.APPLIED, "synced to S3's current state")

    # ------------------------------------------------------------------ removed

    def _apply_removed(self, change: ObjectChange) -> SyncResult:
        if change.sequencer is None:
            return self._sync_current_state(change)
        if change.version_id is not None and not _creates_delete_marker(change):
            return self._apply_version_removed(change)
        # The key's current object is gone (a delete, a delete marker, an expiration): in
        # sequencer order the key is deleted now. If it was re-created since, that create's
        # event has a greater sequencer and restores the entry.
        return self._from_write(change, self._index.put_tombstone(self._tombstone(change)))

    def _apply_version_removed(self, change: ObjectChange) -> SyncResult:
        """One version was deleted permanently; it may or may not have been the current one."""
        if self._objects.find(change.bucket, change.key) is None:
            return self._from_write(change, self._index.put_tombstone(self._tombstone(change)))
        state = self._index.get_state(change.bucket, change.key)
        if state is None or state.is_tombstone or state.version_id != change.version_id:
            return self._result(change, SyncOutcome.STALE, "a version the index does not serve")
        # The index serves exactly the deleted version, and an older version is current again
        # (S3 announces no create for that). This handler may not read objects: evict the entry;
        # the next read or a reconcile indexes the version that is current now.
        return self._from_write(change, self._index.put_tombstone(self._tombstone(change)))

    @staticmethod
    def _tombstone(change: ObjectChange) -> Tombstone:
        return Tombstone(
            bucket=change.bucket,
            key=change.key,
            deleted_at=change.event_time,
            sequencer=change.sequencer,
            source=WriteSource.EVENT,
        )

    # ------------------------------------------------------------------ results

    def _from_write(self, change: ObjectChange, written: WriteResult) -> SyncResult:
        reasons = {
            WriteOutcome.APPLIED: "index updated",
            WriteOutcome.DUPLICATE: "already applied",
            WriteOutcome.STALE: "index holds a newer state",
        }
        return self._result(change, _OUTCOMES[written.outcome], reasons[written.outcome])

    def _result(self, change: ObjectChange, outcome: SyncOutcome, reason: str) -> SyncResult:
        lag = (self._clock() - change.event_time).total_seconds()
        return SyncResult(
            bucket=change.bucket,
            key=change.key,
            operation=change.operation,
            outcome=outcome,
            reason=reason,
            lag_seconds=max(lag, 0.0),
        )
