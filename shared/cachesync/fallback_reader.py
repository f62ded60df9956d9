"""Use case: read a document, from the index when it can answer, from S3 when it cannot.

A committed, unexpired index entry holding its body is a cache hit. Everything else falls back
to S3: a miss, a pending write-through, an expired entry, a metadata-only entry (body too large
for DynamoDB), an index error, or an open circuit breaker. What S3 returns is validated, returned,
and backfilled into the index with a write conditioned on the entry read just before, so a
backfill never overwrites newer state. A key absent from S3 is a clean not-found, and a stale
index entry for it is repaired (tombstoned).

After ``failure_threshold`` consecutive index failures the breaker opens and reads go straight
to S3 for a cool-down; then one probe decides. Transitions are logged and counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict

from cachesync.circuit_breaker import CircuitBreaker, CircuitState
from cachesync.current_state import index_entry
from cachesync.documents import DEFAULT_RETENTION
from cachesync.exceptions import DocumentNotFoundError, IndexStoreError, ObjectNotFoundError
from cachesync.index_models import (
    IndexedDocument,
    IndexEntry,
    StoredState,
    Tombstone,
    WriteSource,
)
from cachesync.s3_keys import validate_key
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.s3_objects import S3ObjectStore


class ReadSource(StrEnum):
    """Where a read was answered from."""

    INDEX = "index"
    S3 = "s3"


class MissReason(StrEnum):
    """Why the index could not answer."""

    ABSENT = "absent"
    DELETED = "deleted"
    PENDING = "pending"
    EXPIRED = "expired"
    BODY_IN_S3 = "body_in_s3"
    INDEX_ERROR = "index_error"
    BREAKER_OPEN = "breaker_open"


class ReadResult(BaseModel):
    """A document and where it came from."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    body: str
    etag: str
    version_id: str | None
    source: ReadSource
    miss_reason: MissReason | None = None
    backfilled: bool = False
    expired: bool = False
    """Past its TTL: S3 answers, and the index is not backfilled with it (absent by design)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FallbackReader:
    """Reads documents index first, S3 on a miss or an index failure, then backfills."""

    def __init__(
        self,
        index: DynamoDBIndexStore,
        objects: S3ObjectStore,
        *,
        bucket: str,
        breaker_failure_threshold: int = 5,
        breaker_cool_down: timedelta = timedelta(seconds=30),
        retention: timedelta = DEFAULT_RETENTION,
        pending_stale_after: timedelta = timedelta(minutes=2),
        logger: Logger | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = _utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``pending_stale_after``: a write-through older than this is taken as crashed and
        resolved by the read's backfill; a younger one is left to finish. ``monotonic`` times
        the breaker's cool-down."""
        self._index = index
        self._objects = objects
        self._bucket = bucket
        self._retention = retention
        self._pending_stale_after = pending_stale_after
        self._logger = logger or Logger(service="cachesync")
        self._metrics = metrics
        self._clock = clock
        self._breaker = CircuitBreaker(
            "index",
            failure_threshold=breaker_failure_threshold,
            cool_down_seconds=breaker_cool_down.total_seconds(),
            clock=monotonic,
            on_state_change=self._breaker_changed,
        )

    @property
    def breaker_state(self) -> CircuitState:
        """The index circuit breaker's state."""
        return self._breaker.state

    def get_document(self, key: str, *, consistent: bool = False) -> ReadResult:
        """The document at ``key``; raises :class:`DocumentNotFoundError` if S3 has none."""
        validate_key(key)
        started = time.perf_counter()
        state: StoredState | None = None
        reason: MissReason
        if not self._breaker.allow_request():
            reason = MissReason.BREAKER_OPEN
        else:
            try:
                document, state = self._index.read(self._bucket, key, consistent=consistent)
            except IndexStoreError as error:
                self._breaker.record_failure()
                self._logger.warning("index read failed, reading S3", extra={"error": str(error)})
                reason = MissReason.INDEX_ERROR
            else:
                self._breaker.record_success()
                if document is not None and document.body is not None:
                    self._count("CacheHits")
                    return _hit(document)
                reason = self._miss_reason(document, state)
        self._count("CacheMisses")
        self._count(f"CacheMisses{reason.value.title().replace('_', '')}")
        result = self._from_s3(key, reason, state)
        if self._metrics is not None:
            elapsed_ms = (time.perf_counter() - started) * 1000
            self._metrics.add_metric(
                name="FallbackLatency", unit=MetricUnit.Milliseconds, value=elapsed_ms
            )
        return result

    def _miss_reason(
        self, document: IndexedDocument | None, state: StoredState | None
    ) -> MissReason:
        if document is not None:
            return MissReason.BODY_IN_S3
        if state is None:
            return MissReason.ABSENT
        if state.is_pending:
            return MissReason.PENDING
        if state.is_tombstone:
            return MissReason.DELETED
        return MissReason.EXPIRED

    def _from_s3(self, key: str, reason: MissReason, state: StoredState | None) -> ReadResult:
        try:
            stored = self._objects.get(self._bucket, key)
        except ObjectNotFoundError as error:
            self._repair_not_found(key, reason, state)
            raise DocumentNotFoundError(self._bucket, key) from error
        # Validated once: an invalid document raises here, before anything is returned or
        # written; the backfill writes this same entry.
        entry = index_entry(stored, source=WriteSource.FALLBACK_READ, retention=self._retention)
        expires_at = entry.document.expires_at
        backfilled = self._backfill(reason, state, entry)
        return ReadResult(
            bucket=self._bucket,
            key=key,
            body=stored.body.decode("utf-8"),
            etag=stored.etag,
            version_id=stored.version_id,
            source=ReadSource.S3,
            miss_reason=reason,
            backfilled=backfilled,
            expired=expires_at is not None and expires_at <= self._clock(),
        )

    def _backfill(self, reason: MissReason, state: StoredState | None, entry: IndexEntry) -> bool:
        """Index what S3 returned, if that helps and cannot overwrite newer state."""
        if reason in (MissReason.INDEX_ERROR, MissReason.BREAKER_OPEN, MissReason.BODY_IN_S3):
            return False  # the index is down, or already holds all it can
        expires_at = entry.document.expires_at
        if expires_at is not None and expires_at <= self._clock():
            return False  # expired by design: S3 answers, the index stays clean
        if state is not None and state.is_pending and not self._pending_is_stale(state):
            return False  # a write-through is in progress: let it commit
        try:
            # Conditioned on the entry we read before reading S3: anything written since (an
            # event, a write-through) is at least as new as our read, and wins.
            written = self._index.replace_document(entry, state)
        except IndexStoreError as error:
            self._logger.warning("backfill skipped", extra={"error": str(error)})
            return False
        if written:
            self._count("Backfills")
        return written

    def _repair_not_found(self, key: str, reason: MissReason, state: StoredState | None) -> None:
        """S3 has no object: an index entry still claiming one is stale; tombstone it."""
        if state is None or state.is_tombstone or reason is MissReason.INDEX_ERROR:
            return
        if state.is_pending and not self._pending_is_stale(state):
            return
        tombstone = Tombstone(
            bucket=self._bucket, key=key, deleted_at=self._clock(), source=WriteSource.FALLBACK_READ
        )
        try:
            if self._index.replace_with_tombstone(tombstone, state):
                self._count("NotFoundRepairs")
        except IndexStoreError as error:
            self._logger.warning("not-found repair skipped", extra={"error": str(error)})

    def _pending_is_stale(self, state: StoredState) -> bool:
        since = state.pending_since
        return since is None or self._clock() - since > self._pending_stale_after

    def _breaker_changed(self, name: str, old: CircuitState, new: CircuitState) -> None:
        self._logger.warning(
            "circuit breaker %s: %s -> %s",
            name,
            old.value,
            new.value,
            extra={"breaker": name, "from": old.value, "to": new.value},
        )
        self._count(f"Breaker{new.value.title().replace('_', '')}")

    def _count(self, name: str) -> None:
        if self._metrics is not None:
            self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def _hit(document: IndexedDocument) -> ReadResult:
    return ReadResult(
        bucket=document.bucket,
        key=document.key,
        body=document.body or "",
        etag=document.etag,
        version_id=document.version_id,
        source=ReadSource.INDEX,
    )
