"""Composition root of the query API: settings in, the resolver out (once per process)."""

from __future__ import annotations

import time
from datetime import timedelta
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from cachesync import aws_clients
from cachesync.analytics import AnalyticsReader
from cachesync.api.access_log import access_log_for, install_access_log
from cachesync.api.app import ApiDependencies, CacheSyncResolver, create_app
from cachesync.api.cache import ApiCaches
from cachesync.api.cache_metrics import cache_metrics_middleware
from cachesync.api.request_guard import RequestGuard
from cachesync.api.request_limits import FailureMode, LimitPolicy, RequestLimiter
from cachesync.api.request_signing import SignatureVerifier, signing_master_secret
from cachesync.exceptions import ConfigurationError, SecretRequestError, UsageStoreError
from cachesync.retry_policies import BackoffSchedule, RetryPolicy
from cachesync.runtime import (
    READ_PATH_INDEX_ATTEMPTS,
    READ_PATH_TIMEOUT_SECONDS,
    ClientOptions,
    build_reader,
    build_writer,
)
from cachesync.settings import ApiSettings, TokenSecretSettings, variable_name
from cachesync.stores.dynamodb_api_keys import DynamoDBApiKeyStore
from cachesync.stores.dynamodb_api_usage import DynamoDBApiUsageStore
from cachesync.stores.dynamodb_change_feed import DynamoDBChangeFeedStore
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.dynamodb_webhooks import DynamoDBWebhookStore
from cachesync.stores.page_tokens import PageTokens
from cachesync.stores.secrets_manager import SecretsManagerSecretStore
from cachesync.webhooks.delivery import WebhookDeliverer
from cachesync.webhooks.http_sender import HttpWebhookSender
from cachesync.webhooks.subscriptions import SubscriptionManager

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RATE_LIMITER_FAILURE_METRIC: Final = "ApiRateLimiterUnavailable"
"""Counted each time the rate limiter cannot reach its counters (alarm on it)."""
# HMAC-SHA256 keys shorter than the hash add no strength and hint at a wrong secret.
MIN_TOKEN_SECRET_BYTES: Final = 32


def cachesync_version() -> str:
    """The installed cachesync version."""
    try:
        return package_version("cachesync")
    except PackageNotFoundError:
        return "0+unknown"


def token_secret(
    settings: TokenSecretSettings,
    *,
    client_options: ClientOptions | None = None,
    secret_store: SecretsManagerSecretStore | None = None,
) -> bytes:
    """The pagination-token secret: ``CACHESYNC_API_TOKEN_SECRET`` itself, or the secret that
    ``CACHESYNC_API_TOKEN_SECRET_ID`` names, read from Secrets Manager (once: callers build the
    API once per process). A missing, unreadable or short secret is a configuration error."""
    if settings.api_token_secret is not None:
        return settings.api_token_secret.get_secret_value().encode()
    secret_id = settings.api_token_secret_id
    variable = variable_name("api_token_secret_id")
    if secret_id is None:  # ApiSettings already requires one of the two: say so if bypassed
        raise ConfigurationError(variable, "neither the token secret nor its id is set")
    if secret_store is None:
        options = (client_options or {}).get("secretsmanager", {})
        secret_store = SecretsManagerSecretStore(aws_clients.client("secretsmanager", **options))
    try:
        value = secret_store.get_secret_string(secret_id).get_secret_value().encode()
    except SecretRequestError as error:
        # Not found, access denied, not decryptable: nothing a retry fixes. Transient errors
        # propagate as they are (the next cold start tries again).
        raise ConfigurationError(variable, str(error)) from error
    if len(value) < MIN_TOKEN_SECRET_BYTES:
        raise ConfigurationError(
            variable, f"the secret holds {len(value)} bytes, at least {MIN_TOKEN_SECRET_BYTES}"
        )
    return value


def build_request_guard(
    settings: ApiSettings,
    token_secret: bytes,
    usage: DynamoDBApiUsageStore,
    *,
    logger: Logger | None = None,
    metrics: Metrics | None = None,
) -> RequestGuard:
    """Allowlists, signatures (master secret derived from the token secret) and the rate
    limiter of ``settings``, counting in ``usage`` (shared by every API instance)."""
    log = logger or Logger(service="query_api")
    mode = FailureMode(settings.api_rate_limit_failure_mode)

    def counters_down(error: UsageStoreError) -> None:
        log.warning(
            "the rate limiter cannot reach its counters",
            extra={"failure_mode": mode.value, "error_code": error.code},
        )
        if metrics is not None:
            metrics.add_metric(name=RATE_LIMITER_FAILURE_METRIC, unit=MetricUnit.Count, value=1)

    limiter = (
        RequestLimiter(usage, failure_mode=mode, on_counter_failure=counters_down)
        if settings.api_rate_limits_enabled
        else None
    )
    return RequestGuard(
        signatures=SignatureVerifier(signing_master_secret(token_secret), usage, clock=time.time),
        limiter=limiter,
        default_limits=LimitPolicy(
            per_minute=settings.api_rate_limit_per_minute, burst=settings.api_rate_limit_burst
        ),
    )


def subscription_manager(settings: ApiSettings, dynamodb: DynamoDBClient) -> SubscriptionManager:
    """Webhook subscriptions for the API: the store, and a sender for test pings."""
    store = DynamoDBWebhookStore(
        dynamodb, settings.webhooks_table_name, settings.webhook_deliveries_table_name
    )
    pinger = WebhookDeliverer(
        store,
        HttpWebhookSender(allow_loopback=settings.webhook_allow_loopback),
        # Pings are sent once, now, and never postponed or counted as failures.
        schedule=BackoffSchedule(),
        max_attempts=1,
        failure_threshold=1,
    )
    return SubscriptionManager(store, pinger, allow_loopback=settings.webhook_allow_loopback)


def build_api(
    settings: ApiSettings,
    *,
    logger: Logger | None = None,
    metrics: Metrics | None = None,
    client_options: ClientOptions | None = None,
    secret_store: SecretsManagerSecretStore | None = None,
    access_log_file: Path | None = None,
) -> CacheSyncResolver:
    """The query API's resolver on clients built from ``settings``.

    With ``metrics``, every cached lookup is also emitted as ``ApiCacheHits`` /
    ``ApiCacheMisses`` (``api/cache_metrics.py``) in the metrics' namespace and service.
    ``secret_store`` replaces Secrets Manager's client (tests). Every request is logged and
    counted per route and key (``api/access_log.py``); with ``access_log_file`` also appended
    there (``cachesync api serve``).
    """
    client_options = client_options or {}
    secret = token_secret(settings, client_options=client_options, secret_store=secret_store)
    # Every DynamoDB call of a request (keys, rate limits, queries) must fail within the
    # request's budget when DynamoDB does not answer, not after the SDK's 10 s per attempt.
    dynamodb = aws_clients.client(
        "dynamodb",
        read_timeout=READ_PATH_TIMEOUT_SECONDS,
        **client_options.get("dynamodb", {}),
    )
    # Queries and key lookups, on every request's path, get as few attempts as the reader.
    read_path_retry = RetryPolicy(attempts=READ_PATH_INDEX_ATTEMPTS)

    def index_store_for(tokens: PageTokens) -> DynamoDBIndexStore:
        # A store per query is a few attributes on a shared client: tokens bind to the caller.
        return DynamoDBIndexStore(
            dynamodb,
            settings.table_name,
            tombstone_ttl=settings.tombstone_ttl,
            page_tokens=tokens,
            retry_policy=read_path_retry,
        )

    deps = ApiDependencies(
        index_store_for=index_store_for,
        bucket=settings.bucket_name,
        reader=build_reader(
            settings, logger=logger, metrics=metrics, client_options=client_options
        ),
        writer=build_writer(settings, client_options),
        keys=DynamoDBApiKeyStore(
            dynamodb, settings.api_keys_table_name, retry_policy=read_path_retry
        ),
        token_secret=secret,
        token_lifetime=timedelta(seconds=settings.api_token_ttl_seconds),
        retention=settings.retention,
        version=cachesync_version(),
        cors_origins=settings.cors_origins,
        caches=ApiCaches.create(
            max_entries=settings.api_cache_max_entries, ttl_seconds=settings.api_cache_ttl_seconds
        ),
        logger=logger,
        key_cache_ttl_seconds=settings.api_key_cache_ttl_seconds,
        bulk_concurrency=settings.api_bulk_concurrency,
        guard=build_request_guard(
            settings,
            secret,
            DynamoDBApiUsageStore(dynamodb, settings.api_usage_table_name),
            logger=logger,
            metrics=metrics,
        ),
        analytics=AnalyticsReader(
            DynamoDBChangeFeedStore(dynamodb, settings.change_feed_table_name)
        ),
        webhooks=subscription_manager(settings, dynamodb),
    )
    app = create_app(deps)
    if metrics is not None:
        app.use(
            [
                cache_metrics_middleware(
                    namespace=metrics.provider.namespace or "cachesync",
                    service=metrics.provider.service or "query_api",
                )
            ]
        )
    install_access_log(app, access_log_for(logger=logger, metrics=metrics, file=access_log_file))
    return app
