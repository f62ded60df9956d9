"""Use case: verify that the index matches S3, and repair the drift.

Compares a listing of the bucket with a scan of the index and reports, per key:

* ``missing``: in S3, not in the index (a TTL-expired document is absent by design: not drift);
* ``stale``: indexed at another ETag than S3's current object;
* ``orphaned``: indexed, but not in S3;
* ``pending``: a write-through pending for longer than the threshold (it crashed);
* ``expired_present``: past its TTL but still stored (DynamoDB deletes only eventually; reads
  already hide it).

``repair`` fixes each key with the write that never overwrites newer state: missing, stale,
orphaned and pending keys are synced to S3's current state (conditioned on the entry just read,
then checked against S3 again); expired entries are removed on condition they did not change.
A second verify then reports no drift.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from cachesync.backfill import MAX_LISTED, BackfillFilters
from cachesync.clock import utc_now
from cachesync.current_state import CurrentStateSync, index_entry
from cachesync.documents import DEFAULT_RETENTION, DocumentKind
from cachesync.exceptions import CacheSyncError, InvalidDocumentError, ObjectNotFoundError
from cachesync.index_models import StoredState, WriteSource
from cachesync.rate_limit import Deadline, RateLimiter, unlimited
from cachesync.stores.interfaces import IndexStore, ObjectStore
from cachesync.stores.s3_objects import ListedObject


class DriftKind(StrEnum):
    """How the index differs from S3 for one key."""

    MISSING = "missing"
    STALE = "stale"
    ORPHANED = "orphaned"
    PENDING = "pending"
    EXPIRED_PRESENT = "expired_present"


class Drift(BaseModel):
    """One key whose index entry does not match S3."""

    model_config = ConfigDict(frozen=True)

    key: str
    kind: DriftKind
    detail: str


class VerifyReport(BaseModel):
    """What a verify found (and repaired)."""

    objects: int = 0
    """Objects listed in S3 (after the prefix filter)."""
    entries: int = 0
    """Live entries scanned in the index (documents and pending writes)."""
    invalid: int = 0
    """Objects that are not valid documents (never indexed; not drift)."""
    invalid_reasons: dict[str, str] = Field(default_factory=dict)
    """Key -> why it is not a valid document (the first hundred)."""
    drift: list[Drift] = Field(default_factory=list)
    repaired: int = 0
    repair_failures: dict[str, str] = Field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Drift per kind, every kind present (zeros included)."""
        return {kind.value: sum(d.kind is kind for d in self.drift) for kind in DriftKind}


def _entry_matches(filters: BackfillFilters, state: StoredState | None) -> bool:
    """Whether an index entry is in the filters' scope (unknown facts do not exclude it)."""
    if state is None or state.kind is None or state.index_time is None:
        return True
    return filters.matches(state.customers, DocumentKind(state.kind), state.index_time)


class Reconciler:
    """Verifies the index against S3 and repairs what differs."""

    def __init__(
        self,
        index: IndexStore,
        objects: ObjectStore,
        *,
        bucket: str,
        retention: timedelta = DEFAULT_RETENTION,
        pending_stale_after: timedelta = timedelta(minutes=2),
        limiter: RateLimiter | None = None,
        workers: int = 4,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._index = index
        self._objects = objects
        self._bucket = bucket
        self._retention = retention
        self._pending_stale_after = pending_stale_after
        self._limiter = limiter or unlimited()
        self._workers = workers
        self._clock = clock
        self._current_state = CurrentStateSync(index, objects, retention=retention)

    def verify(
        self,
        filters: BackfillFilters | None = None,
        *,
        repair: bool = False,
        on_key: Callable[[], None] | None = None,
        deadline: Deadline | None = None,
    ) -> VerifyReport:
        """Compare S3 and the index under ``filters.prefixes``; repair if asked.

        ``on_key`` is called once per key examined (progress bars).
        """
        filters = filters or BackfillFilters()
        listed = self._list(filters)
        entries = self._scan(filters)
        report = VerifyReport(
            objects=len(listed),
            entries=sum(1 for state in entries.values() if not state.is_tombstone),
        )
        keys = sorted(set(listed) | {k for k, s in entries.items() if not s.is_tombstone})
        with ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="verify") as pool:
            judged = pool.map(
                lambda key: self._judge(key, listed.get(key), entries.get(key), filters), keys
            )
            for key, drift, invalid in judged:
                if on_key is not None:
                    on_key()
                if invalid is not None:
                    report.invalid += 1
                    if len(report.invalid_reasons) < MAX_LISTED:
                        report.invalid_reasons[key] = invalid
                if drift is not None:
                    report.drift.append(drift)
            if repair and report.drift:
                repairs = pool.map(
                    lambda drift: self._repair(drift, entries.get(drift.key), deadline),
                    report.drift,
                )
                for drift, failure in zip(report.drift, repairs, strict=True):
                    if failure is None:
                        report.repaired += 1
                    else:
                        report.repair_failures[drift.key] = failure
        return report

    # ------------------------------------------------------------------ reading both sides

    def _list(self, filters: BackfillFilters) -> dict[str, ListedObject]:
        listed: dict[str, ListedObject] = {}
        for prefix in filters.prefixes:
            token: str | None = None
            while True:
                page = self._objects.list_page(self._bucket, prefix, token=token)
                listed.update((o.key, o) for o in page.objects)
                token = page.next_token
                if token is None:
                    break
        return listed

    def _scan(self, filters: BackfillFilters) -> dict[str, StoredState]:
        entries: dict[str, StoredState] = {}
        for prefix in filters.prefixes:
            entries.update(self._index.scan_entries(self._bucket, prefix))
        return entries

    # ------------------------------------------------------------------ judging one key

    def _judge(
        self,
        key: str,
        listed: ListedObject | None,
        state: StoredState | None,
        filters: BackfillFilters,
    ) -> tuple[str, Drift | None, str | None]:
        """The key, its drift (or ``None``), and why S3's object there is not a valid document."""
        now = self._clock()
        live = state is not None and not state.is_tombstone
        if live and not _entry_matches(filters, state):
            return key, None, None
        if listed is None:
            return key, Drift(key=key, kind=DriftKind.ORPHANED, detail="not in S3"), None
        if state is not None and state.is_pending:
            since = state.pending_since
            if since is None or now - since > self._pending_stale_after:
                return key, Drift(key=key, kind=DriftKind.PENDING, detail=f"since {since}"), None
            return key, None, None
        if not live:
            return self._judge_unindexed(key, filters)
        assert state is not None
        if state.ordering.etag != listed.etag:
            detail = f"index {state.ordering.etag}, S3 {listed.etag}"
            return key, Drift(key=key, kind=DriftKind.STALE, detail=detail), None
        if state.expires_at is not None and state.expires_at <= now:
            detail = f"expired {state.expires_at.isoformat()}"
            return key, Drift(key=key, kind=DriftKind.EXPIRED_PRESENT, detail=detail), None
        return key, None, None

    def _judge_unindexed(
        self, key: str, filters: BackfillFilters
    ) -> tuple[str, Drift | None, str | None]:
        """In S3, not indexed: drift unless the document is expired by design or invalid."""
        try:
            stored = self._objects.get(self._bucket, key)
        except ObjectNotFoundError:
            return key, None, None  # deleted while we looked: nothing to index
        try:
            entry = index_entry(stored, source=WriteSource.BACKFILL, retention=self._retention)
        except InvalidDocumentError as invalid:
            return (
                key,
                None,
                f"{invalid.field}: {invalid.reason}" if invalid.field else invalid.reason,
            )
        document = entry.document
        if not filters.matches(document.customers, document.kind, document.index_time):
            return key, None, None
        if document.expires_at is not None and document.expires_at <= self._clock():
            return key, None, None
        return key, Drift(key=key, kind=DriftKind.MISSING, detail="not indexed"), None

    # ------------------------------------------------------------------ repairing one key

    def _repair(
        self, drift: Drift, state: StoredState | None, deadline: Deadline | None
    ) -> str | None:
        """Fix one key; ``None`` on success, else the reason it could not be fixed now."""
        try:
            self._limiter.acquire(deadline=deadline)
            if drift.kind is DriftKind.EXPIRED_PRESENT and state is not None:
                if not self._index.remove_entry(self._bucket, drift.key, state):
                    return "the entry changed while being repaired; verify again"
                return None
            self._current_state.sync(
                self._bucket, drift.key, source=WriteSource.BACKFILL, deleted_at=self._clock()
            )
        except InvalidDocumentError as error:
            return f"invalid document: {error.reason}"
        except CacheSyncError as error:
            return str(error)
        return None
