"""The query API's Python client: ``CacheSyncClient(base_url, api_key)``."""

from cachesync.api.models import BulkItem, BulkItemResult, BulkResult
from cachesync.client.api_client import CacheSyncClient, QueryItem
from cachesync.client.errors import (
    ApiAuthenticationError,
    ApiClientError,
    ApiConflictError,
    ApiConnectionError,
    ApiForbiddenError,
    ApiNotFoundError,
    ApiRateLimitedError,
    ApiRequestError,
    ApiServerError,
)
from cachesync.client.retries import RetryPolicy

__all__ = [
    "ApiAuthenticationError",
    "ApiClientError",
    "ApiConflictError",
    "ApiConnectionError",
    "ApiForbiddenError",
    "ApiNotFoundError",
    "ApiRateLimitedError",
    "ApiRequestError",
    "ApiServerError",
    "BulkItem",
    "BulkItemResult",
    "BulkResult",
    "CacheSyncClient",
    "QueryItem",
    "RetryPolicy",
]
