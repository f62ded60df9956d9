"""The index table's layout: the single source of truth for names, keys, GSIs and TTL.

The local stack creates the table from :func:`create_table_request`; the Terraform in ``infra/``
is checked against these constants by a test. Nothing else spells an attribute name.

Item layout (one partition per S3 object, ``pk = "<bucket>/<key>"``; bucket names cannot hold a
``/`` so the split is unambiguous):

* ``sk = "doc"``: the document item. Holds the metadata, the ordering facts (sequencer, S3
  LastModified), the body (or ``body_in_s3`` when it would not fit) and the keys of
  ``TimeRangeIndex``, ``StatusTimeIndex`` and, for its primary customer (the smallest code),
  ``CustomerTimeIndex``: a single-customer document is one item.
* ``sk = "customer#<code>"``: one small link item per *other* customer the document names,
  holding the summary fields and the keys of ``CustomerTimeIndex``. Written and removed in the
  same transaction as the document item, so a customer query never sees a customer the document
  no longer names.
* A deleted object leaves a tombstone in place of the document item: no GSI key attributes (so it
  is in no index), its sequencer, and a TTL of its own.

GSI partition keys carry a time period so that no index puts every document under one partition
key value: ``TimeRangeIndex`` and ``StatusTimeIndex`` partition by month, ``CustomerTimeIndex``
by year (one customer's documents per month are few). Queries walk the periods of their window in
order and merge. ("Bucket" always means the S3 bucket; the time slice is a "period".)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

TABLE_NAME_DEFAULT: Final = "cachesync-index"
IDEMPOTENCY_TABLE_NAME_DEFAULT: Final = "cachesync-idempotency"

# The index table's stream: both images of every item change (the change feed's input).
STREAM_VIEW_TYPE: Final = "NEW_AND_OLD_IMAGES"

# Table key.
PARTITION_KEY: Final = "pk"
SORT_KEY: Final = "sk"
DOCUMENT_SORT_KEY: Final = "doc"
CUSTOMER_SORT_KEY_PREFIX: Final = "customer#"

# TTL: epoch seconds. DynamoDB deletes expired items only eventually, so every read filters on it.
TTL_ATTRIBUTE: Final = "expires_at"


class Attr:
    """Attribute names of index items."""

    RECORD_TYPE: Final = "record_type"
    BUCKET: Final = "bucket"
    KEY: Final = "object_key"
    KIND: Final = "kind"
    DOC_ID: Final = "doc_id"
    TITLE: Final = "title"
    STATUS: Final = "status"
    CUSTOMERS: Final = "customers"
    CUSTOMERS_KEY: Final = "customers_key"
    CUSTOMER: Final = "customer"
    INDEX_TIME: Final = "index_time"
    ETAG: Final = "etag"
    VERSION_ID: Final = "version_id"
    SIZE: Final = "size"
    S3_LAST_MODIFIED: Final = "s3_last_modified"
    SEQUENCER: Final = "sequencer"
    SOURCE: Final = "source"
    BODY: Final = "body"
    BODY_IN_S3: Final = "body_in_s3"
    REVISION: Final = "revision"
    UPDATED_AT: Final = "updated_at"
    PENDING_OPERATION: Final = "pending_operation"
    PENDING_SINCE: Final = "pending_since"
    EXPIRES_AT: Final = TTL_ATTRIBUTE


class RecordType(StrEnum):
    """What an index item is."""

    DOCUMENT = "document"
    CUSTOMER_LINK = "customer_link"
    TOMBSTONE = "tombstone"
    PENDING = "pending"
    """A write-through in progress: invisible to reads and queries (no GSI key attributes)."""


class PeriodSize(StrEnum):
    """Granularity of a GSI's time periods."""

    MONTH = "month"
    YEAR = "year"


@dataclass(frozen=True, slots=True)
class GlobalIndex:
    """One GSI: its name, key attributes and the time period baked into its partition key."""

    name: str
    partition_key: str
    sort_key: str
    period_size: PeriodSize

    def period_of(self, moment: datetime) -> str:
        """The time period (``2026-11`` or ``2026``) that ``moment`` falls in, in UTC."""
        utc = moment.astimezone(UTC)
        if self.period_size is PeriodSize.MONTH:
            return f"{utc.year:04d}-{utc.month:02d}"
        return f"{utc.year:04d}"

    def periods_between(self, since: datetime, until: datetime) -> list[str]:
        """Every period from the one holding ``since`` to the one holding ``until``, ascending."""
        start, end = since.astimezone(UTC), until.astimezone(UTC)
        periods: list[str] = []
        if self.period_size is PeriodSize.YEAR:
            return [f"{year:04d}" for year in range(start.year, end.year + 1)]
        year, month = start.year, start.month
        while (year, month) <= (end.year, end.month):
            periods.append(f"{year:04d}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return periods

    def partition_value(self, value: str | None, period: str) -> str:
        """The GSI partition key value of ``value`` (customer, status, or none) in ``period``."""
        return period if value is None else f"{value}{GSI_VALUE_SEPARATOR}{period}"


TIME_RANGE_INDEX: Final = GlobalIndex("TimeRangeIndex", "tr_pk", "tr_sk", PeriodSize.MONTH)
CUSTOMER_TIME_INDEX: Final = GlobalIndex("CustomerTimeIndex", "ct_pk", "ct_sk", PeriodSize.YEAR)
STATUS_TIME_INDEX: Final = GlobalIndex("StatusTimeIndex", "st_pk", "st_sk", PeriodSize.MONTH)
GLOBAL_INDEXES: Final = (TIME_RANGE_INDEX, CUSTOMER_TIME_INDEX, STATUS_TIME_INDEX)

# Partition key values of the customer and status indexes join the value and the period.
GSI_VALUE_SEPARATOR: Final = "#"


def document_pk(bucket: str, key: str) -> str:
    """The partition key of every item about ``s3://bucket/key``."""
    return f"{bucket}/{key}"


def customer_sort_key(customer: str) -> str:
    """The sort key of the link item for ``customer``."""
    return f"{CUSTOMER_SORT_KEY_PREFIX}{customer}"


# What a query returns: the GSIs project these and no body, so index storage and write cost do
# not grow with document size. A reader wanting the body gets the document by key.
SUMMARY_ATTRIBUTES: Final = (
    Attr.RECORD_TYPE,
    Attr.BUCKET,
    Attr.KEY,
    Attr.KIND,
    Attr.DOC_ID,
    Attr.TITLE,
    Attr.STATUS,
    Attr.CUSTOMERS,
    Attr.INDEX_TIME,
    Attr.ETAG,
    Attr.VERSION_ID,
    Attr.SIZE,
    Attr.S3_LAST_MODIFIED,
    Attr.EXPIRES_AT,
)


def create_table_request(table_name: str) -> dict[str, Any]:
    """The ``CreateTable`` arguments of the index table (on-demand, three summary GSIs, a
    stream of both images)."""
    key_attributes = [PARTITION_KEY, SORT_KEY]
    for index in GLOBAL_INDEXES:
        key_attributes += [index.partition_key, index.sort_key]
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"} for name in key_attributes
        ],
        "KeySchema": [
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        # The change feed (change_feed.py) compares each entry's new state with what it last
        # published, so it needs the new image; the old one stands in before it published any.
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": STREAM_VIEW_TYPE},
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.partition_key, "KeyType": "HASH"},
                    {"AttributeName": index.sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": list(SUMMARY_ATTRIBUTES),
                },
            }
            for index in GLOBAL_INDEXES
        ],
    }


def create_idempotency_table_request(table_name: str) -> dict[str, Any]:
    """``CreateTable`` arguments of the table Powertools' idempotency utility persists to."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
    }


IDEMPOTENCY_TTL_ATTRIBUTE: Final = "expiration"
