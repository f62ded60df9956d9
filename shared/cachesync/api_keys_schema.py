"""The API keys table's layout: the single source of truth for its names and keys.

One item per key, ``key_id`` the partition key (the public part of a key, never the secret).
The secret itself is never stored: only a salted SHA-256 of it (``api/keys.py``). A revoked key
keeps its item (so ``keys list`` shows it and it can never authenticate again) until its TTL,
set at revocation, lets DynamoDB remove it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

API_KEYS_TABLE_NAME_DEFAULT: Final = "cachesync-api-keys"

PARTITION_KEY: Final = "key_id"
# TTL: epoch seconds; only revoked keys have it.
TTL_ATTRIBUTE: Final = "expires_at"
# How long a revoked key's item is kept, for audits, before DynamoDB may delete it.
REVOKED_KEY_RETENTION: Final = timedelta(days=90)


class KeyAttr:
    """Attribute names of API key items."""

    KEY_ID: Final = PARTITION_KEY
    NAME: Final = "name"
    SALT: Final = "salt"
    SECRET_HASH: Final = "secret_hash"  # noqa: S105 (an attribute name, not a secret)
    CUSTOMERS: Final = "customers"
    """Customer codes the key may see; ``["*"]`` for every customer."""
    SCOPES: Final = "scopes"
    CREATED_AT: Final = "created_at"
    REVOKED_AT: Final = "revoked_at"
    ROTATED_AT: Final = "rotated_at"
    PREVIOUS_SALT: Final = "previous_salt"
    PREVIOUS_SECRET_HASH: Final = "previous_secret_hash"  # noqa: S105 (an attribute name)
    PREVIOUS_VALID_UNTIL: Final = "previous_valid_until"
    """After a rotation, the old secret works until then (its grace period)."""
    EXPIRES_AT: Final = TTL_ATTRIBUTE
    ALLOWED_CIDRS: Final = "allowed_cidrs"
    """Networks the key may be used from (list of CIDR strings); absent: any address."""
    REQUIRES_SIGNING: Final = "requires_signing"
    """``True``: every request of the key must be signed; absent: signing optional."""
    RATE_PER_MINUTE: Final = "rate_per_minute"
    """The key's own limit per minute; absent: the API's default."""
    RATE_BURST: Final = "rate_burst"
    """The key's own limit per second; absent: the API's default."""


def create_api_keys_table_request(table_name: str) -> dict[str, Any]:
    """The ``CreateTable`` arguments of the API keys table (on-demand, no index)."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": PARTITION_KEY, "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}],
    }
