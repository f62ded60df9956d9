"""Composition root: settings in, wired use cases out. Entry points call these once, at start."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from botocore.exceptions import NoRegionError, ProfileNotFound

from cachesync import aws_clients
from cachesync.backfill import Backfill, ObjectIndexer
from cachesync.change_feed import ChangeFeed, EventPublisher
from cachesync.document_store import CachedDocumentStore, DirectS3DocumentStore, DocumentStore
from cachesync.exceptions import ConfigurationError
from cachesync.fallback_reader import FallbackReader
from cachesync.rate_limit import rate_limiter
from cachesync.reconcile import Reconciler
from cachesync.retry_policies import DEFAULT_RETRY_POLICY, RetryPolicy
from cachesync.settings import (
    ApiSettings,
    BackfillSettings,
    BaseSettings,
    ChangeFeedSettings,
    CliSettings,
    DocumentStoreSettings,
    FallbackReadSettings,
    SyncSettings,
    WriteThroughSettings,
    load_settings,
)
from cachesync.stores.dynamodb_change_feed import DynamoDBChangeFeedStore
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.dynamodb_webhooks import DynamoDBWebhookStore
from cachesync.stores.lambda_invoker import LambdaInvoker
from cachesync.stores.s3_objects import S3ObjectStore
from cachesync.stores.sqs_webhook_queue import SqsWebhookQueue
from cachesync.sync import S3EventSync
from cachesync.webhooks.fan_out import WebhookFanOut
from cachesync.webhooks_schema import WEBHOOK_DELIVERIES_TABLE_NAME_DEFAULT
from cachesync.write_through import DocumentWriter

ClientOptions = Mapping[str, Mapping[str, Any]]

READ_PATH_TIMEOUT_SECONDS: Final = 2.0
"""Connect and read timeout of each DynamoDB call on a read path: the fallback reader's index
reads and, in the query API, every DynamoDB call but the write-through's. With the SDK's 10 s,
tried five times, one call to an index that accepts connections and never answers outlasted the
functions' own timeouts (fallback_read 10 s, query_api 15 s): the breaker never counted a failure
and never opened, and every request timed out (docs/CHAOS.md, experiment 4)."""
READ_PATH_INDEX_ATTEMPTS: Final = 2
"""Attempts of each index read of the fallback reader (after them it reads S3, and the breaker
counts the failure), and of the query API's queries and key lookups."""


@contextmanager
def _configuration_errors() -> Iterator[None]:
    """A client built without a region, with an unknown profile or an invalid endpoint is a
    configuration error (one line naming what is missing or wrong), not a traceback."""
    try:
        yield
    except NoRegionError as error:
        raise ConfigurationError(
            "AWS_DEFAULT_REGION",
            "no AWS region is configured (export AWS_DEFAULT_REGION, or set a region in your "
            "AWS profile)",
        ) from error
    except ProfileNotFound as error:
        raise ConfigurationError("AWS_PROFILE", str(error)) from error
    except ValueError as error:
        # botocore's only ValueError while building a client: an endpoint that is not a URL.
        raise ConfigurationError("AWS_ENDPOINT_URL_*", str(error)) from error


def build_stores(
    settings: BaseSettings,
    client_options: ClientOptions | None = None,
    *,
    index_read_timeout: float | None = None,
    index_retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
) -> tuple[DynamoDBIndexStore, S3ObjectStore]:
    """The index and object stores on clients built with the SDK's defaults.

    ``client_options`` (per service: an endpoint and credentials) only for the embedded local
    stack's command line. ``index_read_timeout`` and ``index_retry_policy`` bound the index's
    calls on a read path.
    """
    client_options = client_options or {}
    with _configuration_errors():
        index = DynamoDBIndexStore(
            aws_clients.client(
                "dynamodb", read_timeout=index_read_timeout, **client_options.get("dynamodb", {})
            ),
            settings.table_name,
            tombstone_ttl=settings.tombstone_ttl,
            retry_policy=index_retry_policy,
        )
        objects = S3ObjectStore(aws_clients.client("s3", **client_options.get("s3", {})))
    return index, objects


def build_event_sync(settings: SyncSettings) -> S3EventSync:
    """The S3 event sync use case."""
    index, objects = build_stores(settings)
    return S3EventSync(index, objects, buckets={settings.bucket_name}, retention=settings.retention)


def build_writer(
    settings: WriteThroughSettings | CliSettings | ApiSettings | DocumentStoreSettings,
    client_options: ClientOptions | None = None,
) -> DocumentWriter:
    """The write-through use case, with its idempotency store and shared rate limiter."""
    client_options = client_options or {}
    index, objects = build_stores(settings, client_options)
    idempotency = None
    if settings.idempotency_table_name is not None:
        with _configuration_errors():
            client = aws_clients.client("dynamodb", **client_options.get("dynamodb", {}))
        idempotency = DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table_name, boto3_client=client
        )
    return DocumentWriter(
        index,
        objects,
        bucket=settings.bucket_name,
        retention=settings.retention,
        limiter=rate_limiter(settings.write_rate_per_second, settings.write_burst),
        idempotency_store=idempotency,
        idempotency_window=timedelta(seconds=settings.idempotency_ttl_seconds),
    )


def build_reader(
    settings: FallbackReadSettings | CliSettings | ApiSettings | DocumentStoreSettings,
    *,
    logger: Logger | None = None,
    metrics: Metrics | None = None,
    client_options: ClientOptions | None = None,
    index_read_timeout: float = READ_PATH_TIMEOUT_SECONDS,
    index_read_attempts: int = READ_PATH_INDEX_ATTEMPTS,
) -> FallbackReader:
    """The fallback reader with its circuit breaker, its index reads bounded in time (by
    default :data:`READ_PATH_TIMEOUT_SECONDS` per attempt, :data:`READ_PATH_INDEX_ATTEMPTS`
    attempts) so that an unresponsive index counts as failing well within a request's budget."""
    index, objects = build_stores(
        settings,
        client_options,
        index_read_timeout=index_read_timeout,
        index_retry_policy=RetryPolicy(attempts=index_read_attempts),
    )
    return FallbackReader(
        index,
        objects,
        bucket=settings.bucket_name,
        breaker_failure_threshold=settings.breaker_failure_threshold,
        breaker_cool_down=timedelta(seconds=settings.breaker_cool_down_seconds),
        retention=settings.retention,
        pending_stale_after=timedelta(seconds=settings.pending_stale_after_seconds),
        logger=logger,
        metrics=metrics,
    )


def build_backfill(settings: BackfillSettings) -> tuple[Backfill, ObjectIndexer]:
    """The backfill job and its object indexer (which S3 Batch Operations tasks use alone).

    Both share one token bucket, so index writes stay under the configured rate whichever kind
    of invocation the function serves.
    """
    return _backfill(
        settings,
        rate_per_second=settings.backfill_rate_per_second,
        workers=settings.backfill_workers,
        page_size=settings.backfill_page_size,
    )


def build_cli_backfill(
    settings: CliSettings,
    *,
    rate_per_second: float,
    workers: int,
    client_options: ClientOptions | None = None,
) -> Backfill:
    """The backfill job of ``cachesync backfill``: pages of 1,000 keys (S3's largest)."""
    backfill, _ = _backfill(
        settings,
        rate_per_second=rate_per_second,
        workers=workers,
        page_size=1000,
        client_options=client_options,
    )
    return backfill


def _backfill(
    settings: BaseSettings,
    *,
    rate_per_second: float,
    workers: int,
    page_size: int,
    client_options: ClientOptions | None = None,
) -> tuple[Backfill, ObjectIndexer]:
    index, objects = build_stores(settings, client_options)
    indexer = ObjectIndexer(
        index,
        objects,
        retention=settings.retention,
        limiter=rate_limiter(rate_per_second),
    )
    backfill = Backfill(
        indexer, objects, bucket=settings.bucket_name, workers=workers, page_size=page_size
    )
    return backfill, indexer


def build_verifier(
    settings: CliSettings,
    *,
    rate_per_second: float,
    workers: int,
    client_options: ClientOptions | None = None,
) -> Reconciler:
    """The verify (and repair) use case of ``cachesync verify``; repairs share a token bucket."""
    index, objects = build_stores(settings, client_options)
    return Reconciler(
        index,
        objects,
        bucket=settings.bucket_name,
        retention=settings.retention,
        pending_stale_after=timedelta(seconds=settings.pending_stale_after_seconds),
        limiter=rate_limiter(rate_per_second),
        workers=workers,
    )


def build_lambda_invoker() -> LambdaInvoker:
    """Asynchronous Lambda invocations (a backfill continuing in a new invocation)."""
    with _configuration_errors():
        return LambdaInvoker(aws_clients.client("lambda"))


def open_document_store(
    settings: DocumentStoreSettings | None = None,
    *,
    logger: Logger | None = None,
    client_options: ClientOptions | None = None,
) -> DocumentStore:
    """An application's documents, through the cache or straight from S3 as
    ``CACHESYNC_CACHE_ENABLED`` says (``settings`` default: read from the environment)."""
    settings = settings or load_settings(DocumentStoreSettings)
    if not settings.cache_enabled:
        _, objects = build_stores(settings, client_options)
        return DirectS3DocumentStore(
            objects, bucket=settings.bucket_name, retention=settings.retention, logger=logger
        )
    index, _ = build_stores(settings, client_options)
    return CachedDocumentStore(
        build_reader(settings, logger=logger, client_options=client_options),
        build_writer(settings, client_options),
        index,
    )


def build_change_feed(
    settings: ChangeFeedSettings, client_options: ClientOptions | None = None
) -> ChangeFeed:
    """The change feed on the change feed table; with a delivery queue, it also fans events
    out to the webhook subscriptions."""
    client_options = client_options or {}
    publishers: list[EventPublisher] = []
    with _configuration_errors():
        dynamodb = aws_clients.client("dynamodb", **client_options.get("dynamodb", {}))
        store = DynamoDBChangeFeedStore(dynamodb, settings.change_feed_table_name)
        if settings.webhook_delivery_queue_url is not None:
            subscriptions = DynamoDBWebhookStore(
                dynamodb, settings.webhooks_table_name, WEBHOOK_DELIVERIES_TABLE_NAME_DEFAULT
            )
            queue = SqsWebhookQueue(
                aws_clients.client("sqs", **client_options.get("sqs", {})),
                settings.webhook_delivery_queue_url,
            )
            publishers.append(
                WebhookFanOut(
                    subscriptions,
                    queue,
                    refresh_seconds=settings.webhook_subscriptions_refresh_seconds,
                )
            )
    return ChangeFeed(store, publishers)
