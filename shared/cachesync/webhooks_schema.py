"""The webhook tables' layouts: subscriptions, and the recent delivery attempts (TTL).

``cachesync-webhooks``: one item per subscription, partition key ``subscription_id``; the
signing secrets are stored in it (an HMAC needs the secret itself; DynamoDB encrypts at rest).
Listing by owner scans with a filter: subscriptions are few (one per integration).

``cachesync-webhook-deliveries``: one item per attempt, partition key ``subscription_id``, sort
key ``<attempt time>#<webhook id>#<attempt>`` (time first: a query newest-first reads the
recent attempts), expiring by TTL ``expires_at`` (7 days by default).
"""

from __future__ import annotations

from typing import Any, Final

WEBHOOKS_TABLE_NAME_DEFAULT: Final = "cachesync-webhooks"
WEBHOOK_DELIVERIES_TABLE_NAME_DEFAULT: Final = "cachesync-webhook-deliveries"

SUBSCRIPTION_KEY: Final = "subscription_id"
ATTEMPT_SORT_KEY: Final = "attempt_key"
TTL_ATTRIBUTE: Final = "expires_at"
ATTEMPT_RETENTION_DAYS_DEFAULT: Final = 7


class SubscriptionAttr:
    """Attribute names of subscription items."""

    ID: Final = SUBSCRIPTION_KEY
    URL: Final = "url"
    EVENT_TYPES: Final = "event_types"
    FILTER_CUSTOMERS: Final = "filter_customers"
    FILTER_KINDS: Final = "filter_kinds"
    FILTER_STATUSES: Final = "filter_statuses"
    OWNER_KEY_ID: Final = "owner_key_id"
    OWNER_CUSTOMERS: Final = "owner_customers"
    """Absent: the owner sees every customer."""
    STATUS: Final = "status"
    CONSECUTIVE_FAILURES: Final = "consecutive_failures"
    CREATED_AT: Final = "created_at"
    SECRET: Final = "secret"  # noqa: S105 - an attribute name, not a secret
    PREVIOUS_SECRET: Final = "previous_secret"  # noqa: S105 - an attribute name
    PREVIOUS_VALID_UNTIL: Final = "previous_valid_until"


class AttemptAttr:
    """Attribute names of delivery attempt items."""

    SUBSCRIPTION_ID: Final = SUBSCRIPTION_KEY
    KEY: Final = ATTEMPT_SORT_KEY
    WEBHOOK_ID: Final = "webhook_id"
    ATTEMPT: Final = "attempt"
    STATUS_CODE: Final = "status_code"
    ERROR: Final = "error"
    LATENCY_MS: Final = "latency_ms"
    AT: Final = "at"
    EXPIRES_AT: Final = TTL_ATTRIBUTE


def attempt_key(at: str, webhook_id: str, attempt: int) -> str:
    """The sort key of one attempt (``at`` formatted by ``ordering.format_time``)."""
    return f"{at}#{webhook_id}#{attempt}"


def create_webhooks_table_request(table_name: str) -> dict[str, Any]:
    """The ``CreateTable`` arguments of the subscriptions table (on-demand, no index)."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": SUBSCRIPTION_KEY, "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": SUBSCRIPTION_KEY, "KeyType": "HASH"}],
    }


def create_deliveries_table_request(table_name: str) -> dict[str, Any]:
    """The ``CreateTable`` arguments of the delivery attempts table (TTL set separately:
    :func:`deliveries_ttl_request`)."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": SUBSCRIPTION_KEY, "AttributeType": "S"},
            {"AttributeName": ATTEMPT_SORT_KEY, "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": SUBSCRIPTION_KEY, "KeyType": "HASH"},
            {"AttributeName": ATTEMPT_SORT_KEY, "KeyType": "RANGE"},
        ],
    }


def deliveries_ttl_request(table_name: str) -> dict[str, Any]:
    """The ``UpdateTimeToLive`` arguments of the delivery attempts table."""
    return {
        "TableName": table_name,
        "TimeToLiveSpecification": {"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    }
