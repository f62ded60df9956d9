"""The query API's cache metrics: one EMF point per cached lookup, read from ``X-Cache``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from cachesync.api.cache_metrics import cache_metrics_middleware, cache_of, cache_outcome
from tests.support.s3_events import load_event


def resolver() -> APIGatewayRestResolver:
    """Routes standing in for the API's: a cached query, a cached document, and no cache."""
    app = APIGatewayRestResolver()
    app.use([cache_metrics_middleware(namespace="cachesync", service="query_api")])

    @app.get("/v1/documents")
    def query() -> Response[Any]:
        return Response(200, "application/json", "{}", headers={"X-Cache": "miss"})

    @app.get("/v1/documents/<key>")
    def document(key: str) -> Response[Any]:
        return Response(200, "application/json", "{}", headers={"x-cache": ["hit"]})

    @app.get("/v1/health")
    def health() -> Response[Any]:
        return Response(200, "application/json", "{}")

    return app


def request(path: str) -> dict[str, Any]:
    event = load_event("query_api_get_document.json")
    event.update(path=path, queryStringParameters=None, multiValueQueryStringParameters=None)
    return event


def emf(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if '"_aws"' in line]


def test_each_cached_lookup_is_one_point_with_its_cache_dimension(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the middleware on a resolver
    app = resolver()
    # When a query (miss), a document (hit) and the uncached health route are answered
    for path in ("/v1/documents", "/v1/documents/a.json", "/v1/health"):
        assert app.resolve(request(path), {})["statusCode"] == 200
    # Then two points: ApiCacheMisses for the query, ApiCacheHits for the document
    points = emf(capsys.readouterr().out)
    assert [(p.get("ApiCacheHits"), p.get("ApiCacheMisses"), p["cache"]) for p in points] == [
        (None, [1.0], "query"),
        ([1.0], None, "document"),
    ]
    for point in points:
        (directive,) = point["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "cachesync"
        assert directive["Dimensions"] == [["service", "cache"]]
        assert point["service"] == "query_api"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Cache": "hit"}, True),
        ({"x-cache": "miss"}, False),
        ({"X-CACHE": ["hit"]}, True),
        ({"X-Cache": "stale"}, None),
        ({"Content-Type": "application/json"}, None),
    ],
)
def test_cache_outcome_reads_the_header_in_any_case(
    headers: dict[str, Any], expected: bool | None
) -> None:
    assert cache_outcome(headers) is expected


def test_the_query_route_and_document_routes_are_told_apart() -> None:
    assert cache_of("/v1/documents") == "query"
    assert cache_of("/v1/documents/") == "query"
    assert cache_of("/v1/documents/changes/documents.json") == "document"
