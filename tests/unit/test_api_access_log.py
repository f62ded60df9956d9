"""The access log in process: one record per answer (guard refusals included), EMF metrics per
route and per verified key, never a secret; and the usage report built from the records."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from aws_lambda_powertools import Logger

from cachesync.api.access_log import AccessLog, AccessRecord, install_access_log
from cachesync.api.app import ApiDependencies, CacheSyncResolver, create_app
from cachesync.api.keys import ApiKeyRecord, Scope, new_api_key
from cachesync.api.usage_report import percentile, summarize
from cachesync.local.api_server import ResolverWsgiApp

ABSENT: Any = None  # a store the requests below must never reach
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


class OneKeyStore:
    """The key table with one record (key lookups only)."""

    def __init__(self, record: ApiKeyRecord) -> None:
        self._record = record

    def get(self, key_id: str) -> ApiKeyRecord | None:
        return self._record if key_id == self._record.key_id else None


class World:
    def __init__(self, max_metric_keys: int = 200) -> None:
        created = new_api_key("reader", ("*",), (Scope.READ,), NOW)
        self.key, self.key_id = created.key, created.record.key_id
        self.records: list[AccessRecord] = []
        self.app: CacheSyncResolver = create_app(
            ApiDependencies(
                index_store_for=cast(Any, ABSENT),
                bucket="docs",
                reader=ABSENT,
                writer=ABSENT,
                keys=cast(Any, OneKeyStore(created.record)),
                token_secret=b"s" * 32,
                token_lifetime=timedelta(hours=1),
                retention=timedelta(days=90),
                version="1",
            )
        )
        install_access_log(
            self.app,
            AccessLog(
                logger=Logger(service="test_access"),
                metrics_namespace="cachesync-test",
                sink=self.records.append,
                max_metric_keys=max_metric_keys,
                now=lambda: NOW,
            ),
        )

    def call(self, path: str, query: str = "", **headers: str) -> int:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "wsgi.input": io.BytesIO(b""),
            "REMOTE_ADDR": "192.0.2.7",
        }
        environ.update({f"HTTP_{n.upper().replace('-', '_')}": v for n, v in headers.items()})
        seen: list[str] = []
        ResolverWsgiApp(self.app)(environ, lambda status, _headers: seen.append(status))  # type: ignore[arg-type]
        return int(seen[0].split()[0])


def emf_lines(output: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" in line]


def test_every_answer_is_recorded_with_its_route_key_and_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an API with the access log, and a reader key
    world = World()
    # When it answers a 400 to the key, a 401 to its wrong secret, a 401 without a key, a
    # health check and an unknown route
    statuses = [
        world.call("/v1/documents", "limit=999", Authorization=f"Bearer {world.key}"),
        world.call("/v1/documents", **{"X-Api-Key": world.key + "x"}),
        world.call("/v1/documents/a/b.json"),
        world.call("/v1/health", Authorization=f"Bearer {world.key}"),
        world.call("/v2/nothing"),
    ]
    # Then one record per answer, in order, with what was answered
    assert statuses[:3] == [400, 401, 401]
    seen = [(r.route, r.status, r.key_id, r.authenticated) for r in world.records]
    assert seen[:3] == [
        ("GET /v1/documents", 400, world.key_id, True),
        ("GET /v1/documents", 401, world.key_id, False),
        ("GET /v1/documents/{key}", 401, None, False),
    ]
    assert seen[3][0] == "GET /v1/health"
    assert seen[3][2:] == (world.key_id, False)
    assert seen[4] == ("unmatched", 404, None, False)
    first = world.records[0]
    assert first.method == "GET"
    assert first.source_ip == "192.0.2.7"
    assert first.request_id
    assert first.latency_ms > 0
    assert (first.cache, first.throttled) == ("none", False)
    # and the log line on stdout has the same fields, never the secret
    output = capsys.readouterr().out
    access = [json.loads(line) for line in output.splitlines() if '"api access"' in line]
    assert [line["status"] for line in access] == [r.status for r in world.records]
    assert access[0]["key_id"] == world.key_id
    assert access[0]["route"] == "GET /v1/documents"
    assert world.key.split("_")[-1] not in output


def test_metrics_go_per_route_and_only_per_verified_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an API with the access log
    world = World()
    # When a verified key gets a 400 and a wrong secret a 401
    world.call("/v1/documents", "limit=999", Authorization=f"Bearer {world.key}")
    world.call("/v1/documents", Authorization=f"Bearer {world.key}x")
    # Then each request has one EMF document with a route set; only the verified one also a
    # key set
    emitted = emf_lines(capsys.readouterr().out)
    sets = [
        [sorted(dims) for dims in line["_aws"]["CloudWatchMetrics"][0]["Dimensions"]]
        for line in emitted
    ]
    assert sets == [[["route", "service"], ["key_id", "service"]], [["route", "service"]]]
    verified, unverified = emitted
    assert (verified["route"], verified["key_id"]) == ("GET /v1/documents", world.key_id)
    assert "key_id" not in unverified
    assert (verified["ApiRequests"], verified["ApiClientErrors"], verified["ApiServerErrors"]) == (
        [1.0],
        [1.0],
        [0.0],
    )
    assert verified["ApiThrottled"] == [0.0]
    assert verified["ApiLatency"][0] > 0
    assert verified["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "cachesync-test"
    assert unverified["ApiClientErrors"] == [1.0]


def test_keys_past_the_cap_share_one_metric_dimension(capsys: pytest.CaptureFixture[str]) -> None:
    # Given an access log that gives at most zero keys their own dimension
    world = World(max_metric_keys=0)
    # When a verified key is answered
    world.call("/v1/documents", "limit=999", Authorization=f"Bearer {world.key}")
    # Then its metrics go to key_id=other, its log record keeps the key id
    keyed = [line for line in emf_lines(capsys.readouterr().out) if "key_id" in line]
    assert [line["key_id"] for line in keyed] == ["other"]
    assert world.records[0].key_id == world.key_id


def record(minutes_ago: float, status: int, ms: float, route: str = "GET /v1/documents") -> Any:
    return AccessRecord(
        timestamp=NOW - timedelta(minutes=minutes_ago),
        request_id="r",
        key_id="0123456789ab",
        authenticated=True,
        method=route.split()[0],
        route=route,
        status=status,
        latency_ms=ms,
        cache="none",
        throttled=status == 429,
        source_ip=None,
    )


def test_the_usage_report_splits_hour_and_day_per_route_with_percentiles() -> None:
    # Given 20 requests in the last hour (one 429, one 500), 5 earlier today, one last week and
    # one of another key
    records = [record(m, 200, float(m + 1)) for m in range(18)]
    records += [record(30, 429, 1.0), record(40, 500, 100.0, "PUT /v1/documents/{key}")]
    records += [record(120 + m, 404, 5.0) for m in range(5)]
    records += [record(60 * 24 * 7, 200, 1.0)]
    records += [record(1, 200, 1.0).model_copy(update={"key_id": "ffffffffffff"})]
    # When they are summarised for the key
    report = summarize(records, "0123456789ab", NOW)
    hour, day = report.windows
    # Then each window counts its own requests, errors and throttles
    assert (hour.total.requests, hour.total.errors, hour.total.throttled) == (20, 2, 1)
    assert (hour.total.client_errors, hour.total.server_errors) == (1, 1)
    assert (day.total.requests, day.total.errors) == (25, 7)
    assert [route.route for route in hour.routes] == [
        "GET /v1/documents",
        "PUT /v1/documents/{key}",
    ]
    assert hour.routes[1].p50_ms == 100.0
    # sorted: 1 (the 429), 1..18, 100: the 10th, 19th and 20th of 20
    assert (hour.total.p50_ms, hour.total.p95_ms, hour.total.p99_ms) == (9.0, 18.0, 100.0)


def test_percentiles_are_nearest_rank() -> None:
    # Given / When / Then
    values = [float(n) for n in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99)) == (
        50.0,
        95.0,
        99.0,
    )
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
