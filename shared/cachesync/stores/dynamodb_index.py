"""The index store: guarded writes, reads and queries of the DynamoDB index table.

All DynamoDB I/O of cachesync happens here, through an injected boto3 client. DynamoDB error codes
become cachesync errors in exactly one function, :func:`_translate`.

Writes are guarded: a write applies only if it supersedes the stored state of its key (see
``ordering.py``), decided by a condition expression, not by a read-then-write race. A document
and its customer link items are written in one transaction, so a customer query never sees a
customer the document no longer names.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from cachesync.documents import DocumentKind
from cachesync.exceptions import (
    CacheSyncError,
    ConcurrentModificationError,
    IndexRequestError,
    IndexStoreError,
    IndexUnavailableError,
    InvalidQueryError,
    ItemTooLargeError,
)
from cachesync.index_models import (
    DEFAULT_WINDOW_DAYS,
    DocumentSummary,
    IndexedDocument,
    IndexEntry,
    IndexQuery,
    PendingWrite,
    QueryPage,
    StoredState,
    Tombstone,
    WriteOutcome,
    WriteResult,
    WriteSource,
)
from cachesync.index_schema import (
    CUSTOMER_TIME_INDEX,
    DOCUMENT_SORT_KEY,
    GLOBAL_INDEXES,
    GSI_VALUE_SEPARATOR,
    PARTITION_KEY,
    SORT_KEY,
    STATUS_TIME_INDEX,
    TIME_RANGE_INDEX,
    Attr,
    GlobalIndex,
    RecordType,
    customer_sort_key,
    document_pk,
)
from cachesync.ordering import OrderingFacts, format_time, is_same_state, parse_time, supersedes
from cachesync.retry_policies import (
    DEFAULT_RETRY_POLICY,
    RetryPolicy,
    error_code,
)
from cachesync.retry_policies import is_transient_aws_error as _is_transient

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import PutTypeDef, TransactWriteItemTypeDef

T = TypeVar("T")

# DynamoDB's item limit is 409,600 bytes; moto's is 400,000. Stay under both, with room for the
# attributes our size estimate counts loosely.
MAX_ITEM_BYTES: Final = 390_000
# A guarded write re-reads and retries when the entry changed between the refusal that told us its
# customers and our next attempt (another writer got in between); each loop is one more writer.
MAX_WRITE_ATTEMPTS: Final = 5
# What a write-through's pending marker keeps of the entry it replaces (ordering facts and
# customers), the ones of those that default when there was no entry, and what it drops: the
# document, its summary, its expiry and its GSI keys (so reads and queries do not see it).
_PENDING_CARRIED: Final = (
    Attr.CUSTOMERS,
    Attr.CUSTOMERS_KEY,
    Attr.S3_LAST_MODIFIED,
    Attr.SEQUENCER,
    Attr.ETAG,
    Attr.VERSION_ID,
)
_PENDING_DEFAULTS: Final = frozenset({Attr.CUSTOMERS, Attr.CUSTOMERS_KEY, Attr.S3_LAST_MODIFIED})
_PENDING_REMOVED: Final = (
    Attr.KIND,
    Attr.DOC_ID,
    Attr.TITLE,
    Attr.STATUS,
    Attr.CUSTOMER,
    Attr.INDEX_TIME,
    Attr.SIZE,
    Attr.BODY,
    Attr.BODY_IN_S3,
    Attr.EXPIRES_AT,
    *(name for index in GLOBAL_INDEXES for name in (index.partition_key, index.sort_key)),
)
DEFAULT_TOMBSTONE_TTL: Final = timedelta(days=30)
_TOKEN_VERSION: Final = 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# The attributes _state_from_item reads, plus the object key.
_STATE_ATTRIBUTES: Final = (
    Attr.KEY,
    Attr.RECORD_TYPE,
    Attr.ETAG,
    Attr.SEQUENCER,
    Attr.S3_LAST_MODIFIED,
    Attr.VERSION_ID,
    Attr.CUSTOMERS,
    Attr.KIND,
    Attr.INDEX_TIME,
    Attr.REVISION,
    Attr.EXPIRES_AT,
    Attr.PENDING_SINCE,
)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _ConditionRefusedError(IndexStoreError):
    """Internal: a guarded write's condition failed; carries the stored item, if returned."""

    def __init__(self, item: dict[str, Any] | None) -> None:
        self.item = item
        super().__init__("condition refused")


class _Unknown:
    """Marker: the previous state of the key has not been read."""


_UNKNOWN: Final = _Unknown()


@dataclass(frozen=True, slots=True)
class _QueryPlan:
    index: GlobalIndex
    partitions: list[str]  # GSI partition key values, one per time bucket, in query order
    since: str
    until: str
    filters: list[tuple[str, str, Any]]  # (attribute, operator, value)


class DynamoDBIndexStore:
    """The cachesync index in one DynamoDB table (layout: ``index_schema.py``).

    ``client`` is a boto3 DynamoDB client; build it with :func:`cachesync.aws_clients.client` so
    that botocore makes one attempt per call and ``retry_policy`` is the only retry layer.
    """

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        tombstone_ttl: timedelta = DEFAULT_TOMBSTONE_TTL,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._client = client
        self._table = table_name
        self._retry = retry_policy
        self._tombstone_ttl = tombstone_ttl
        self._clock = clock

    @property
    def table_name(self) -> str:
        """The DynamoDB table this store reads and writes."""
        return self._table

    # ------------------------------------------------------------------ writes

    def put_document(self, entry: IndexEntry) -> WriteResult:
        """Index ``entry`` unless the index holds the same or a newer state of its key."""
        item, links = self._document_items(entry)
        return self._guarded_write(item, links, entry.version.ordering(), _UNKNOWN)

    def replace_document(self, entry: IndexEntry, expected: StoredState | None) -> bool:
        """Write ``entry`` if the key's entry is still ``expected`` (``None``: still absent).

        For callers that establish the truth themselves (S3's current state, verified): no
        ordering check, only proof that nobody wrote since ``expected`` was read.
        """
        item, links = self._document_items(entry)
        return self._replace(item, links, expected)

    def replace_with_tombstone(self, tombstone: Tombstone, expected: StoredState | None) -> bool:
        """Write a tombstone if the entry is still ``expected`` (see :meth:`replace_document`)."""
        return self._replace(self._tombstone_item(tombstone), [], expected)

    # ------------------------------------------------------------------ write-through

    def begin_pending(self, bucket: str, key: str, operation: str) -> PendingWrite:
        """Claim the entry of ``bucket/key`` for a write-through: replace it by a pending marker.

        The marker keeps the replaced entry's ordering facts and customers (so events keep their
        guards and know which customer links exist) and has no GSI keys and no document, so reads
        and queries do not see it. Customer links stay: they describe a version S3 still holds.

        One ``UpdateItem``: it sets the marker's own attributes, leaves the carried ones in place
        (defaults where the key had no entry), removes the rest, and returns the replaced entry
        (``ALL_OLD``). The replaced entry is read and replaced atomically: no condition, no read
        before, and no other writer can get in between (the last claim wins; an earlier claimant
        then finds its marker replaced at commit and follows S3).
        """
        fresh = self._pending_item(bucket, key, operation, None)
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        assignments: list[str] = []
        for number, (name, value) in enumerate(fresh.items()):
            if name in (PARTITION_KEY, SORT_KEY):
                continue
            names[f"#s{number}"], values[f":s{number}"] = name, value
            if name in _PENDING_DEFAULTS:
                # The replaced entry's value if it had one (see _pending_item's carried facts).
                assignments.append(f"#s{number} = if_not_exists(#s{number}, :s{number})")
            else:
                assignments.append(f"#s{number} = :s{number}")
        removals = []
        for number, name in enumerate(_PENDING_REMOVED):
            names[f"#r{number}"] = name
            removals.append(f"#r{number}")
        response = self._call(
            "UpdateItem",
            lambda: self._client.update_item(
                TableName=self._table,
                Key=_serialize({PARTITION_KEY: fresh[PARTITION_KEY], SORT_KEY: fresh[SORT_KEY]}),
                UpdateExpression=f"SET {', '.join(assignments)} REMOVE {', '.join(removals)}",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_serialize(values),
                ReturnValues="ALL_OLD",
            ),
        )
        raw = response.get("Attributes")
        previous_item = _deserialize(raw) if raw else None
        carried = {
            name: previous_item[name]
            for name in _PENDING_CARRIED
            if previous_item is not None and previous_item.get(name) is not None
        }
        marker = {**fresh, **carried}
        return PendingWrite(
            bucket=bucket,
            key=key,
            marker=_state_from_item(marker),
            previous=_state_from_item(previous_item) if previous_item else None,
            previous_item=previous_item,
        )

    def rollback_pending(self, pending: PendingWrite) -> bool:
        """Put back the entry a pending write replaced, if the marker is still ours.

        ``False``: a newer write or event replaced the marker meanwhile; it is left alone.
        """
        try:
            if pending.previous_item is None:
                self._delete_if_revision(pending.bucket, pending.key, pending.marker.revision_token)
            else:
                self._put_if_revision(pending.previous_item, pending.marker.revision_token)
        except _ConditionRefusedError:
            return False
        return True

    def commit_document(self, pending: PendingWrite, entry: IndexEntry) -> bool:
        """Replace our pending marker by ``entry``; ``False`` if the marker is no longer ours."""
        return self.replace_document(entry, pending.marker)

    def commit_tombstone(self, pending: PendingWrite, tombstone: Tombstone) -> bool:
        """Replace our pending marker by a tombstone; ``False`` if the marker is no longer ours."""
        return self.replace_with_tombstone(tombstone, pending.marker)

    def _pending_item(
        self, bucket: str, key: str, operation: str, previous: dict[str, Any] | None
    ) -> dict[str, Any]:
        carried = {name: previous.get(name) for name in _PENDING_CARRIED} if previous else {}
        return {
            Attr.CUSTOMERS: [],
            Attr.CUSTOMERS_KEY: "",
            # No previous entry: older than any state S3 can report.
            Attr.S3_LAST_MODIFIED: format_time(_EPOCH),
            **{name: value for name, value in carried.items() if value is not None},
            PARTITION_KEY: document_pk(bucket, key),
            SORT_KEY: DOCUMENT_SORT_KEY,
            Attr.RECORD_TYPE: RecordType.PENDING.value,
            Attr.BUCKET: bucket,
            Attr.KEY: key,
            Attr.SOURCE: WriteSource.WRITE_THROUGH.value,
            Attr.PENDING_OPERATION: operation,
            Attr.PENDING_SINCE: format_time(self._clock()),
            Attr.UPDATED_AT: format_time(self._clock()),
            # Known before the write, so commit and rollback can be conditioned on it.
            Attr.REVISION: uuid.uuid4().hex,
        }

    def _put_if_revision(self, item: dict[str, Any], revision: str) -> None:
        self._call(
            "PutItem",
            lambda: self._client.put_item(
                TableName=self._table,
                Item=_serialize(item),
                # The entry is still the one we wrote: never clobber a newer write or event.
                ConditionExpression="#rev = :rev",
                ExpressionAttributeNames={"#rev": Attr.REVISION},
                ExpressionAttributeValues=_serialize({":rev": revision}),
            ),
        )

    def _delete_if_revision(self, bucket: str, key: str, revision: str) -> None:
        self._call(
            "DeleteItem",
            lambda: self._client.delete_item(
                TableName=self._table,
                Key=_serialize(
                    {PARTITION_KEY: document_pk(bucket, key), SORT_KEY: DOCUMENT_SORT_KEY}
                ),
                # The entry is still the one we wrote: never delete a newer write or event.
                ConditionExpression="#rev = :rev",
                ExpressionAttributeNames={"#rev": Attr.REVISION},
                ExpressionAttributeValues=_serialize({":rev": revision}),
            ),
        )

    def _replace(
        self, item: dict[str, Any], links: list[dict[str, Any]], expected: StoredState | None
    ) -> bool:
        try:
            self._write(item, links, None, expected)
        except _ConditionRefusedError:
            return False
        return True

    def _document_items(self, entry: IndexEntry) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        version, document = entry.version, entry.document
        now = self._clock()
        summary = {
            Attr.BUCKET: version.bucket,
            Attr.KEY: version.key,
            Attr.KIND: document.kind.value,
            Attr.DOC_ID: document.doc_id,
            Attr.TITLE: document.title,
            Attr.STATUS: document.status,
            Attr.CUSTOMERS: list(document.customers),
            Attr.INDEX_TIME: format_time(document.index_time),
            Attr.ETAG: version.etag,
            Attr.VERSION_ID: version.version_id,
            Attr.SIZE: version.size,
            Attr.S3_LAST_MODIFIED: format_time(version.last_modified),
            Attr.EXPIRES_AT: _epoch(document.expires_at),
        }
        item = {
            **summary,
            PARTITION_KEY: document_pk(version.bucket, version.key),
            SORT_KEY: DOCUMENT_SORT_KEY,
            Attr.RECORD_TYPE: RecordType.DOCUMENT.value,
            Attr.CUSTOMERS_KEY: _customers_key(document.customers),
            Attr.SEQUENCER: version.sequencer,
            Attr.SOURCE: entry.source.value,
            Attr.UPDATED_AT: format_time(now),
            Attr.BODY: document.body,
            Attr.BODY_IN_S3: False,
            **_gsi_keys(TIME_RANGE_INDEX, None, document.index_time),
            **_gsi_keys(STATUS_TIME_INDEX, document.status, document.index_time),
        }
        primary = _primary_customer(document.customers)
        if primary is not None:
            # The document item is its primary customer's entry in CustomerTimeIndex: a
            # single-customer document is one item, written with one conditional PutItem.
            item.update(_gsi_keys(CUSTOMER_TIME_INDEX, primary, document.index_time))
        item = _fit_item(item, version.bucket, version.key)
        links = [
            {
                **summary,
                PARTITION_KEY: item[PARTITION_KEY],
                SORT_KEY: customer_sort_key(customer),
                Attr.RECORD_TYPE: RecordType.CUSTOMER_LINK.value,
                Attr.CUSTOMER: customer,
                **_gsi_keys(CUSTOMER_TIME_INDEX, customer, document.index_time),
            }
            for customer in _linked_customers(document.customers)
        ]
        return item, links

    def put_tombstone(self, tombstone: Tombstone) -> WriteResult:
        """Replace the entry of a deleted key by a tombstone unless the index holds newer state.

        The tombstone is in no GSI, is never returned by reads or queries, and expires after the
        store's tombstone TTL. A late create after that is still refused by its S3 read (the
        object is gone), so the TTL bounds storage, not correctness.
        """
        # A delete removes the customer links, which needs the stored customers: read them first
        # (one consistent read is cheaper than a refused transaction).
        previous = self.get_state(tombstone.bucket, tombstone.key)
        if previous is not None and not supersedes(tombstone.ordering(), previous.ordering):
            outcome = (
                WriteOutcome.DUPLICATE
                if is_same_state(tombstone.ordering(), previous.ordering)
                else WriteOutcome.STALE
            )
            return WriteResult(outcome=outcome, previous=previous)
        return self._guarded_write(
            self._tombstone_item(tombstone), [], tombstone.ordering(), previous
        )

    def _tombstone_item(self, tombstone: Tombstone) -> dict[str, Any]:
        now = self._clock()
        return {
            PARTITION_KEY: document_pk(tombstone.bucket, tombstone.key),
            SORT_KEY: DOCUMENT_SORT_KEY,
            Attr.RECORD_TYPE: RecordType.TOMBSTONE.value,
            Attr.BUCKET: tombstone.bucket,
            Attr.KEY: tombstone.key,
            Attr.CUSTOMERS: [],
            Attr.CUSTOMERS_KEY: "",
            # A tombstone's ordering time is S3's time of the deletion.
            Attr.S3_LAST_MODIFIED: format_time(tombstone.deleted_at),
            Attr.SEQUENCER: tombstone.sequencer,
            Attr.SOURCE: tombstone.source.value,
            Attr.UPDATED_AT: format_time(now),
            Attr.EXPIRES_AT: _epoch(now + self._tombstone_ttl),
        }

    def _guarded_write(
        self,
        item: dict[str, Any],
        links: list[dict[str, Any]],
        new: OrderingFacts,
        previous: StoredState | _Unknown | None,
    ) -> WriteResult:
        bucket, key = str(item[Attr.BUCKET]), str(item[Attr.KEY])
        for _ in range(MAX_WRITE_ATTEMPTS):
            try:
                self._write(item, links, new, previous)
            except _ConditionRefusedError as refused:
                stored = _state_from_item(refused.item) if refused.item else None
                if stored is None:
                    # The condition named an existing entry that has vanished since; read again.
                    previous = self.get_state(bucket, key)
                    continue
                if not supersedes(new, stored.ordering):
                    same = is_same_state(new, stored.ordering)
                    outcome = WriteOutcome.DUPLICATE if same else WriteOutcome.STALE
                    return WriteResult(outcome=outcome, previous=stored)
                # Older, but it names other customers than we assumed, or it changed since we
                # read it: retry knowing exactly which links to remove.
                previous = stored
                continue
            known = None if isinstance(previous, _Unknown) else previous
            return WriteResult(outcome=WriteOutcome.APPLIED, previous=known)
        raise ConcurrentModificationError(bucket, key, MAX_WRITE_ATTEMPTS)

    def _write(
        self,
        item: dict[str, Any],
        links: list[dict[str, Any]],
        new: OrderingFacts | None,
        previous: StoredState | _Unknown | None,
    ) -> None:
        """One conditional write: ``new`` must supersede the stored state (unless ``None``),
        and the stored entry must be ``previous`` (or, when unknown, name the same customers)."""
        names = {
            "#pk": PARTITION_KEY,
            "#lm": Attr.S3_LAST_MODIFIED,
            "#etag": Attr.ETAG,
            "#seq": Attr.SEQUENCER,
            "#rev": Attr.REVISION,
            "#ck": Attr.CUSTOMERS_KEY,
        }
        values: dict[str, Any] = {}
        newer = _newer_clause(new, values) if new is not None else None
        removed: Sequence[str] = ()
        if isinstance(previous, _Unknown):
            values[":ck"] = item[Attr.CUSTOMERS_KEY]
            # Optimistic: we assume the stored entry names the same customers, so overwriting the
            # link items is complete. If it names others, the condition fails and returns the
            # entry, and we retry knowing which links to delete.
            unchanged = "(attribute_not_exists(#pk) OR #ck = :ck)"
        elif previous is None:
            # We read that the key had no entry: it must still have none.
            unchanged = "attribute_not_exists(#pk)"
        else:
            values[":rev"] = previous.revision_token
            # The links we delete are the ones of the entry we read: nobody rewrote it since.
            unchanged = "#rev = :rev"
            removed = sorted(
                set(_linked_customers(previous.customers))
                - set(_linked_customers(item[Attr.CUSTOMERS]))
            )
        condition = unchanged if newer is None else f"{newer} AND {unchanged}"
        used = {name: attr for name, attr in names.items() if name in condition}

        item = {**item, Attr.REVISION: item.get(Attr.REVISION) or uuid.uuid4().hex}
        put: PutTypeDef = {
            "TableName": self._table,
            "Item": _serialize(item),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": used,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if values:  # DynamoDB refuses an empty map (a revision-free "still absent" condition)
            put["ExpressionAttributeValues"] = _serialize(values)
        if not links and not removed:
            self._call("PutItem", lambda: self._client.put_item(**put))
            return
        pk = item[PARTITION_KEY]
        actions: list[TransactWriteItemTypeDef] = [{"Put": put}]
        actions += [{"Put": {"TableName": self._table, "Item": _serialize(link)}} for link in links]
        actions += [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": _serialize({PARTITION_KEY: pk, SORT_KEY: customer_sort_key(code)}),
                }
            }
            for code in removed
        ]
        self._call(
            "TransactWriteItems", lambda: self._client.transact_write_items(TransactItems=actions)
        )

    # ------------------------------------------------------------------ reads

    def get_state(self, bucket: str, key: str) -> StoredState | None:
        """The stored state of ``bucket/key`` (tombstones included), read consistently."""
        item = self._get_item(bucket, key, consistent=True)
        return _state_from_item(item) if item else None

    def get_document(
        self, bucket: str, key: str, *, consistent: bool = False
    ) -> IndexedDocument | None:
        """The indexed document at ``bucket/key``; ``None`` when absent, deleted or expired."""
        item = self._get_item(bucket, key, consistent=consistent)
        if not item or item.get(Attr.RECORD_TYPE) != RecordType.DOCUMENT or self._expired(item):
            return None
        return _document_from_item(item)

    def read(
        self, bucket: str, key: str, *, consistent: bool = False
    ) -> tuple[IndexedDocument | None, StoredState | None]:
        """One read, both views: the live document (as :meth:`get_document`) and the raw state
        (tombstones, pending writes and expired entries included)."""
        item = self._get_item(bucket, key, consistent=consistent)
        if not item:
            return None, None
        state = _state_from_item(item)
        live = item.get(Attr.RECORD_TYPE) == RecordType.DOCUMENT and not self._expired(item)
        return (_document_from_item(item) if live else None), state

    def scan_entries(self, bucket: str, prefix: str = "") -> Iterator[tuple[str, StoredState]]:
        """Every key of ``bucket`` under ``prefix`` that has an entry (documents, pending writes
        and tombstones), with its state. A full table scan: for verify and reconcile jobs."""
        start: dict[str, Any] | None = None
        while True:
            request: dict[str, Any] = {
                "TableName": self._table,
                "ConsistentRead": True,
                "FilterExpression": (
                    "#sk = :doc AND #bucket = :bucket AND begins_with(#key, :prefix)"
                ),
                # Only what a state needs: bodies and summaries would dominate the scan's cost.
                "ProjectionExpression": ", ".join(f"#p{n}" for n in range(len(_STATE_ATTRIBUTES))),
                "ExpressionAttributeNames": {
                    "#sk": SORT_KEY,
                    "#bucket": Attr.BUCKET,
                    "#key": Attr.KEY,
                    **{f"#p{n}": name for n, name in enumerate(_STATE_ATTRIBUTES)},
                },
                "ExpressionAttributeValues": _serialize(
                    {":doc": DOCUMENT_SORT_KEY, ":bucket": bucket, ":prefix": prefix}
                ),
            }
            if start:
                request["ExclusiveStartKey"] = _serialize(start)
            response = self._call("Scan", lambda r=request: self._client.scan(**r))  # type: ignore[misc]
            for raw in response.get("Items", []):
                item = _deserialize(raw)
                yield str(item[Attr.KEY]), _state_from_item(item)
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            start = _deserialize(last)

    def remove_entry(self, bucket: str, key: str, expected: StoredState) -> bool:
        """Delete the entry and its customer links if it is still ``expected`` (for entries
        past their TTL that DynamoDB has not deleted yet); ``False`` if it changed."""
        pk = document_pk(bucket, key)
        actions: list[TransactWriteItemTypeDef] = [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": _serialize({PARTITION_KEY: pk, SORT_KEY: DOCUMENT_SORT_KEY}),
                    # Still the entry we judged: never delete a newer write or event.
                    "ConditionExpression": "#rev = :rev",
                    "ExpressionAttributeNames": {"#rev": Attr.REVISION},
                    "ExpressionAttributeValues": _serialize({":rev": expected.revision_token}),
                }
            }
        ]
        actions += [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": _serialize({PARTITION_KEY: pk, SORT_KEY: customer_sort_key(code)}),
                }
            }
            for code in _linked_customers(expected.customers)
        ]
        try:
            self._call(
                "TransactWriteItems",
                lambda: self._client.transact_write_items(TransactItems=actions),
            )
        except _ConditionRefusedError:
            return False
        return True

    def _get_item(self, bucket: str, key: str, *, consistent: bool) -> dict[str, Any] | None:
        response = self._call(
            "GetItem",
            lambda: self._client.get_item(
                TableName=self._table,
                Key=_serialize(
                    {PARTITION_KEY: document_pk(bucket, key), SORT_KEY: DOCUMENT_SORT_KEY}
                ),
                ConsistentRead=consistent,
            ),
        )
        raw = response.get("Item")
        return _deserialize(raw) if raw else None

    def _expired(self, item: dict[str, Any]) -> bool:
        expires = item.get(Attr.EXPIRES_AT)
        return expires is not None and int(expires) <= int(self._clock().timestamp())

    # ------------------------------------------------------------------ queries

    def query(self, query: IndexQuery) -> QueryPage:
        """One page of documents matching ``query``, in index-time order.

        Walks the time buckets of the window in order, querying each until the page is full.
        Expired entries are filtered out (DynamoDB deletes them only eventually).
        """
        start_bucket, start_key, window = 0, None, None
        if query.next_token:
            start_bucket, start_key, window = _decode_token(query.next_token, _fingerprint(query))
        plan = self._plan(query, window)
        items: list[DocumentSummary] = []
        for position in range(start_bucket, len(plan.partitions)):
            for page, last_key in self._query_bucket(plan, query, position, start_key, len(items)):
                items += page
                if len(items) >= query.limit:
                    token = _next_token(plan, _fingerprint(query), position, last_key)
                    return QueryPage(items=items, next_token=token)
            start_key = None
        return QueryPage(items=items, next_token=None)

    def _query_bucket(
        self,
        plan: _QueryPlan,
        query: IndexQuery,
        position: int,
        start_key: dict[str, Any] | None,
        already: int,
    ) -> Iterator[tuple[list[DocumentSummary], dict[str, Any] | None]]:
        names = {"#p": plan.index.partition_key, "#s": plan.index.sort_key}
        values: dict[str, Any] = {
            ":p": plan.partitions[position],
            ":since": plan.since,
            ":until": plan.until,
        }
        filters = []
        for number, (attribute, operator, value) in enumerate(plan.filters):
            names[f"#f{number}"] = attribute
            values[f":f{number}"] = value
            if operator == "not_expired":
                filters.append(f"(attribute_not_exists(#f{number}) OR #f{number} > :f{number})")
            else:
                filters.append(f"#f{number} = :f{number}")
        collected = already
        while True:
            request: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": plan.index.name,
                "KeyConditionExpression": "#p = :p AND #s BETWEEN :since AND :until",
                "FilterExpression": " AND ".join(filters),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": _serialize(values),
                "ScanIndexForward": query.order == "asc",
                # Limit counts items read before the filter: never read past a full page, so the
                # last evaluated key is exactly where the next page starts.
                "Limit": query.limit - collected,
            }
            if start_key:
                request["ExclusiveStartKey"] = _serialize(start_key)
            response = self._call("Query", lambda r=request: self._client.query(**r))  # type: ignore[misc]
            page = [_summary_from_item(_deserialize(raw)) for raw in response.get("Items", [])]
            last_raw = response.get("LastEvaluatedKey")
            start_key = _deserialize(last_raw) if last_raw else None
            collected += len(page)
            yield page, start_key
            if start_key is None:
                return

    def _plan(self, query: IndexQuery, window: tuple[str, str] | None) -> _QueryPlan:
        """Choose the GSI, its partition values and filters; fix the time window.

        A continuation token carries the window of the first page, so a default window that
        moves with the clock does not shift under a paging client.
        """
        now = self._clock()
        if window is not None:
            since, until = window
        else:
            since = format_time(query.since or now - timedelta(days=DEFAULT_WINDOW_DAYS))
            # One day of slack past now: an index time a little ahead of our clock is still found.
            until = format_time(query.until or now + timedelta(days=1))
        filters: list[tuple[str, str, Any]] = [
            (Attr.EXPIRES_AT, "not_expired", int(now.timestamp()))
        ]
        if query.kind is not None:
            filters.append((Attr.KIND, "eq", DocumentKind(query.kind).value))
        index, value = TIME_RANGE_INDEX, None
        if query.customer is not None:
            index, value = CUSTOMER_TIME_INDEX, query.customer.strip().lower()
            if query.status is not None:
                filters.append((Attr.STATUS, "eq", query.status))
        elif query.status is not None:
            index, value = STATUS_TIME_INDEX, query.status
        buckets = index.buckets_between(parse_time(since), parse_time(until))
        if query.order == "desc":
            buckets.reverse()
        partitions = [b if value is None else f"{value}{GSI_VALUE_SEPARATOR}{b}" for b in buckets]
        return _QueryPlan(index, partitions, since, until, filters)

    # ------------------------------------------------------------------ plumbing

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        try:
            return self._retry.call(operation, fn)
        except ClientError as error:
            raise _translate(operation, error) from error
        except BotoCoreError as error:
            raise IndexUnavailableError(operation, type(error).__name__, str(error)) from error


def _newer_clause(new: OrderingFacts, values: dict[str, Any]) -> str:
    """The condition that the stored state is older than ``new`` (``ordering.supersedes``)."""
    values[":lm"] = format_time(new.s3_time)
    # Same instant on S3's clock: only a different object counts as newer, so a redelivered
    # event is a duplicate. A deletion (no ETag) is newer than an object, not than a deletion.
    if new.etag is not None:
        values[":etag"] = new.etag
        same_instant_differs = "(attribute_not_exists(#etag) OR #etag <> :etag)"
    else:
        same_instant_differs = "attribute_exists(#etag)"
    by_s3_clock = f"(#lm < :lm OR (#lm = :lm AND {same_instant_differs}))"
    if new.sequencer is not None:
        values[":seq"] = new.sequencer
        newer = (
            "(attribute_not_exists(#pk)"  # first state we see for this key
            " OR #seq < :seq"  # stored state came from an earlier event of this key
            # stored state has no sequencer (backfill, write-through): S3's clock decides
            f" OR (attribute_not_exists(#seq) AND {by_s3_clock}))"
        )
    else:
        newer = (
            "(attribute_not_exists(#pk)"  # first state we see for this key
            # no sequencer to compare: S3's clock decides...
            " OR #lm < :lm"
            # ...and at the same instant (LastModified has whole seconds) a state that came
            # with a sequencer is the authority: only an unsequenced one may be replaced
            f" OR (#lm = :lm AND attribute_not_exists(#seq) AND {same_instant_differs}))"
        )
    return newer


def _translate(operation: str, error: ClientError) -> CacheSyncError:
    """The one place DynamoDB error codes become cachesync errors."""
    code = error_code(error)
    message = str(error.response.get("Error", {}).get("Message", error))
    # botocore adds the modelled fields of these errors (Item, CancellationReasons) to the
    # response; the stubs type the response without them.
    response: dict[str, Any] = dict(error.response)
    if code == "ConditionalCheckFailedException":
        raw = response.get("Item")
        return _ConditionRefusedError(_deserialize(raw) if raw else None)
    if code == "TransactionCanceledException":
        reasons: list[dict[str, Any]] = response.get("CancellationReasons", [])
        if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
            raw = reasons[0].get("Item")
            return _ConditionRefusedError(_deserialize(raw) if raw else None)
        message = f"{message} (reasons: {[r.get('Code') for r in reasons]})"
    if _is_transient(error):
        return IndexUnavailableError(operation, code, message)
    return IndexRequestError(operation, code, message)


# ---------------------------------------------------------------------- item mapping


def _gsi_keys(index: GlobalIndex, value: str | None, index_time: datetime) -> dict[str, str]:
    bucket = index.bucket_of(index_time)
    partition = bucket if value is None else f"{value}{GSI_VALUE_SEPARATOR}{bucket}"
    return {index.partition_key: partition, index.sort_key: format_time(index_time)}


def _primary_customer(customers: Sequence[str]) -> str | None:
    """The customer whose CustomerTimeIndex entry is the document item itself.

    The smallest code, so that the same set of customers in another order keeps its primary
    (and its link items) unchanged.
    """
    return min(customers, default=None)


def _linked_customers(customers: Sequence[str]) -> list[str]:
    """The customers that need a link item: all but the primary."""
    primary = _primary_customer(customers)
    return [customer for customer in customers if customer != primary]


def _customers_key(customers: Sequence[str]) -> str:
    return "\n".join(sorted(customers))


def _epoch(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


def _fit_item(item: dict[str, Any], bucket: str, key: str) -> dict[str, Any]:
    """Drop the body (readers then fetch from S3) when it would push the item past the limit."""
    if _item_size(item) <= MAX_ITEM_BYTES:
        return item
    slim = {**item, Attr.BODY: None, Attr.BODY_IN_S3: True}
    size = _item_size(slim)
    if size > MAX_ITEM_BYTES:
        raise ItemTooLargeError(bucket, key, size)
    return slim


def _item_size(value: Any) -> int:
    """An upper estimate of an item's size by DynamoDB's rules (names plus values, UTF-8)."""
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, int | Decimal):
        return len(str(value)) // 2 + 2
    if isinstance(value, dict):
        return 3 + sum(len(k.encode("utf-8")) + 1 + _item_size(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return 3 + sum(1 + _item_size(v) for v in value)
    raise TypeError(f"unexpected attribute type {type(value).__name__}")


def _serialize(values: dict[str, Any]) -> dict[str, Any]:
    return {
        name: _serializer.serialize(value) for name, value in values.items() if value is not None
    }


def _deserialize(raw: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in raw.items()}


def _optional_time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(value), UTC)


def _state_from_item(item: dict[str, Any]) -> StoredState:
    etag = item.get(Attr.ETAG)
    pending_since = item.get(Attr.PENDING_SINCE)
    return StoredState(
        is_tombstone=item.get(Attr.RECORD_TYPE) == RecordType.TOMBSTONE,
        is_pending=item.get(Attr.RECORD_TYPE) == RecordType.PENDING,
        pending_since=parse_time(pending_since) if pending_since else None,
        ordering=OrderingFacts(
            sequencer=item.get(Attr.SEQUENCER),
            s3_time=parse_time(str(item[Attr.S3_LAST_MODIFIED])),
            etag=None if etag is None else str(etag),
        ),
        version_id=item.get(Attr.VERSION_ID),
        customers=tuple(item.get(Attr.CUSTOMERS, ())),
        kind=item.get(Attr.KIND),
        index_time=parse_time(item[Attr.INDEX_TIME]) if item.get(Attr.INDEX_TIME) else None,
        revision_token=str(item.get(Attr.REVISION, "")),
        expires_at=_optional_time(item.get(Attr.EXPIRES_AT)),
    )


def _summary_fields(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "bucket": item[Attr.BUCKET],
        "key": item[Attr.KEY],
        "kind": item[Attr.KIND],
        "doc_id": item[Attr.DOC_ID],
        "title": item.get(Attr.TITLE, ""),
        "status": item[Attr.STATUS],
        "customers": tuple(item.get(Attr.CUSTOMERS, ())),
        "index_time": parse_time(item[Attr.INDEX_TIME]),
        "etag": item[Attr.ETAG],
        "version_id": item.get(Attr.VERSION_ID),
        "size": int(item[Attr.SIZE]),
        "s3_last_modified": parse_time(item[Attr.S3_LAST_MODIFIED]),
        "expires_at": _optional_time(item.get(Attr.EXPIRES_AT)),
    }


def _summary_from_item(item: dict[str, Any]) -> DocumentSummary:
    return DocumentSummary(**_summary_fields(item))


def _document_from_item(item: dict[str, Any]) -> IndexedDocument:
    return IndexedDocument(
        **_summary_fields(item),
        body=item.get(Attr.BODY),
        body_in_s3=bool(item.get(Attr.BODY_IN_S3, False)),
        sequencer=item.get(Attr.SEQUENCER),
        source=WriteSource(item[Attr.SOURCE]),
        updated_at=parse_time(item[Attr.UPDATED_AT]),
    )


# ---------------------------------------------------------------------- continuation tokens


def _fingerprint(query: IndexQuery) -> str:
    """What a token must match: the query's parameters, not its page position."""
    identity = query.model_dump(mode="json", exclude={"limit", "next_token"})
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _next_token(
    plan: _QueryPlan, fingerprint: str, position: int, last_key: dict[str, Any] | None
) -> str | None:
    if last_key is None:
        position += 1
        if position >= len(plan.partitions):
            return None
    payload = {
        "v": _TOKEN_VERSION,
        "f": fingerprint,
        "b": position,
        "k": last_key,
        "w": [plan.since, plan.until],
    }
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def _decode_token(
    token: str, fingerprint: str
) -> tuple[int, dict[str, Any] | None, tuple[str, str]]:
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode()))
        version, owner = payload["v"], payload["f"]
        position, last_key = int(payload["b"]), payload["k"]
        since, until = (str(part) for part in payload["w"])
    except (binascii.Error, ValueError, KeyError, TypeError) as error:
        raise InvalidQueryError("next_token is not a token this index issued") from error
    if version != _TOKEN_VERSION or owner != fingerprint:
        raise InvalidQueryError("next_token belongs to another query")
    if last_key is not None and not isinstance(last_key, dict):
        raise InvalidQueryError("next_token is not a token this index issued")
    return position, last_key, (since, until)
