"""The change feed table's layout: what the feed published per document, and the analytics.

One table, two kinds of item (``pk``/``sk``, both strings):

* ``pk = "published#<bucket>/<key>"``, ``sk = "state"``: what the feed last published for a
  document (``change_events.Published``): the snapshot as JSON (absent after a deletion) and the
  stream sequence number it came from. Each record's aggregates are written in the same
  transaction as this item, conditioned on its sequence being older than the record's: a
  retried stream record fails the condition and counts nothing twice.
* ``pk = "month#<YYYY-MM>"``, ``sk = "<YYYY-MM-DD>#volume#<customer>#<status>#<kind>"``:
  counters of one day, customer, status and kind: ``created``, ``updated``, ``deleted``,
  ``entered`` (documents that moved into this status), ``left`` (moved out of it) and one
  ``from:<status>`` per status they came from (the transitions). A window is one ``Query`` per
  month with ``sk BETWEEN``.
* ``pk = "month#<YYYY-MM>"``, ``sk = "<YYYY-MM-DD>#lag"``: sync lag of the day's changes (the
  stream's record time minus S3's LastModified): ``lag_count``, ``lag_ms_sum`` and a histogram
  ``lag_le_<ms>`` / ``lag_over``.
"""

from __future__ import annotations

from typing import Any, Final

CHANGE_FEED_TABLE_NAME_DEFAULT: Final = "cachesync-change-feed"

PARTITION_KEY: Final = "pk"
SORT_KEY: Final = "sk"
PUBLISHED_PREFIX: Final = "published#"
PUBLISHED_SORT_KEY: Final = "state"
MONTH_PREFIX: Final = "month#"
VOLUME_MARK: Final = "volume"
LAG_MARK: Final = "lag"
# A document naming no customer is counted under this code (customer codes are never empty).
NO_CUSTOMER: Final = "-"
# Upper bounds (milliseconds) of the sync-lag histogram's buckets; slower ones are "over".
LAG_BUCKETS_MS: Final = (100, 1_000, 10_000, 60_000)


class FeedAttr:
    """Attribute names of change feed items."""

    PK: Final = PARTITION_KEY
    SK: Final = SORT_KEY
    SEQUENCE: Final = "sequence"
    SNAPSHOT: Final = "snapshot"
    UPDATED_AT: Final = "updated_at"
    CREATED: Final = "created"
    UPDATED: Final = "updated"
    DELETED: Final = "deleted"
    ENTERED: Final = "entered"
    LEFT: Final = "left"
    FROM_PREFIX: Final = "from:"
    """``from:<status>``: documents that moved into this item's status from ``<status>``."""
    LAG_COUNT: Final = "lag_count"
    LAG_MS_SUM: Final = "lag_ms_sum"
    LAG_LE_PREFIX: Final = "lag_le_"
    LAG_OVER: Final = "lag_over"


def published_key(document_pk: str) -> dict[str, str]:
    """The key of the published-state item of the document whose index ``pk`` is given."""
    return {PARTITION_KEY: f"{PUBLISHED_PREFIX}{document_pk}", SORT_KEY: PUBLISHED_SORT_KEY}


def month_pk(day: str) -> str:
    """The partition of the analytics of ``day`` (``YYYY-MM-DD``)."""
    return f"{MONTH_PREFIX}{day[:7]}"


def volume_sort_key(day: str, customer: str, status: str, kind: str) -> str:
    """The sort key of one day's counters of a customer, status and kind."""
    return f"{day}#{VOLUME_MARK}#{customer}#{status}#{kind}"


def lag_sort_key(day: str) -> str:
    """The sort key of one day's sync-lag figures."""
    return f"{day}#{LAG_MARK}"


def create_change_feed_table_request(table_name: str) -> dict[str, Any]:
    """The ``CreateTable`` arguments of the change feed table (on-demand, no index)."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": SORT_KEY, "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
    }
