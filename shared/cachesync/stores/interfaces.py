"""What the use cases need from the stores: the index and the object store, as Protocols.

Use cases (sync, current state, reconcile, ...) take an :class:`IndexStore` and an
:class:`ObjectStore`; :class:`~cachesync.stores.dynamodb_index.DynamoDBIndexStore` and
:class:`~cachesync.stores.s3_objects.S3ObjectStore` are the implementations, and their tests
against DynamoDB Local and moto server are the contract tests of these Protocols. mypy checks
that the implementations conform (see the end of this module).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from cachesync.index_models import (
    IndexedDocument,
    IndexEntry,
    IndexQuery,
    PendingWrite,
    QueryPage,
    StoredState,
    Tombstone,
    WriteResult,
)
from cachesync.stores.s3_objects import (
    DeleteResult,
    ListedObject,
    ListingPage,
    ObjectHead,
    PutResult,
    StoredObject,
)


class IndexStore(Protocol):
    """The index: guarded writes by ordering, verified replacements, reads, scans and queries.

    Every write is conditional: it applies only over the state it expects, so concurrent
    writers, redelivered events and late events never overwrite newer state.
    """

    def put_document(self, entry: IndexEntry) -> WriteResult:
        """Index ``entry`` unless the index holds the same or a newer state of its key."""
        ...

    def put_tombstone(self, tombstone: Tombstone) -> WriteResult:
        """Record a deletion unless the index holds the same or a newer state of its key."""
        ...

    def replace_document(self, entry: IndexEntry, expected: StoredState | None) -> bool:
        """Write ``entry`` if the key's entry is still ``expected`` (``None``: still absent)."""
        ...

    def replace_with_tombstone(self, tombstone: Tombstone, expected: StoredState | None) -> bool:
        """Write a tombstone if the key's entry is still ``expected`` (``None``: still absent)."""
        ...

    def begin_pending(self, bucket: str, key: str, operation: str) -> PendingWrite:
        """Claim the entry of ``bucket/key`` for a write-through (a pending marker)."""
        ...

    def rollback_pending(self, pending: PendingWrite) -> bool:
        """Put back the entry a pending write replaced; ``False`` if the marker is gone."""
        ...

    def commit_document(self, pending: PendingWrite, entry: IndexEntry) -> bool:
        """Replace our pending marker by ``entry``; ``False`` if the marker is no longer ours."""
        ...

    def commit_tombstone(self, pending: PendingWrite, tombstone: Tombstone) -> bool:
        """Replace our pending marker by a tombstone; ``False`` if the marker is no longer ours."""
        ...

    def get_state(self, bucket: str, key: str) -> StoredState | None:
        """The stored state of ``bucket/key`` (tombstones and pending markers included)."""
        ...

    def get_document(
        self, bucket: str, key: str, *, consistent: bool = False
    ) -> IndexedDocument | None:
        """The indexed document at ``bucket/key``; ``None`` when absent, deleted or expired."""
        ...

    def read(
        self, bucket: str, key: str, *, consistent: bool = False
    ) -> tuple[IndexedDocument | None, StoredState | None]:
        """The live document and the raw state of ``bucket/key``, from one read."""
        ...

    def scan_entries(self, bucket: str, prefix: str = "") -> Iterator[tuple[str, StoredState]]:
        """Every key of ``bucket`` under ``prefix`` that has an entry, with its state."""
        ...

    def remove_entry(self, bucket: str, key: str, expected: StoredState) -> bool:
        """Delete the entry and its customer links if it is still ``expected``."""
        ...

    def query(self, query: IndexQuery) -> QueryPage:
        """One page of documents matching ``query``, in index-time order."""
        ...


class ObjectStore(Protocol):
    """The documents in S3: reads, listings and the writes of write-through."""

    def get(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        if_match: str | None = None,
    ) -> StoredObject:
        """Read ``bucket/key`` (a version, or the current one if it still has ``if_match``)."""
        ...

    def head(self, bucket: str, key: str, *, if_match: str | None = None) -> ObjectHead:
        """The metadata of the current object at ``bucket/key``."""
        ...

    def put(self, bucket: str, key: str, body: bytes) -> PutResult:
        """Write ``body`` as the current object at ``bucket/key``."""
        ...

    def delete(self, bucket: str, key: str) -> DeleteResult:
        """Delete the current object at ``bucket/key``."""
        ...

    def list_page(
        self, bucket: str, prefix: str, *, token: str | None = None, page_size: int = 1000
    ) -> ListingPage:
        """One page of the objects under ``prefix``, in key order."""
        ...

    def find(self, bucket: str, key: str) -> ListedObject | None:
        """The current object at exactly ``key``, from a listing."""
        ...


if TYPE_CHECKING:
    from cachesync.stores.dynamodb_index import DynamoDBIndexStore
    from cachesync.stores.s3_objects import S3ObjectStore

    def _implementations_conform(
        index: DynamoDBIndexStore, objects: S3ObjectStore
    ) -> tuple[IndexStore, ObjectStore]:
        # mypy fails here when a store's signature drifts from its Protocol.
        return index, objects
