"""Use case: rebuild the index from S3 (turning cachesync on for an existing bucket).

The backfill lists the bucket page by page (per prefix), reads and validates each object with a
pool of workers, and writes its entry with the same guarded write S3 events use: a state that an
event or a write-through applied more recently is never overwritten (it counts as
``skipped_newer``). Index writes go through the shared token bucket, so a backfill never
throttles the live table.

It is resumable: a :class:`BackfillCheckpoint` (prefix, listing token, last counted key,
counters) is handed to the caller to persist after every page, and within a page every
``checkpoint_every_objects`` objects or ``checkpoint_every_seconds`` seconds, whichever comes
first. Workers finish objects out of order, so a checkpoint records only the completed prefix of
the page in listing order (``after_key``: every key up to it is counted, none after it).
Resuming re-lists the page at ``token`` and skips the keys up to ``after_key``: no counted object
is redone, and an object finished past the prefix is redone idempotently (its write is a
duplicate). The index equals an uninterrupted run's, and every object is counted exactly once.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from cachesync.current_state import index_entry
from cachesync.documents import DEFAULT_RETENTION, DocumentKind
from cachesync.exceptions import (
    CacheSyncError,
    InvalidDocumentError,
    InvalidQueryError,
    ObjectChangedError,
    ObjectNotFoundError,
)
from cachesync.index_models import IndexEntry, WriteOutcome, WriteSource
from cachesync.rate_limit import Deadline, RateLimiter, unlimited
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.s3_objects import ListedObject, S3ObjectStore

# Invalid documents and failures are listed by key in the summary, up to this many each.
MAX_LISTED: Final = 100
_CHECKPOINT_VERSION: Final = 1
# Within a page, a checkpoint after this many objects or seconds, whichever comes first: an
# interruption loses at most that much progress (the page is up to 1,000 objects).
CHECKPOINT_EVERY_OBJECTS: Final = 100
CHECKPOINT_EVERY_SECONDS: Final = 5.0


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ObjectOutcome(StrEnum):
    """What the backfill did with one object."""

    INDEXED = "indexed"
    UNCHANGED = "unchanged"
    """The index already held this version."""
    SKIPPED_NEWER = "skipped_newer"
    """The index holds a newer state (an event or a write-through got there first)."""
    WOULD_INDEX = "would_index"
    """Dry run: this object would be indexed."""
    FILTERED = "filtered"
    EXPIRED = "expired"
    """Past its TTL already: absent from the index by design."""
    INVALID = "invalid"
    MISSING = "missing"
    """Deleted between the listing and the read (its event removes it from the index)."""
    FAILED = "failed"


class BackfillFilters(BaseModel):
    """Which objects to index."""

    model_config = ConfigDict(frozen=True)

    prefixes: tuple[str, ...] = ("",)
    since: datetime | None = None
    """Earliest index time. Objects last modified before it are skipped without a read: a
    document's index time is its modification time, which precedes its upload."""
    until: datetime | None = None
    customer: str | None = None
    kind: DocumentKind | None = None

    def fingerprint(self) -> str:
        """Identifies the filters, so a checkpoint is resumed only by the same job."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]

    def skips_listed(self, listed: ListedObject) -> bool:
        """Whether the listing alone rules the object out (no read needed)."""
        return self.since is not None and listed.last_modified < self.since

    def matches(self, customers: Iterable[str], kind: DocumentKind, index_time: datetime) -> bool:
        """Whether a parsed document passes the filters."""
        if self.kind is not None and kind is not self.kind:
            return False
        if self.customer is not None and self.customer.strip().lower() not in set(customers):
            return False
        if self.since is not None and index_time < self.since:
            return False
        return not (self.until is not None and index_time > self.until)


class BackfillSummary(BaseModel):
    """Counters of a backfill (or of a verify's repair), with the reasons of invalid objects."""

    scanned: int = 0
    indexed: int = 0
    unchanged: int = 0
    skipped_newer: int = 0
    would_index: int = 0
    filtered: int = 0
    expired: int = 0
    invalid: int = 0
    missing: int = 0
    failed: int = 0
    invalid_reasons: dict[str, str] = Field(default_factory=dict)
    failures: dict[str, str] = Field(default_factory=dict)

    def record(self, key: str, outcome: ObjectOutcome, reason: str | None = None) -> None:
        """Count one object's outcome."""
        self.scanned += 1
        setattr(self, outcome.value, getattr(self, outcome.value) + 1)
        if outcome is ObjectOutcome.INVALID and len(self.invalid_reasons) < MAX_LISTED:
            self.invalid_reasons[key] = reason or ""
        if outcome is ObjectOutcome.FAILED and len(self.failures) < MAX_LISTED:
            self.failures[key] = reason or ""


class BackfillCheckpoint(BaseModel):
    """Where a backfill stands: persisted after every page, resumed from."""

    version: int = _CHECKPOINT_VERSION
    bucket: str
    filters: str
    """The filters' fingerprint."""
    prefix_index: int = 0
    token: str | None = None
    """Listing token of the page in progress, or of the next one, of ``prefixes[prefix_index]``
    (``None``: its first)."""
    after_key: str | None = None
    """Within the page at ``token``: the last key counted in :attr:`summary` (every key of the
    page up to it, in listing order, is counted). ``None``: none of the page is."""
    done: bool = False
    summary: BackfillSummary = Field(default_factory=BackfillSummary)


class ObjectIndexer:
    """Indexes one S3 object: read, validate, filter, guarded write. Shared by the backfill,
    S3 Batch Operations tasks and repairs."""

    def __init__(
        self,
        index: DynamoDBIndexStore,
        objects: S3ObjectStore,
        *,
        retention: timedelta = DEFAULT_RETENTION,
        limiter: RateLimiter | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._index = index
        self._objects = objects
        self._retention = retention
        self._limiter = limiter or unlimited()
        self._clock = clock

    def index_object(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        if_match: str | None = None,
        filters: BackfillFilters | None = None,
        dry_run: bool = False,
        deadline: Deadline | None = None,
    ) -> tuple[ObjectOutcome, str]:
        """Index ``bucket/key`` (a given version, or the current one while it has ``if_match``).

        Returns the outcome and a short reason. Transient AWS errors, after the stores' bounded
        retries, are raised (the caller decides whether to retry the object later).
        """
        try:
            stored = self._objects.get(bucket, key, version_id=version_id, if_match=if_match)
        except (ObjectNotFoundError, ObjectChangedError) as gone:
            return ObjectOutcome.MISSING, str(gone)
        try:
            entry: IndexEntry = index_entry(
                stored, source=WriteSource.BACKFILL, retention=self._retention
            )
        except InvalidDocumentError as invalid:
            return ObjectOutcome.INVALID, invalid.reason if not invalid.field else (
                f"{invalid.field}: {invalid.reason}"
            )
        document = entry.document
        if filters is not None and not filters.matches(
            document.customers, document.kind, document.index_time
        ):
            return ObjectOutcome.FILTERED, "does not match the filters"
        if document.expires_at is not None and document.expires_at <= self._clock():
            return ObjectOutcome.EXPIRED, "past its TTL"
        if dry_run:
            state = self._index.get_state(bucket, key)
            if state is not None and not state.is_pending and state.ordering.etag == stored.etag:
                return ObjectOutcome.UNCHANGED, "already indexed"
            return ObjectOutcome.WOULD_INDEX, "would be indexed"
        self._limiter.acquire(deadline=deadline)
        written = self._index.put_document(entry)
        outcomes = {
            WriteOutcome.APPLIED: (ObjectOutcome.INDEXED, "indexed"),
            WriteOutcome.DUPLICATE: (ObjectOutcome.UNCHANGED, "already indexed"),
            WriteOutcome.STALE: (ObjectOutcome.SKIPPED_NEWER, "the index holds a newer state"),
        }
        return outcomes[written.outcome]


class Backfill:
    """Lists a bucket and indexes what it finds, page by page, resumably."""

    def __init__(
        self,
        indexer: ObjectIndexer,
        objects: S3ObjectStore,
        *,
        bucket: str,
        workers: int = 4,
        page_size: int = 1000,
    ) -> None:
        if workers < 1:
            raise InvalidQueryError("workers must be at least 1")
        self._indexer = indexer
        self._objects = objects
        self._bucket = bucket
        self._workers = workers
        self._page_size = page_size

    def start(self, filters: BackfillFilters) -> BackfillCheckpoint:
        """A checkpoint at the very beginning."""
        return BackfillCheckpoint(bucket=self._bucket, filters=filters.fingerprint())

    def run(
        self,
        filters: BackfillFilters,
        *,
        checkpoint: BackfillCheckpoint | None = None,
        dry_run: bool = False,
        on_page: Callable[[BackfillCheckpoint], None] | None = None,
        on_checkpoint: Callable[[BackfillCheckpoint], None] | None = None,
        on_object: Callable[[ObjectOutcome], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        cancel: threading.Event | None = None,
        deadline: Deadline | None = None,
        checkpoint_every_objects: int = CHECKPOINT_EVERY_OBJECTS,
        checkpoint_every_seconds: float = CHECKPOINT_EVERY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> BackfillCheckpoint:
        """Run (or resume from ``checkpoint``) until done, ``should_stop()`` before a page, or
        ``cancel`` set (checked between objects: Ctrl-C).

        ``on_page`` receives the checkpoint after every finished page; ``on_checkpoint`` after
        every page too, within a page every ``checkpoint_every_objects`` objects or
        ``checkpoint_every_seconds`` seconds, and once more when cancelled (persist it to
        resume); ``on_object`` each object's outcome (progress bars). Returns the last
        checkpoint (``done`` is false if stopped or cancelled).
        """
        current = checkpoint or self.start(filters)
        if current.bucket != self._bucket or current.filters != filters.fingerprint():
            raise InvalidQueryError("the checkpoint belongs to another bucket or other filters")
        pacing = _CheckpointPacing(checkpoint_every_objects, checkpoint_every_seconds, monotonic)
        with ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="backfill") as pool:
            while not current.done:
                if should_stop is not None and should_stop():
                    return current
                prefix = filters.prefixes[current.prefix_index]
                page = self._objects.list_page(
                    self._bucket, prefix, token=current.token, page_size=self._page_size
                )
                after_key = current.after_key
                # Keys are listed in UTF-8 byte order, which is str order: skip the counted ones.
                listed = [o for o in page.objects if after_key is None or o.key > after_key]
                summary = current.summary.model_copy(deep=True)

                def one(listed: ListedObject) -> tuple[ObjectOutcome, str] | None:
                    if cancel is not None and cancel.is_set():
                        return None  # cancelled before it started: left to the resume
                    if filters.skips_listed(listed):
                        return ObjectOutcome.FILTERED, "modified before --since"
                    try:
                        # The current version, not the listed one: the write is guarded, and
                        # an object overwritten since the listing is best indexed as it is now.
                        return self._indexer.index_object(
                            self._bucket,
                            listed.key,
                            filters=filters,
                            dry_run=dry_run,
                            deadline=deadline,
                        )
                    except CacheSyncError as error:
                        return ObjectOutcome.FAILED, str(error)

                futures: list[Future[tuple[ObjectOutcome, str] | None]] = [
                    pool.submit(one, item) for item in listed
                ]
                try:
                    # In listing order: what is counted is always a prefix of the page.
                    for item, future in zip(listed, futures, strict=True):
                        result = future.result()
                        if result is None or (cancel is not None and cancel.is_set()):
                            current = current.model_copy(update={"summary": summary})
                            if on_checkpoint is not None:
                                on_checkpoint(current)
                            return current
                        summary.record(item.key, *result)
                        current = current.model_copy(
                            update={"after_key": item.key, "summary": summary}
                        )
                        if on_object is not None:
                            on_object(result[0])
                        if on_checkpoint is not None and pacing.due():
                            summary = summary.model_copy(deep=True)
                            on_checkpoint(current)
                finally:
                    for future in futures:
                        future.cancel()
                current = self._advance(current, filters, page.next_token, summary)
                pacing.reset()
                if on_page is not None:
                    on_page(current)
                if on_checkpoint is not None:
                    on_checkpoint(current)
        return current

    def _advance(
        self,
        current: BackfillCheckpoint,
        filters: BackfillFilters,
        next_token: str | None,
        summary: BackfillSummary,
    ) -> BackfillCheckpoint:
        if next_token is not None:
            return current.model_copy(
                update={"token": next_token, "after_key": None, "summary": summary}
            )
        last_prefix = current.prefix_index + 1 >= len(filters.prefixes)
        return current.model_copy(
            update={
                "prefix_index": current.prefix_index if last_prefix else current.prefix_index + 1,
                "token": None,
                "after_key": None,
                "done": last_prefix,
                "summary": summary,
            }
        )


def checkpoint_json(checkpoint: BackfillCheckpoint) -> str:
    """The checkpoint as stored (a file for the CLI, a continuation token for the Lambda)."""
    return json.dumps(checkpoint.model_dump(mode="json"), sort_keys=True)


class _CheckpointPacing:
    """Says when a checkpoint is due within a page: after so many objects or seconds."""

    def __init__(
        self, every_objects: int, every_seconds: float, monotonic: Callable[[], float]
    ) -> None:
        if every_objects < 1 or not every_seconds > 0:
            raise InvalidQueryError("checkpoints need a positive object count and interval")
        self._every_objects = every_objects
        self._every_seconds = every_seconds
        self._monotonic = monotonic
        self.reset()

    def reset(self) -> None:
        """A checkpoint was just handed out."""
        self._objects = 0
        self._since = self._monotonic()

    def due(self) -> bool:
        """Count one object; whether a checkpoint is due now (then the count starts again)."""
        self._objects += 1
        if (
            self._objects >= self._every_objects
            or self._monotonic() - self._since >= self._every_seconds
        ):
            self.reset()
            return True
        return False


def save_checkpoint(path: Path, checkpoint: BackfillCheckpoint) -> None:
    """Persist ``checkpoint`` to ``path`` atomically (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(checkpoint_json(checkpoint), encoding="utf-8")
    temporary.replace(path)


def load_checkpoint(path: Path) -> BackfillCheckpoint:
    """The checkpoint saved at ``path``, to resume a backfill that is not done.

    Raises :class:`InvalidQueryError` if there is none, it is not a checkpoint, or its backfill
    is already done.
    """
    if not path.is_file():
        raise InvalidQueryError(f"--resume: no checkpoint at {path}")
    try:
        checkpoint = BackfillCheckpoint.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InvalidQueryError(f"--resume: {path} is not a backfill checkpoint") from error
    if checkpoint.done:
        raise InvalidQueryError(f"--resume: the backfill in {path} is already done")
    return checkpoint
