"""The query API's cache hits and misses as CloudWatch metrics (embedded metric format).

A global middleware of the resolver reads the ``X-Cache`` header the routes set (``hit`` or
``miss``, app.py) and emits one data point per cached lookup: ``ApiCacheHits`` or
``ApiCacheMisses``, with the dimensions ``service`` and ``cache`` (``query`` for
``GET /v1/documents``, ``document`` for ``GET /v1/documents/{key}``). Reading the header keeps
the metric and what the caller was told the same, and leaves the cache itself untouched.

Each point is its own EMF line (Powertools' ``single_metric``): the function's ``Metrics`` has
one dimension set per invocation (``service``), and adding ``cache`` to it would also change the
dimensions of the reader's metrics. The dashboard's hit ratio is metric math on these two
(infra/cloudwatch.tf). A lookup that ends in an error (a tenant's 404 on a cached document) sets
no header and is not counted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.types import EventHandlerInstance
from aws_lambda_powertools.metrics import MetricUnit, single_metric

API_CACHE_HITS: Final = "ApiCacheHits"
API_CACHE_MISSES: Final = "ApiCacheMisses"
CACHE_DIMENSION: Final = "cache"
X_CACHE: Final = "X-Cache"
QUERY_PATH: Final = "/v1/documents"

CacheName = Literal["query", "document"]


def cache_outcome(headers: Mapping[str, Any]) -> bool | None:
    """``True`` for ``X-Cache: hit``, ``False`` for ``miss``, ``None`` when the response says
    nothing of the cache."""
    for name, value in headers.items():
        if name.lower() == X_CACHE.lower():
            outcome = value[0] if isinstance(value, list) and value else value
            if outcome == "hit":
                return True
            if outcome == "miss":
                return False
    return None


def cache_of(path: str) -> CacheName:
    """Which cache a request path's lookup went to."""
    return "query" if path.rstrip("/") == QUERY_PATH else "document"


def emit_cache_lookup(*, namespace: str, service: str, cache: CacheName, hit: bool) -> None:
    """One ``ApiCacheHits`` or ``ApiCacheMisses`` data point, printed as an EMF line."""
    with single_metric(
        name=API_CACHE_HITS if hit else API_CACHE_MISSES,
        unit=MetricUnit.Count,
        value=1,
        namespace=namespace,
        default_dimensions={"service": service, CACHE_DIMENSION: cache},
    ):
        pass


def cache_metrics_middleware(*, namespace: str, service: str) -> Callable[..., Response[Any]]:
    """A global middleware emitting the cache outcome of each response that has one."""

    def record_cache_outcome(
        app: EventHandlerInstance, next_middleware: NextMiddleware
    ) -> Response[Any]:
        response: Response[Any] = next_middleware(app)
        hit = cache_outcome(response.headers)
        if hit is not None:
            cache = cache_of(app.current_event.path)
            emit_cache_lookup(namespace=namespace, service=service, cache=cache, hit=hit)
        return response

    return record_cache_outcome
