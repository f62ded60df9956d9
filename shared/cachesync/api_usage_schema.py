"""The API usage table's layout: per-key request counters and signing nonces, expiring by TTL.

One item per key and minute, ``counter_id`` = ``rate#<key id>#<epoch minute>`` the partition key:
``n`` counts the minute's requests reserved by the API instances (each instance reserves a few
at a time: a lease), ``s<second>`` each second's (the burst), ``l`` the reservations made. Items
expire (TTL ``expires_at``) a few minutes after their minute: the table holds only recent
counters. Every API instance counts in the same items, so a limit holds in total.

A signed request's nonce is an item ``nonce#<key id>#<nonce>``, written only if absent, that
expires after the signature's validity window: a replay within the window finds it.
"""

from __future__ import annotations

from typing import Any, Final

API_USAGE_TABLE_NAME_DEFAULT: Final = "cachesync-api-usage"

PARTITION_KEY: Final = "counter_id"
TTL_ATTRIBUTE: Final = "expires_at"
RATE_COUNTER_PREFIX: Final = "rate#"


class UsageAttr:
    """Attribute names of usage items."""

    COUNTER_ID: Final = PARTITION_KEY
    MINUTE_COUNT: Final = "n"
    SECOND_COUNT_PREFIX: Final = "s"
    """``s0`` .. ``s59``: the admitted requests of that second of the minute."""
    LEASE_COUNT: Final = "l"
    """How many reservations (leases: ``api/request_limits.py``) made the minute's count: the
    writes its requests cost."""
    EXPIRES_AT: Final = TTL_ATTRIBUTE
    CLAIM: Final = "claim"
    """On a nonce item: a token of the call that wrote it (its own retry is no replay)."""


def rate_counter_id(key_id: str, epoch_minute: int) -> str:
    """The counter item of ``key_id`` in the minute ``epoch_minute`` (seconds since epoch // 60)."""
    return f"{RATE_COUNTER_PREFIX}{key_id}#{epoch_minute}"


def create_api_usage_table_request(table_name: str) -> dict[str, Any]:
    """The ``CreateTable`` arguments of the API usage table (on-demand, no index)."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": PARTITION_KEY, "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}],
    }


NONCE_PREFIX: Final = "nonce#"


def nonce_item_id(key_id: str, nonce: str) -> str:
    """The item recording that ``key_id`` used ``nonce`` in a signed request."""
    return f"{NONCE_PREFIX}{key_id}#{nonce}"
