"""Composition root of the query API: settings in, the resolver out (once per process)."""

from __future__ import annotations

from datetime import timedelta
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING, Final

from aws_lambda_powertools import Logger, Metrics

from cachesync import aws_clients
from cachesync.analytics import AnalyticsReader
from cachesync.api.app import ApiDependencies, CacheSyncResolver, create_app
from cachesync.api.cache import ApiCaches
from cachesync.api.cache_metrics import cache_metrics_middleware
from cachesync.exceptions import ConfigurationError, SecretRequestError
from cachesync.retry_policies import BackoffSchedule
from cachesync.runtime import ClientOptions, build_reader, build_writer
from cachesync.settings import ApiSettings, variable_name
from cachesync.stores.dynamodb_api_keys import DynamoDBApiKeyStore
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

# HMAC-SHA256 keys shorter than the hash add no strength and hint at a wrong secret.
MIN_TOKEN_SECRET_BYTES: Final = 32


def cachesync_version() -> str:
    """The installed cachesync version."""
    try:
        return package_version("cachesync")
    except PackageNotFoundError:
        return "0+unknown"


def token_secret(
    settings: ApiSettings,
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
) -> CacheSyncResolver:
    """The query API's resolver on clients built from ``settings``.

    With ``metrics``, every cached lookup is also emitted as ``ApiCacheHits`` /
    ``ApiCacheMisses`` (``api/cache_metrics.py``) in the metrics' namespace and service.
    ``secret_store`` replaces Secrets Manager's client (tests).
    """
    client_options = client_options or {}
    secret = token_secret(settings, client_options=client_options, secret_store=secret_store)
    dynamodb = aws_clients.client("dynamodb", **client_options.get("dynamodb", {}))

    def index_store_for(tokens: PageTokens) -> DynamoDBIndexStore:
        # A store per query is a few attributes on a shared client: tokens bind to the caller.
        return DynamoDBIndexStore(
            dynamodb, settings.table_name, tombstone_ttl=settings.tombstone_ttl, page_tokens=tokens
        )

    deps = ApiDependencies(
        index_store_for=index_store_for,
        bucket=settings.bucket_name,
        reader=build_reader(
            settings, logger=logger, metrics=metrics, client_options=client_options
        ),
        writer=build_writer(settings, client_options),
        keys=DynamoDBApiKeyStore(dynamodb, settings.api_keys_table_name),
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
    return app
