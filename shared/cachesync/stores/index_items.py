"""Index items: the mapping between cachesync's domain models and DynamoDB items, both ways.

Pure functions (no I/O): the store calls them on the way out (an :class:`IndexEntry` becomes a
document item and its customer link items) and on the way in (an item becomes a
:class:`StoredState`, a :class:`DocumentSummary` or an :class:`IndexedDocument`). The layout they
write is described in ``index_schema.py``; nothing outside ``stores/`` sees an item.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from cachesync.exceptions import ItemTooLargeError
from cachesync.index_models import (
    DocumentSummary,
    IndexedDocument,
    IndexEntry,
    StoredState,
    Tombstone,
    WriteSource,
)
from cachesync.index_schema import (
    CUSTOMER_TIME_INDEX,
    DOCUMENT_SORT_KEY,
    GLOBAL_INDEXES,
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
from cachesync.ordering import OrderingFacts, format_time, parse_time

Item = dict[str, Any]
"""One index item as Python values (before serialisation to DynamoDB's typed JSON)."""

# DynamoDB's item limit is 409,600 bytes; moto's is 400,000. Stay under both, with room for the
# attributes our size estimate counts loosely.
MAX_ITEM_BYTES: Final = 390_000
# No previous entry: a pending marker's ordering time is older than any state S3 can report.
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# The attributes state_from_item reads, plus the object key: what a scan of states projects.
STATE_ATTRIBUTES: Final = (
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
# What a pending marker keeps of the entry it replaces: its ordering facts (so events keep their
# guards) and its customers (so the commit knows which customer links exist).
_CARRIED_BY_PENDING: Final = (
    Attr.CUSTOMERS,
    Attr.CUSTOMERS_KEY,
    Attr.S3_LAST_MODIFIED,
    Attr.SEQUENCER,
    Attr.ETAG,
    Attr.VERSION_ID,
)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


@dataclass(frozen=True, slots=True)
class DocumentItems:
    """The items of one indexed document: the document item and one link per other customer."""

    document: Item
    links: list[Item]


# ---------------------------------------------------------------------- domain -> item


def document_key(bucket: str, key: str) -> Item:
    """The table key of the entry (document, tombstone or pending marker) of ``bucket/key``."""
    return {PARTITION_KEY: document_pk(bucket, key), SORT_KEY: DOCUMENT_SORT_KEY}


def link_key(partition: str, customer: str) -> Item:
    """The table key of the customer link item for ``customer`` in ``partition``."""
    return {PARTITION_KEY: partition, SORT_KEY: customer_sort_key(customer)}


def document_items(entry: IndexEntry, now: datetime) -> DocumentItems:
    """The items that index ``entry``, written at ``now``.

    Raises :class:`ItemTooLargeError` when even the metadata does not fit in one item.
    """
    version, document = entry.version, entry.document
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
        Attr.EXPIRES_AT: epoch_seconds(document.expires_at),
    }
    item = {
        **summary,
        **document_key(version.bucket, version.key),
        Attr.RECORD_TYPE: RecordType.DOCUMENT.value,
        Attr.CUSTOMERS_KEY: customers_key(document.customers),
        Attr.SEQUENCER: version.sequencer,
        Attr.SOURCE: entry.source.value,
        Attr.UPDATED_AT: format_time(now),
        Attr.BODY: document.body,
        Attr.BODY_IN_S3: False,
        **gsi_keys(TIME_RANGE_INDEX, None, document.index_time),
        **gsi_keys(STATUS_TIME_INDEX, document.status, document.index_time),
    }
    primary = primary_customer(document.customers)
    if primary is not None:
        # The document item is its primary customer's entry in CustomerTimeIndex: a
        # single-customer document is one item, written with one conditional PutItem.
        item.update(gsi_keys(CUSTOMER_TIME_INDEX, primary, document.index_time))
    item = fit_item(item, version.bucket, version.key)
    links = [
        {
            **summary,
            **link_key(item[PARTITION_KEY], customer),
            Attr.RECORD_TYPE: RecordType.CUSTOMER_LINK.value,
            Attr.CUSTOMER: customer,
            **gsi_keys(CUSTOMER_TIME_INDEX, customer, document.index_time),
        }
        for customer in linked_customers(document.customers)
    ]
    return DocumentItems(document=item, links=links)


def tombstone_item(tombstone: Tombstone, now: datetime, ttl: timedelta) -> Item:
    """The item that records the deletion of a key: in no GSI, expiring ``ttl`` after ``now``."""
    return {
        **document_key(tombstone.bucket, tombstone.key),
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
        Attr.EXPIRES_AT: epoch_seconds(now + ttl),
    }


def pending_item(
    bucket: str, key: str, operation: str, previous: Item | None, now: datetime
) -> Item:
    """A write-through's pending marker for ``bucket/key``, replacing the entry ``previous``.

    It keeps ``previous``'s ordering facts and customers, has no GSI keys and no document (reads
    and queries do not see it), and carries a fresh revision so that commit and rollback can be
    conditioned on it.
    """
    carried = {name: previous.get(name) for name in _CARRIED_BY_PENDING} if previous else {}
    return {
        Attr.CUSTOMERS: [],
        Attr.CUSTOMERS_KEY: "",
        Attr.S3_LAST_MODIFIED: format_time(EPOCH),
        **{name: value for name, value in carried.items() if value is not None},
        **document_key(bucket, key),
        Attr.RECORD_TYPE: RecordType.PENDING.value,
        Attr.BUCKET: bucket,
        Attr.KEY: key,
        Attr.SOURCE: WriteSource.WRITE_THROUGH.value,
        Attr.PENDING_OPERATION: operation,
        Attr.PENDING_SINCE: format_time(now),
        Attr.UPDATED_AT: format_time(now),
        # Known before the write, so commit and rollback can be conditioned on it.
        Attr.REVISION: new_revision(),
    }


# A claim leaves these in place when the replaced entry has them and writes the marker's defaults
# otherwise (see pending_item): the carried facts the marker always has a value for.
_DEFAULTED_BY_PENDING: Final = frozenset(
    {Attr.CUSTOMERS, Attr.CUSTOMERS_KEY, Attr.S3_LAST_MODIFIED}
)
# What a claim removes from the replaced entry: the document, its summary, its expiry and its GSI
# keys, so that reads and queries do not see the marker.
_REMOVED_BY_PENDING: Final = (
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


@dataclass(frozen=True)
class PendingClaim:
    """One ``UpdateItem`` that turns whatever entry a key has into our pending marker.

    Reading the replaced entry and replacing it happen in one call (``ReturnValues=ALL_OLD``):
    no other writer can get in between, so the claim needs neither a read before nor a condition.
    """

    fresh: Item
    """The marker as :func:`pending_item` builds it for a key with no entry."""
    key: Item
    update_expression: str
    names: dict[str, str]
    values: Item

    def marker(self, previous: Item | None) -> Item:
        """The marker the claim left, given the entry it replaced (``ALL_OLD``)."""
        carried = {
            name: previous[name]
            for name in _CARRIED_BY_PENDING
            if previous is not None and previous.get(name) is not None
        }
        return {**self.fresh, **carried}


def pending_claim(bucket: str, key: str, operation: str, now: datetime) -> PendingClaim:
    """The update that claims ``bucket/key`` for a write-through (see :class:`PendingClaim`)."""
    fresh = pending_item(bucket, key, operation, None, now)
    names: dict[str, str] = {}
    values: Item = {}
    assignments: list[str] = []
    for number, (name, value) in enumerate(fresh.items()):
        if name in (PARTITION_KEY, SORT_KEY):
            continue
        names[f"#s{number}"], values[f":s{number}"] = name, value
        if name in _DEFAULTED_BY_PENDING:
            # The replaced entry's own value wins: the marker carries its ordering facts.
            assignments.append(f"#s{number} = if_not_exists(#s{number}, :s{number})")
        else:
            assignments.append(f"#s{number} = :s{number}")
    removals: list[str] = []
    for number, name in enumerate(_REMOVED_BY_PENDING):
        names[f"#r{number}"] = name
        removals.append(f"#r{number}")
    return PendingClaim(
        fresh=fresh,
        key={PARTITION_KEY: fresh[PARTITION_KEY], SORT_KEY: fresh[SORT_KEY]},
        update_expression=f"SET {', '.join(assignments)} REMOVE {', '.join(removals)}",
        names=names,
        values=values,
    )


def with_revision(item: Item) -> Item:
    """``item`` with a revision: its own if it has one (a pending marker's), else a fresh one."""
    return {**item, Attr.REVISION: item.get(Attr.REVISION) or new_revision()}


def new_revision() -> str:
    """A fresh revision token: unique per write, so a condition on it proves nobody wrote since."""
    return uuid.uuid4().hex


def gsi_keys(index: GlobalIndex, value: str | None, index_time: datetime) -> dict[str, str]:
    """The key attributes that place an item in ``index`` under ``value`` at ``index_time``."""
    return {
        index.partition_key: index.partition_value(value, index.period_of(index_time)),
        index.sort_key: format_time(index_time),
    }


def gsi_position(index: GlobalIndex, item: Item) -> Item:
    """Where ``item`` sits in ``index``: its table and index keys, an ``ExclusiveStartKey`` that
    resumes a query of ``index`` right after it."""
    return {
        name: item[name] for name in (PARTITION_KEY, SORT_KEY, index.partition_key, index.sort_key)
    }


def primary_customer(customers: Sequence[str]) -> str | None:
    """The customer whose CustomerTimeIndex entry is the document item itself.

    The smallest code, so that the same set of customers in another order keeps its primary
    (and its link items) unchanged.
    """
    return min(customers, default=None)


def linked_customers(customers: Sequence[str]) -> list[str]:
    """The customers that need a link item: all but the primary."""
    primary = primary_customer(customers)
    return [customer for customer in customers if customer != primary]


def links_to_remove(stored: Sequence[str], written: Sequence[str]) -> list[str]:
    """Customers whose link items a write must delete: linked before, not linked by the write."""
    return sorted(set(linked_customers(stored)) - set(linked_customers(written)))


def customers_key(customers: Sequence[str]) -> str:
    """The customer set as one comparable string (order-free), for the optimistic write guard."""
    return "\n".join(sorted(customers))


def epoch_seconds(moment: datetime | None) -> int | None:
    """``moment`` as epoch seconds, DynamoDB's TTL format."""
    return None if moment is None else int(moment.timestamp())


def fit_item(item: Item, bucket: str, key: str) -> Item:
    """Drop the body (readers then fetch from S3) when it would push the item past the limit."""
    if item_size(item) <= MAX_ITEM_BYTES:
        return item
    slim = {**item, Attr.BODY: None, Attr.BODY_IN_S3: True}
    size = item_size(slim)
    if size > MAX_ITEM_BYTES:
        raise ItemTooLargeError(bucket, key, size)
    return slim


def item_size(value: Any) -> int:
    """An upper estimate of an item's size by DynamoDB's rules (names plus values, UTF-8)."""
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, int | Decimal):
        return len(str(value)) // 2 + 2
    if isinstance(value, dict):
        return 3 + sum(len(k.encode("utf-8")) + 1 + item_size(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return 3 + sum(1 + item_size(v) for v in value)
    raise TypeError(f"unexpected attribute type {type(value).__name__}")


def serialize(values: dict[str, Any]) -> dict[str, Any]:
    """Python values as DynamoDB's typed JSON; ``None`` values are left out (no NULL attributes)."""
    return {
        name: _serializer.serialize(value) for name, value in values.items() if value is not None
    }


def deserialize(raw: dict[str, Any]) -> Item:
    """DynamoDB's typed JSON as Python values (numbers become :class:`~decimal.Decimal`)."""
    return {name: _deserializer.deserialize(value) for name, value in raw.items()}


# ---------------------------------------------------------------------- item -> domain


def is_expired(item: Item, now: datetime) -> bool:
    """Whether ``item`` is past its TTL (DynamoDB deletes expired items only eventually)."""
    expires = item.get(Attr.EXPIRES_AT)
    return expires is not None and int(expires) <= int(now.timestamp())


def is_live_document(item: Item, now: datetime) -> bool:
    """Whether ``item`` is a document a read may return (not a tombstone, pending or expired)."""
    return item.get(Attr.RECORD_TYPE) == RecordType.DOCUMENT and not is_expired(item, now)


def state_from_item(item: Item) -> StoredState:
    """The ordering-relevant state an entry item holds (tombstones and pending markers too)."""
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


def summary_from_item(item: Item) -> DocumentSummary:
    """The query view of a document or link item (no body)."""
    return DocumentSummary(**_summary_fields(item))


def document_from_item(item: Item) -> IndexedDocument:
    """The read view of a document item: summary, body and provenance."""
    return IndexedDocument(
        **_summary_fields(item),
        body=item.get(Attr.BODY),
        body_in_s3=bool(item.get(Attr.BODY_IN_S3, False)),
        sequencer=item.get(Attr.SEQUENCER),
        source=WriteSource(item[Attr.SOURCE]),
        updated_at=parse_time(item[Attr.UPDATED_AT]),
    )


def _summary_fields(item: Item) -> dict[str, Any]:
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


def _optional_time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(value), UTC)
