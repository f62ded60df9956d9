"""Use case: applications write and delete documents through cachesync, index first.

The write is a small saga:

1. **Intent**: the key's index entry is replaced by a pending marker with a unique token. The
   marker is invisible to reads and queries (readers fall back to S3, which still holds the
   previous version); it keeps the replaced entry's ordering facts and customers.
2. **S3**: the object is put (or deleted), with bounded retries on transient errors.
3. **Commit**: the marker is replaced by the entry for what S3 stored (its ETag, version and
   LastModified), conditioned on the marker still being ours.

If step 2 fails, the previous entry is restored, again only if the marker is still ours, so a
rollback never clobbers a newer write or event. If the commit finds the marker replaced, or S3
holds another object than ours by then, the key is synced to S3's current state instead: the
index follows S3, never our intent. If the process dies between steps, the marker stays
invisible until the object's S3 event, the next read, or a reconcile resolves it.

Validation happens before any write; a dry run validates and reports, writing nothing.
Idempotency keys (Powertools' idempotency utility, its own DynamoDB table) make a retried call
return the first result; the same key with another payload is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from aws_lambda_powertools.utilities.idempotency import (
    BasePersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import (
    PydanticSerializer,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict

from cachesync.clock import utc_now
from cachesync.current_state import CurrentStateSync, index_entry
from cachesync.documents import DEFAULT_RETENTION, parse_document
from cachesync.exceptions import (
    CacheSyncError,
    IdempotencyConflictError,
    IdempotencyInProgressError,
    IndexStoreError,
    InvalidDocumentError,
    InvalidRequestError,
    ObjectChangedError,
    ObjectNotFoundError,
    ObjectStoreError,
    WriteFailedError,
)
from cachesync.index_models import PendingWrite, Tombstone, WriteSource
from cachesync.rate_limit import Deadline, RateLimiter, unlimited
from cachesync.requests import WriteRequest
from cachesync.s3_keys import validate_key
from cachesync.stores.interfaces import IndexStore, ObjectStore
from cachesync.stores.s3_objects import StoredObject


class WriteOperation(StrEnum):
    """What a write-through does to the object."""

    PUT = "put"
    DELETE = "delete"


class IndexCommit(StrEnum):
    """How the index ended up after a write-through."""

    COMMITTED = "committed"
    """The index holds exactly what this call stored."""
    SUPERSEDED = "superseded"
    """Another writer or an event got in between: the index was synced to S3's current state."""
    PENDING = "pending"
    """S3 holds the write, the index could not be committed now: the marker stays invisible
    until the object's event, the next read or a reconcile resolves it."""
    DRY_RUN = "dry_run"
    BYPASSED = "bypassed"
    """The cache is off (``CACHESYNC_CACHE_ENABLED=false``): S3 alone was written; the index
    learns of it from the object's event, if event sync runs (``document_store.py``)."""


class WriteReceipt(BaseModel):
    """The result of a write-through (returned again, unchanged, for a replayed idempotency key)."""

    model_config = ConfigDict(frozen=True)

    operation: WriteOperation
    bucket: str
    key: str
    etag: str | None = None
    version_id: str | None = None
    size: int | None = None
    index: IndexCommit
    kind: str | None = None
    doc_id: str | None = None
    customers: tuple[str, ...] = ()


class WriteCommand(BaseModel):
    """One write-through call, as the idempotency record sees it."""

    model_config = ConfigDict(frozen=True)

    operation: WriteOperation
    key: str
    body: str | None
    dry_run: bool
    idempotency_key: str | None
    payload_hash: str
    """What must be equal for a replayed idempotency key: operation, key, body, dry run."""


# Longer than any one write outside Lambda can take (its retries are bounded to seconds), short
# enough that a key whose writer crashed is free again soon.
DEFAULT_IN_PROGRESS_EXPIRY: Final = timedelta(minutes=2)


def _fixed_time_left(time_left: timedelta) -> LambdaContext:
    """Outside Lambda, the "remaining time" that bounds an idempotency record in progress.

    The same for every write: nothing outside Lambda kills a write at a deadline.
    """
    time_left_ms = int(time_left.total_seconds() * 1000)

    class FixedTimeLeft(LambdaContext):
        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return time_left_ms

    return FixedTimeLeft()


class DocumentWriter:
    """Writes and deletes documents index first, then S3 (see the module docstring)."""

    def __init__(
        self,
        index: IndexStore,
        objects: ObjectStore,
        *,
        bucket: str,
        retention: timedelta = DEFAULT_RETENTION,
        limiter: RateLimiter | None = None,
        idempotency_store: BasePersistenceLayer | None = None,
        idempotency_window: timedelta = timedelta(hours=1),
        in_progress_expiry: timedelta = DEFAULT_IN_PROGRESS_EXPIRY,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """``idempotency_store``: Powertools' persistence layer (``None``: keys are refused).

        ``in_progress_expiry``: outside Lambda (the command line), how long an idempotency key
        whose write died mid-way stays "in progress" before a retry may take it over; in Lambda
        the invocation's own deadline (:meth:`register_lambda_context`) replaces it.
        """
        self._index = index
        self._objects = objects
        self._bucket = bucket
        self._retention = retention
        self._limiter = limiter or unlimited()
        self._clock = clock
        self._current_state = CurrentStateSync(index, objects, retention=retention)
        self._idempotent: Callable[..., WriteReceipt] | None = None
        self._idempotency_config = IdempotencyConfig(
            event_key_jmespath="idempotency_key",
            payload_validation_jmespath="payload_hash",
            expires_after_seconds=int(idempotency_window.total_seconds()),
            lambda_context=_fixed_time_left(in_progress_expiry),
        )
        if idempotency_store is not None:
            self._idempotent = idempotent_function(
                data_keyword_argument="command",
                config=self._idempotency_config,
                persistence_store=idempotency_store,
                output_serializer=PydanticSerializer(WriteReceipt),
            )(self._run)

    def register_lambda_context(self, context: LambdaContext) -> None:
        """Tell idempotency the invocation's deadline; call once per Lambda invocation.

        An idempotency record in progress then expires at the invocation's timeout, so a retry
        of an invocation that was killed mid-write proceeds once that deadline has passed instead
        of being refused as "in progress" for the whole idempotency window. Without a context
        (the command line) they expire after the writer's ``in_progress_expiry``.
        """
        self._idempotency_config.register_lambda_context(context)

    def write_document(
        self,
        key: str,
        document: Mapping[str, Any] | bytes | str,
        *,
        idempotency_key: str | None = None,
        dry_run: bool = False,
        deadline: Deadline | None = None,
    ) -> WriteReceipt:
        """Validate ``document`` and store it at ``key``: index intent, S3, commit.

        Raises :class:`InvalidDocumentError` before writing anything,
        :class:`WriteFailedError` when S3 refused (the index was rolled back),
        :class:`IdempotencyConflictError` for a reused key with another payload.
        """
        body = document_text(key, document)
        parse_document(
            validate_key(key), body, s3_last_modified=self._clock(), retention=self._retention
        )
        return self._dispatch(WriteOperation.PUT, key, body, idempotency_key, dry_run, deadline)

    def delete_document(
        self,
        key: str,
        *,
        idempotency_key: str | None = None,
        dry_run: bool = False,
        deadline: Deadline | None = None,
    ) -> WriteReceipt:
        """Delete the object at ``key``: index intent, S3, commit a tombstone."""
        validate_key(key)
        return self._dispatch(WriteOperation.DELETE, key, None, idempotency_key, dry_run, deadline)

    # ------------------------------------------------------------------ dispatch

    def _dispatch(
        self,
        operation: WriteOperation,
        key: str,
        body: str | None,
        idempotency_key: str | None,
        dry_run: bool,
        deadline: Deadline | None,
    ) -> WriteReceipt:
        fingerprint = hashlib.sha256(
            json.dumps([operation.value, key, body, dry_run]).encode()
        ).hexdigest()
        command = WriteCommand(
            operation=operation,
            key=key,
            body=body,
            dry_run=dry_run,
            idempotency_key=idempotency_key,
            payload_hash=fingerprint,
        )
        if idempotency_key is None:
            return self._run(command=command, deadline=deadline)
        if self._idempotent is None:
            raise IdempotencyConflictError(idempotency_key, "idempotency is not configured here")
        try:
            return self._idempotent(command=command, deadline=deadline)
        except IdempotencyValidationError as error:
            raise IdempotencyConflictError(
                idempotency_key, "it was first used with another payload"
            ) from error
        except IdempotencyAlreadyInProgressError as error:
            raise IdempotencyInProgressError(idempotency_key) from error

    def _run(self, command: WriteCommand, deadline: Deadline | None = None) -> WriteReceipt:
        if command.dry_run:
            return self._dry_run(command)
        self._limiter.acquire(deadline=deadline)
        if command.operation is WriteOperation.DELETE:
            return self._delete(command.key)
        if command.body is None:
            raise InvalidRequestError("a put needs a document", field="document")
        return self._put(command.key, command.body)

    def _dry_run(self, command: WriteCommand) -> WriteReceipt:
        receipt = WriteReceipt(
            operation=command.operation,
            bucket=self._bucket,
            key=command.key,
            index=IndexCommit.DRY_RUN,
        )
        if command.body is None:
            return receipt
        parsed = parse_document(command.key, command.body, s3_last_modified=self._clock())
        return receipt.model_copy(
            update={
                "size": len(command.body.encode()),
                "kind": parsed.kind.value,
                "doc_id": parsed.doc_id,
                "customers": parsed.customers,
            }
        )

    # ------------------------------------------------------------------ the saga

    def _put(self, key: str, body: str) -> WriteReceipt:
        data = body.encode("utf-8")
        pending = self._index.begin_pending(self._bucket, key, WriteOperation.PUT.value)
        try:
            put = self._objects.put(self._bucket, key, data)
        except ObjectStoreError as error:
            raise self._rolled_back(pending, WriteOperation.PUT, error) from error
        receipt = WriteReceipt(
            operation=WriteOperation.PUT,
            bucket=self._bucket,
            key=key,
            etag=put.etag,
            version_id=put.version_id,
            size=len(data),
            index=IndexCommit.COMMITTED,
        )
        try:
            # PutObject does not return LastModified, and the entry must carry S3's exact value:
            # the ordering of later sequencer-less events and of backfills compares it, and a
            # guessed later time would make them refuse newer objects as stale. Ask, on condition
            # the object is still ours.
            head = self._objects.head(self._bucket, key, if_match=put.etag)
            stored = StoredObject(
                bucket=self._bucket,
                key=key,
                body=data,
                etag=put.etag,
                version_id=put.version_id or head.version_id,
                size=len(data),
                last_modified=head.last_modified,
            )
            entry = index_entry(stored, source=WriteSource.WRITE_THROUGH, retention=self._retention)
            described = receipt.model_copy(
                update={
                    "kind": entry.document.kind.value,
                    "doc_id": entry.document.doc_id,
                    "customers": entry.document.customers,
                }
            )
            if self._index.commit_document(pending, entry):
                return described
            return self._resolve(described, key)
        except (ObjectChangedError, ObjectNotFoundError):
            # Another writer changed the key after our PUT: the index follows S3, not us.
            return self._resolve(receipt, key)
        except (IndexStoreError, ObjectStoreError):
            # The marker stays, invisible: our object's event, the next read or a reconcile
            # resolves it to S3's state.
            return receipt.model_copy(update={"index": IndexCommit.PENDING})

    def _delete(self, key: str) -> WriteReceipt:
        pending = self._index.begin_pending(self._bucket, key, WriteOperation.DELETE.value)
        try:
            deleted = self._objects.delete(self._bucket, key)
        except ObjectStoreError as error:
            raise self._rolled_back(pending, WriteOperation.DELETE, error) from error
        receipt = WriteReceipt(
            operation=WriteOperation.DELETE,
            bucket=self._bucket,
            key=key,
            version_id=deleted.version_id,
            index=IndexCommit.COMMITTED,
        )
        tombstone = Tombstone(
            bucket=self._bucket,
            key=key,
            deleted_at=deleted.deleted_at,
            source=WriteSource.WRITE_THROUGH,
        )
        try:
            if self._index.commit_tombstone(pending, tombstone):
                return receipt
            return self._resolve(receipt, key)
        except (IndexStoreError, ObjectStoreError):
            return receipt.model_copy(update={"index": IndexCommit.PENDING})

    def _resolve(self, receipt: WriteReceipt, key: str) -> WriteReceipt:
        """Our marker was replaced or S3 moved on: make the index hold S3's current state.

        Often what replaced the marker is our own write's S3 event: then the index holds exactly
        what we stored, and the receipt says so.
        """
        try:
            self._current_state.sync(
                self._bucket, key, source=WriteSource.WRITE_THROUGH, deleted_at=self._clock()
            )
            state = self._index.get_state(self._bucket, key)
        except CacheSyncError:
            return receipt.model_copy(update={"index": IndexCommit.PENDING})
        if receipt.operation is WriteOperation.DELETE:
            ours = state is None or state.is_tombstone
        else:
            ours = (
                state is not None and not state.is_pending and state.ordering.etag == receipt.etag
            )
        commit = IndexCommit.COMMITTED if ours else IndexCommit.SUPERSEDED
        return receipt.model_copy(update={"index": commit})

    def _rolled_back(
        self, pending: PendingWrite, operation: WriteOperation, error: ObjectStoreError
    ) -> WriteFailedError:
        try:
            if pending.previous is not None and pending.previous.is_pending:
                # The claim replaced a marker (ours, when a claim whose answer was lost was
                # retried): putting a marker back would hide the document S3 still holds, so
                # the index takes S3's current state instead.
                self._current_state.sync(
                    self._bucket,
                    pending.key,
                    source=WriteSource.WRITE_THROUGH,
                    deleted_at=self._clock(),
                )
                restored = True
            else:
                restored = self._index.rollback_pending(pending)
        except CacheSyncError:
            restored = False  # the marker stays invisible; a read or reconcile resolves it
        return WriteFailedError(self._bucket, pending.key, operation.value, restored, str(error))


def document_text(key: str, document: Mapping[str, Any] | bytes | str) -> str:
    """``document`` as the JSON text to store (a mapping is serialised; bytes must be UTF-8)."""
    if isinstance(document, bytes):
        try:
            return document.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidDocumentError(key, "not UTF-8 text") from error
    if isinstance(document, str):
        return document
    try:
        return json.dumps(dict(document), ensure_ascii=False)
    except RecursionError as error:
        # A decoded payload may nest deeper than the encoder recurses: the caller's error.
        raise InvalidDocumentError(key, "nested too deeply to serialise as JSON") from error


def execute_write(
    writer: DocumentWriter,
    request: WriteRequest,
    *,
    context: LambdaContext | None = None,
    deadline: Deadline | None = None,
) -> WriteReceipt:
    """Run a ``write_through`` request: a put needs its ``document``.

    ``context``: the Lambda invocation's (registered for idempotency; its remaining time bounds
    the rate limiter's wait unless ``deadline`` is given). ``None`` outside Lambda.
    """
    if context is not None:
        writer.register_lambda_context(context)
        deadline = deadline or Deadline.from_lambda_context(context)
    if request.operation == WriteOperation.PUT.value:
        if request.document is None:
            raise InvalidRequestError("a put needs a document", field="document")
        return writer.write_document(
            request.key,
            request.document,
            idempotency_key=request.idempotency_key,
            dry_run=request.dry_run,
            deadline=deadline,
        )
    return writer.delete_document(
        request.key,
        idempotency_key=request.idempotency_key,
        dry_run=request.dry_run,
        deadline=deadline,
    )
