"""Usage statistics of the query API: one access log line and its metrics per request.

:func:`install_access_log` wraps the resolver's ``resolve``: the one place that sees every
final answer, including the 401/403/429 of the request guard, the 400 of validation (which
Powertools runs before any middleware), 404/405 of unknown routes and CORS preflights. A
middleware would miss most of those. Nothing here changes the answer.

Each request yields:

- one structured log line (message ``api access``, through the Powertools logger: JSON on
  stdout, so CloudWatch Logs in Lambda) with the fields of :class:`AccessRecord`. Never the key's
  secret: ``key_id`` is the public half of the key the caller presented (``csk_<key_id>_...``),
  and ``authenticated`` says whether the API verified it (false for a 401, an unknown route, or
  a route without a key such as ``/v1/health``);
- with ``metrics``: one EMF document (Powertools ``EphemeralMetrics``, namespace and service of
  the function's metrics) holding ``ApiRequests`` (1), ``ApiClientErrors`` (1 for a 4xx, else
  0), ``ApiServerErrors`` (5xx), ``ApiThrottled`` (429) and ``ApiLatency`` (ms) under two
  dimension sets: ``{service, route}`` (``METHOD /template``: a dozen values) and, for a
  verified key, ``{service, key_id}``.
  Cardinality: the key-id set carries only keys the API verified (a made-up key id never
  becomes a metric; a 429 counts, since the limiter counts verified keys), so it grows with the
  keys an admin issued; and a process gives its own dimension to at most ``max_metric_keys``
  distinct keys, the rest go to ``key_id=other``. The log lines keep every key id: Logs
  Insights answers what the metrics fold away (docs/RUNBOOK.md);
- with ``sink`` (``cachesync api serve``: a JSON Lines file, ``--access-log``): the record, for
  ``cachesync keys usage``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict

from cachesync.api.app import CacheSyncResolver, RequiresScope
from cachesync.api.keys import InvalidApiKeyError, split_key

ACCESS_LOG_FILE: Final = Path(".cachesync") / "logs" / "api-access.jsonl"
"""Where ``cachesync api serve`` appends the access log by default (relative to its folder)."""
ACCESS_MESSAGE: Final = "api access"
UNMATCHED_ROUTE: Final = "unmatched"
OTHER_KEYS: Final = "other"
API_REQUESTS: Final = "ApiRequests"
API_CLIENT_ERRORS: Final = "ApiClientErrors"
API_SERVER_ERRORS: Final = "ApiServerErrors"
API_THROTTLED: Final = "ApiThrottled"
API_LATENCY: Final = "ApiLatency"
ROUTE_DIMENSION: Final = "route"
KEY_DIMENSION: Final = "key_id"
SERVICE_DIMENSION: Final = "service"
TOO_MANY_REQUESTS: Final = 429

CacheResult = Literal["hit", "miss", "none"]


class AccessRecord(BaseModel):
    """One request as the access log keeps it (the field names are the log line's)."""

    model_config = ConfigDict(frozen=True)

    timestamp: datetime
    request_id: str
    key_id: str | None
    """The key id the caller presented (never the secret); ``None``: no key, or not one."""
    authenticated: bool
    """Whether the API verified that key (false for a 401, or on a route needing no key)."""
    method: str
    route: str
    """``METHOD /v1/template/{param}``, or ``unmatched``."""
    status: int
    latency_ms: float
    cache: CacheResult
    throttled: bool
    source_ip: str | None


Sink = Callable[[AccessRecord], None]


class JsonLinesSink:
    """Appends each record as one JSON line to ``path`` (parents created).

    gunicorn's workers each append to the same file: one ``write`` of one short line on a file
    opened for appending lands whole (``O_APPEND``), so their lines never interleave.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._lock = threading.Lock()

    def __call__(self, record: AccessRecord) -> None:
        """Append ``record``."""
        line = record.model_dump_json() + "\n"
        with self._lock, self._path.open("a", encoding="utf-8") as file:
            file.write(line)


class AccessLog:
    """Turns one answered request into its log line, metrics and sink record."""

    def __init__(
        self,
        *,
        logger: Logger,
        metrics_namespace: str | None = None,
        service: str = "query_api",
        sink: Sink | None = None,
        max_metric_keys: int = 200,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``metrics_namespace``: emit the EMF metrics there (``None``: no metrics)."""
        self._logger = logger
        self._namespace = metrics_namespace
        self._service = service
        self._sink = sink
        self._max_metric_keys = max_metric_keys
        self._metric_keys: set[str] = set()
        self._now = now
        # Not the function's Metrics (a singleton flushed once per invocation, one dimension
        # set): this one is flushed after every request, from the one thread resolving it.
        self._metrics = EphemeralMetrics(namespace=metrics_namespace, service=service)

    def record(self, record: AccessRecord) -> None:
        """Log ``record``, emit its metrics, hand it to the sink. Never raises: usage figures
        must not cost an answer."""
        try:
            self._logger.info(
                ACCESS_MESSAGE, extra=record.model_dump(mode="json", exclude={"timestamp"})
            )
            if self._namespace is not None:
                self._emit(record)
            if self._sink is not None:
                self._sink(record)
        except Exception:  # an unwritable file or a full disk: the answer still goes out
            self._logger.exception("access log failed")

    def _emit(self, record: AccessRecord) -> None:
        # One EMF document with two dimension sets ({service, route} and, for a verified key,
        # {service, key_id}): CloudWatch files each metric under both, for half the cost of two
        # documents (Powertools' serialisation is most of the access log's time).
        metrics = self._metrics
        metrics.add_dimension(name=ROUTE_DIMENSION, value=record.route)
        if record.authenticated and record.key_id is not None:
            metrics.add_dimensions(
                **{SERVICE_DIMENSION: self._service, KEY_DIMENSION: self._metric_key(record.key_id)}
            )
        counts = {
            API_REQUESTS: 1,
            API_CLIENT_ERRORS: int(400 <= record.status < 500),
            API_SERVER_ERRORS: int(record.status >= 500),
            API_THROTTLED: int(record.throttled),
        }
        for name, count in counts.items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
        metrics.add_metric(name=API_LATENCY, unit=MetricUnit.Milliseconds, value=record.latency_ms)
        metrics.flush_metrics()

    def _metric_key(self, key_id: str) -> str:
        if key_id in self._metric_keys:
            return key_id
        if len(self._metric_keys) < self._max_metric_keys:
            self._metric_keys.add(key_id)
            return key_id
        return OTHER_KEYS

    def observe(
        self, app: CacheSyncResolver, event: Mapping[str, Any], result: Mapping[str, Any], ms: float
    ) -> None:
        """Record ``event``, answered by ``app`` with ``result`` after ``ms`` milliseconds."""
        try:
            record = self.describe(app, event, result, ms)
        except Exception:  # a malformed event the resolver answered anyway
            self._logger.exception("access log failed")
            return
        self.record(record)

    def describe(
        self, app: CacheSyncResolver, event: Mapping[str, Any], result: Mapping[str, Any], ms: float
    ) -> AccessRecord:
        """The record of ``event`` answered with ``result`` after ``ms`` milliseconds."""
        method = str(event.get("httpMethod") or "").upper()
        route = route_of(app, method, str(event.get("path") or ""))
        status = int(result.get("statusCode") or 0)
        key_id = presented_key_id(event)
        context = event.get("requestContext") or {}
        identity = context.get("identity") or {}
        return AccessRecord(
            timestamp=self._now(),
            request_id=str(context.get("requestId") or ""),
            key_id=key_id,
            # Every answer of a keyed route but a 401 comes after the key was verified: the
            # guard authenticates before validation, scope, allowlist and limits.
            authenticated=key_id is not None and route is not None and route[1] and status != 401,
            method=method,
            route=route[0] if route is not None else UNMATCHED_ROUTE,
            status=status,
            latency_ms=round(ms, 3),
            cache=cache_result(result),
            throttled=status == TOO_MANY_REQUESTS,
            source_ip=identity.get("sourceIp"),
        )


def access_log_for(
    *, logger: Logger | None, metrics: Metrics | None, file: Path | None
) -> AccessLog:
    """The access log of ``build_api``: lines through ``logger``, metrics in ``metrics``'
    namespace and service (``None``: none), records appended to ``file`` (``None``: none)."""
    return AccessLog(
        logger=logger or Logger(service="query_api"),
        metrics_namespace=(metrics.provider.namespace or "cachesync") if metrics else None,
        service=(metrics.provider.service if metrics else None) or "query_api",
        sink=JsonLinesSink(file) if file is not None else None,
    )


def install_access_log(app: CacheSyncResolver, access_log: AccessLog) -> None:
    """Record every request ``app`` resolves with ``access_log``."""
    resolve = app.resolve

    def resolve_and_record(event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        started = time.perf_counter()
        result = resolve(event, context)
        access_log.observe(app, event, result, (time.perf_counter() - started) * 1000)
        return result

    # An attribute of this instance, not a subclass: the access log stays out of app.py, and the
    # Lambda handler and the WSGI adapter both call app.resolve.
    app.resolve = resolve_and_record  # type: ignore[method-assign]


def route_of(app: CacheSyncResolver, method: str, path: str) -> tuple[str, bool] | None:
    """The template of the route serving ``method`` ``path`` (``GET /v1/documents/{key}``) and
    whether it needs a key; ``None`` when no route serves it."""
    # Powertools keeps its routes in these two lists (static ones are tried first).
    for route in [*app._static_routes, *app._dynamic_routes]:
        if route.method.upper() == method and route.rule.match(path):
            template = route.path.replace("<", "{").replace(">", "}")
            keyed = any(isinstance(m, RequiresScope) for m in route.middlewares or ())
            return f"{method} {template}", keyed
    return None


def presented_key_id(event: Mapping[str, Any]) -> str | None:
    """The key id of the API key in ``Authorization: Bearer`` or ``X-Api-Key``, if it has the
    key format (the secret is read here only to be dropped)."""
    headers = {str(name).lower(): value for name, value in (event.get("headers") or {}).items()}
    presented = headers.get("x-api-key")
    authorization = str(headers.get("authorization") or "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        presented = credentials.strip()
    if not presented:
        return None
    try:
        key_id, _secret = split_key(str(presented))
    except InvalidApiKeyError:
        return None
    return key_id


def cache_result(result: Mapping[str, Any]) -> CacheResult:
    """``hit`` or ``miss`` from the answer's ``X-Cache`` header; ``none`` without one."""
    headers: dict[str, Any] = {**(result.get("headers") or {})}
    headers.update(result.get("multiValueHeaders") or {})
    for name, value in headers.items():
        if name.lower() == "x-cache":
            outcome = value[0] if isinstance(value, list) and value else value
            if outcome in ("hit", "miss"):
                return "hit" if outcome == "hit" else "miss"
    return "none"
