"""Settings: one pydantic model per entry point, validated from the environment once, at start.

Each field ``name`` is read from the variable ``CACHESYNC_NAME``; a missing or invalid value
raises :class:`ConfigurationError` naming the variable. This module is the only reader of
``os.environ`` in what Lambda runs (AWS variables are read by botocore itself); the command line
also merges the local stack's env file (:mod:`cachesync.local.env_file`, never shipped).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from cachesync.api_keys_schema import API_KEYS_TABLE_NAME_DEFAULT
from cachesync.api_usage_schema import API_USAGE_TABLE_NAME_DEFAULT
from cachesync.change_feed_schema import CHANGE_FEED_TABLE_NAME_DEFAULT
from cachesync.exceptions import ConfigurationError
from cachesync.validation_errors import first_validation_error
from cachesync.webhooks_schema import (
    ATTEMPT_RETENTION_DAYS_DEFAULT,
    WEBHOOK_DELIVERIES_TABLE_NAME_DEFAULT,
    WEBHOOKS_TABLE_NAME_DEFAULT,
)

PREFIX: Final = "CACHESYNC_"

S = TypeVar("S", bound=BaseModel)


class BaseSettings(BaseModel):
    """Settings shared by every entry point."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    table_name: str = Field(min_length=3, max_length=255)
    """The index table (``CACHESYNC_TABLE_NAME``)."""
    bucket_name: str = Field(min_length=3, max_length=63)
    """The documents bucket (``CACHESYNC_BUCKET_NAME``)."""
    retention_days: int = Field(default=90, ge=1, le=3650)
    """How long completed, cancelled and archived documents stay in the index."""
    tombstone_ttl_days: int = Field(default=30, ge=1, le=3650)
    """How long a deleted key's tombstone is kept."""

    @property
    def retention(self) -> timedelta:
        """:attr:`retention_days` as a duration."""
        return timedelta(days=self.retention_days)

    @property
    def tombstone_ttl(self) -> timedelta:
        """:attr:`tombstone_ttl_days` as a duration."""
        return timedelta(days=self.tombstone_ttl_days)


class SyncSettings(BaseSettings):
    """Settings of the S3 event handlers (``s3_object_created``, ``s3_object_removed``)."""

    sync_workers: int = Field(default=8, ge=1, le=20)
    """Changes of one batch applied at once (different keys only; one key's changes stay in
    order). At most the 20 connections of a client's pool; 1 applies them one by one."""


class _IdempotencySettings(BaseModel):
    idempotency_ttl_seconds: int = Field(default=3600, ge=60, le=30 * 86400)
    """How long an idempotency key is remembered."""
    write_rate_per_second: float = Field(default=50.0, gt=0, le=10_000)
    """Token-bucket rate shared by the write path."""
    write_burst: int = Field(default=50, ge=1, le=10_000)


class _ReaderSettings(BaseModel):
    breaker_failure_threshold: int = Field(default=5, ge=1, le=1000)
    """Consecutive index failures that open the circuit breaker."""
    breaker_cool_down_seconds: float = Field(default=30.0, gt=0, le=3600)
    pending_stale_after_seconds: int = Field(default=120, ge=1, le=86400)
    """A write-through pending longer than this is taken as crashed and resolved by reads."""


class WriteThroughSettings(BaseSettings, _IdempotencySettings):
    """Settings of the ``write_through`` function."""

    idempotency_table_name: str = Field(min_length=3, max_length=255)
    """The table Powertools' idempotency utility persists to."""


class FallbackReadSettings(BaseSettings, _ReaderSettings):
    """Settings of the ``fallback_read`` function."""


class DocumentStoreSettings(BaseSettings, _IdempotencySettings, _ReaderSettings):
    """Settings of an application's :func:`~cachesync.runtime.open_document_store`."""

    cache_enabled: bool = True
    """``false``: read and write S3 directly and answer queries by listing the bucket (the index
    is neither read nor written); the same code works either way."""
    idempotency_table_name: str | None = None
    """With the cache on: where idempotency keys are kept (without it, they are refused)."""


class CliSettings(BaseSettings, _IdempotencySettings, _ReaderSettings):
    """Settings of the ``cachesync`` command line."""

    idempotency_table_name: str | None = None
    """Without it, ``--idempotency-key`` is refused."""


def variable_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return f"{PREFIX}{field.upper()}"


def load_settings(model: type[S], environ: Mapping[str, str] | None = None) -> S:
    """Validate ``model`` from ``environ`` (default: the process environment)."""
    source = os.environ if environ is None else environ
    values = {
        field: source[variable_name(field)]
        for field in model.model_fields
        if variable_name(field) in source
    }
    try:
        return model.model_validate(values)
    except ValidationError as error:
        first = first_validation_error(error)
        reason = "required but not set" if first.missing else first.message
        # A rule across fields (no location) names the model; its message names the variables.
        variable = variable_name(first.field) if first.field else model.__name__
        raise ConfigurationError(variable, reason) from error


class BackfillSettings(BaseSettings):
    """Settings of the ``backfill`` function (backfill requests and S3 Batch Operations)."""

    backfill_rate_per_second: float = Field(default=100.0, gt=0, le=10_000)
    """Index writes per second, per execution environment (a token bucket). S3 Batch Operations
    runs many environments at once: bound the total with the function's reserved concurrency."""
    backfill_workers: int = Field(default=8, ge=1, le=20)
    """Objects read and written at once; at most the 20 connections of a client's pool."""
    backfill_page_size: int = Field(default=200, ge=1, le=1000)
    """Objects listed per page. A backfill stops between pages, so a page must fit comfortably in
    what remains of an invocation."""
    backfill_stop_margin_seconds: float = Field(default=30.0, ge=0, le=900)
    """A backfill request starts no new page with less time left than this (or than twice the
    slowest page so far), and returns its continuation instead."""


class ApiKeysSettings(BaseModel):
    """Where API keys live (the query API and ``cachesync keys``)."""

    api_keys_table_name: str = Field(
        default=API_KEYS_TABLE_NAME_DEFAULT, min_length=3, max_length=255
    )
    """The API keys table (layout: ``api_keys_schema.py``)."""


class TokenSecretSettings(BaseModel):
    """Where the API's token secret comes from (it also keys the signing secrets)."""

    api_token_secret: SecretStr | None = Field(default=None, min_length=32)
    """Signs pagination tokens (HMAC-SHA256); at least 32 characters, the same in every process
    that serves the API. Set it locally; in AWS set :attr:`api_token_secret_id` instead."""
    api_token_secret_id: str | None = Field(default=None, min_length=1, max_length=2048)
    """Secrets Manager secret (ARN or name) holding the token secret, read once at cold start
    (the ``query_api`` function). Exactly one of this and :attr:`api_token_secret`."""


class ApiKeysCliSettings(BaseSettings, ApiKeysSettings, TokenSecretSettings):
    """Settings of ``cachesync keys`` (the token secret: only to show signing secrets)."""

    webhooks_table_name: str = Field(
        default=WEBHOOKS_TABLE_NAME_DEFAULT, min_length=3, max_length=255
    )
    """Webhook subscriptions: ``keys revoke`` disables the revoked key's."""
    webhook_deliveries_table_name: str = Field(
        default=WEBHOOK_DELIVERIES_TABLE_NAME_DEFAULT, min_length=3, max_length=255
    )


class ApiSettings(
    BaseSettings, _IdempotencySettings, _ReaderSettings, ApiKeysSettings, TokenSecretSettings
):
    """Settings of the query API (the ``query_api`` function and ``cachesync api serve``)."""

    idempotency_table_name: str | None = None
    """Without it, an ``Idempotency-Key`` header is refused."""
    api_token_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 86400)
    """How long a pagination token stays valid."""
    api_cache_ttl_seconds: float = Field(default=5.0, ge=0, le=3600)
    """How long this process serves a query page or a document from memory (0: no cache).
    Writes through this process evict at once; other writers show after at most this long."""
    api_cache_max_entries: int = Field(default=10_000, ge=0, le=1_000_000)
    """Bound of each memory cache (least recently used entries go first)."""
    api_key_cache_ttl_seconds: float = Field(default=5.0, ge=0, le=300)
    """How long a process reuses an API key record it read (0: one read per request). A
    revoked key keeps working in a process that read it for at most this long."""
    api_cors_origins: str = ""
    """Comma-separated origins allowed by CORS; empty (the default): CORS off."""
    api_usage_table_name: str = Field(
        default=API_USAGE_TABLE_NAME_DEFAULT, min_length=3, max_length=255
    )
    """Rate-limit counters and signing nonces of every API instance (``api_usage_schema.py``)."""
    api_rate_limits_enabled: bool = True
    """Enforce each key's request rate (off: no counters are read or written, no headers)."""
    api_rate_limit_per_minute: int = Field(default=600, ge=1, le=60_000)
    """Requests per key and minute, for keys without a limit of their own."""
    api_rate_limit_burst: int = Field(default=50, ge=1, le=1_000)
    """Requests per key in any one second, for keys without a burst of their own."""
    api_rate_limit_failure_mode: Literal["open", "closed"] = "open"
    """When the counters cannot be reached: ``open`` serves unlimited (and logs and counts it),
    ``closed`` refuses with 503."""
    api_bulk_concurrency: int = Field(default=8, ge=1, le=20)
    """Items of one ``POST /v1/documents/bulk`` written at once (at most the client pool's 20)."""
    change_feed_table_name: str = Field(
        default=CHANGE_FEED_TABLE_NAME_DEFAULT, min_length=3, max_length=255
    )
    """The change feed's analytics counters (``/v1/analytics``; ``change_feed_schema.py``)."""
    webhooks_table_name: str = Field(
        default=WEBHOOKS_TABLE_NAME_DEFAULT, min_length=3, max_length=255
    )
    """Webhook subscriptions (``/v1/webhooks``; ``webhooks_schema.py``)."""
    webhook_deliveries_table_name: str = Field(
        default=WEBHOOK_DELIVERIES_TABLE_NAME_DEFAULT, min_length=3, max_length=255
    )
    """Recent delivery attempts (``/v1/webhooks/{id}/deliveries``) and test pings' records."""
    webhook_allow_loopback: bool = False
    """Allow loopback and plain-http webhook targets: the local stack only, never in AWS."""

    @model_validator(mode="after")
    def _one_token_secret_source(self) -> ApiSettings:
        if (self.api_token_secret is None) == (self.api_token_secret_id is None):
            raise PydanticCustomError(
                "token_secret_source",
                "set exactly one of CACHESYNC_API_TOKEN_SECRET (the secret itself) and "
                "CACHESYNC_API_TOKEN_SECRET_ID (a Secrets Manager secret holding it)",
            )
        return self

    @property
    def cors_origins(self) -> tuple[str, ...]:
        """:attr:`api_cors_origins` as a tuple."""
        return tuple(o.strip() for o in self.api_cors_origins.split(",") if o.strip())


class ChangeFeedSettings(BaseModel):
    """Settings of the change feed (the ``change_feed`` function and the local stack's pump)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    change_feed_table_name: str = Field(
        default=CHANGE_FEED_TABLE_NAME_DEFAULT, min_length=3, max_length=255
    )
    """What the feed published per document, and the analytics (``change_feed_schema.py``)."""
    webhooks_table_name: str = Field(
        default=WEBHOOKS_TABLE_NAME_DEFAULT, min_length=3, max_length=255
    )
    """Subscriptions the feed fans events out to (``webhooks_schema.py``)."""
    webhook_delivery_queue_url: str | None = Field(default=None, min_length=1)
    """Where delivery messages go; without it the feed keeps analytics only (no webhooks)."""
    webhook_subscriptions_refresh_seconds: float = Field(default=10.0, ge=0, le=300)
    """How long a feed process reuses the subscriptions it read (new ones show within it)."""


class WebhookDeliverySettings(BaseSettings):
    """Settings of webhook delivery (the ``webhook_delivery`` function, ``cachesync webhooks``).

    The retry budget: attempt ``n`` failed -> the message stays hidden a jittered
    ``[0, min(base * 2**(n-1), max)]`` seconds; the queue's ``maxReceiveCount`` must equal
    :attr:`webhook_max_attempts` (then SQS moves the message to the dead-letter queue).
    """

    webhooks_table_name: str = Field(
        default=WEBHOOKS_TABLE_NAME_DEFAULT, min_length=3, max_length=255
    )
    """Subscriptions (layout: ``webhooks_schema.py``)."""
    webhook_deliveries_table_name: str = Field(
        default=WEBHOOK_DELIVERIES_TABLE_NAME_DEFAULT, min_length=3, max_length=255
    )
    """Recent delivery attempts, expiring by TTL."""
    webhook_delivery_queue_url: str | None = Field(default=None, min_length=1)
    """The delivery queue; required by the ``webhook_delivery`` function (postpones retries)."""
    webhook_allow_loopback: bool = False
    """Allow loopback targets and plain http: the local stack only, never in AWS."""
    webhook_connect_timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    webhook_read_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    """Bounds each wait for the receiver's bytes."""
    webhook_max_response_bytes: int = Field(default=65_536, ge=0, le=1_048_576)
    """At most this much of a receiver's answer is read."""
    webhook_retry_base_seconds: float = Field(default=60.0, ge=0, le=3600)
    """The backoff's first ceiling (doubles per failed attempt)."""
    webhook_retry_max_seconds: float = Field(default=21_600.0, ge=0, le=42_900)
    """The backoff's cap: under SQS's 12 h visibility ceiling, with room for the run itself."""
    webhook_max_attempts: int = Field(default=12, ge=1, le=1000)
    """Attempts per message: the delivery queue's ``maxReceiveCount``."""
    webhook_failure_threshold: int = Field(default=10, ge=1, le=10_000)
    """Consecutive failed attempts (any messages) that mark a subscription failing."""
    webhook_attempt_retention_days: int = Field(
        default=ATTEMPT_RETENTION_DAYS_DEFAULT, ge=1, le=365
    )
    """How long each attempt's record is kept (TTL)."""
