"""Composition root of the query API: settings in, the resolver out (once per process)."""

from __future__ import annotations

from datetime import timedelta
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from aws_lambda_powertools import Logger, Metrics

from cachesync import aws_clients
from cachesync.api.app import ApiDependencies, CacheSyncResolver, create_app
from cachesync.api.cache import ApiCaches
from cachesync.runtime import ClientOptions, build_reader, build_writer
from cachesync.settings import ApiSettings
from cachesync.stores.dynamodb_api_keys import DynamoDBApiKeyStore
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.page_tokens import PageTokens


def cachesync_version() -> str:
    """The installed cachesync version."""
    try:
        return package_version("cachesync")
    except PackageNotFoundError:
        return "0+unknown"


def build_api(
    settings: ApiSettings,
    *,
    logger: Logger | None = None,
    metrics: Metrics | None = None,
    client_options: ClientOptions | None = None,
) -> CacheSyncResolver:
    """The query API's resolver on clients built from ``settings``."""
    client_options = client_options or {}
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
        token_secret=settings.api_token_secret.get_secret_value().encode(),
        token_lifetime=timedelta(seconds=settings.api_token_ttl_seconds),
        retention=settings.retention,
        version=cachesync_version(),
        cors_origins=settings.cors_origins,
        caches=ApiCaches.create(
            max_entries=settings.api_cache_max_entries, ttl_seconds=settings.api_cache_ttl_seconds
        ),
        logger=logger,
        key_cache_ttl_seconds=settings.api_key_cache_ttl_seconds,
    )
    return create_app(deps)
