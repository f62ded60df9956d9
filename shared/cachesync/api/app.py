"""The query API: routes under ``/v1`` on Powertools' REST API resolver.

The same resolver answers API Gateway (``functions/query_api``) and the local WSGI server
(``local/api_server.py``). API Gateway's REST API (Lambda proxy, payload 1.0) is the target:
it has per-route throttling and usage plans, WAF, access logs and stage variables, and its
payload 1.0 carries repeated query parameters (``status=a&status=b``) as lists.

Every response gets the security headers; every error is an RFC 9457 problem (``problems.py``).
Routes check the caller's key and scope (a route middleware), then its tenancy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.event_handler.types import EventHandlerInstance
from aws_lambda_powertools.utilities.typing import LambdaContext

from cachesync.api.analytics_routes import register_analytics_routes
from cachesync.api.bulk_documents import bulk_operations, run_bulk
from cachesync.api.cache import ApiCaches
from cachesync.api.console import console_router
from cachesync.api.docs import DOCS_CSP, DOCS_PAGE, docs_asset
from cachesync.api.keys import (
    ApiKeyRecord,
    InvalidApiKeyError,
    KeyRecordCache,
    Principal,
    Scope,
    rotated_api_key,
    split_key,
    verify,
)
from cachesync.api.models import (
    BULK_MAX_ITEMS,
    BulkRequest,
    BulkResult,
    CacheReport,
    DocumentResult,
    Health,
    ProblemDetails,
    QueryProgress,
    QueryResult,
    RotatedKey,
    WriteResult,
)
from cachesync.api.parameters import (
    etag_matches,
    parse_projection,
    parse_statuses,
    parse_window,
    project,
)
from cachesync.api.problems import (
    PROBLEM_CONTENT_TYPE,
    ApiProblemError,
    Problem,
    bad_request,
    forbidden,
    method_not_allowed,
    not_found,
    problem_for,
    unauthorized,
    unsupported_media_type,
    validation_problem,
)
from cachesync.api.request_guard import RequestFacts, RequestGuard
from cachesync.api.request_limits import LimitPolicy
from cachesync.api.request_signing import signing_master_secret, signing_secret
from cachesync.api.tokens import SigningSealer
from cachesync.api.webhook_routes import register_webhook_routes
from cachesync.bulk_writes import BulkOperation
from cachesync.documents import DocumentKind, parse_document
from cachesync.exceptions import DocumentNotFoundError, IndexStoreError
from cachesync.index_models import IndexQuery
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.index_query_plan import plan_query
from cachesync.stores.page_tokens import PageTokens

if TYPE_CHECKING:
    from cachesync.analytics import AnalyticsReader
    from cachesync.fallback_reader import FallbackReader
    from cachesync.stores.dynamodb_api_keys import DynamoDBApiKeyStore
    from cachesync.webhooks.subscriptions import SubscriptionManager
    from cachesync.write_through import DocumentWriter

PRINCIPAL: Final = "principal"
# A document key is the rest of the path: it may hold "/" (the route's <key> is greedy).
_GREEDY_KEY: Final = "<key>"
# Any other path parameter (a key id, a subscription id, an asset) is one path segment of any
# characters: a malformed one reaches its route (and is a 400 or 404 after authentication)
# instead of matching no route at all.
_SEGMENT_PARAMETER: Final = re.compile(r"<(\w+)>")
HEALTH_PROBE_KEY: Final = ".cachesync/health-probe"
X_CACHE: Final = "X-Cache"
# S3 accepts them in keys, but they do not survive S3's XML responses nor HTTP paths intact.
_CONTROL_CHARACTERS: Final = re.compile(r"[\x00-\x1f\x7f]")

SECURITY_HEADERS: Final = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}

_PROBLEM_RESPONSES: Final[dict[int, OpenAPIResponse]] = {
    status: {
        "description": description,
        "content": {PROBLEM_CONTENT_TYPE: {"model": ProblemDetails}},
    }
    for status, description in (
        (400, "Invalid parameters or pagination token"),
        (401, "Missing, unknown or revoked API key"),
        (403, "The key lacks the scope or the customer, or may not be used from this address"),
        (429, "The key's rate limit was reached: retry after Retry-After"),
        (503, "A backing store (or the rate limiter, failing closed) is unavailable"),
    )
}
_WRITE_PROBLEM_RESPONSES: Final[dict[int, OpenAPIResponse]] = {
    **_PROBLEM_RESPONSES,
    **{
        status: {
            "description": description,
            "content": {PROBLEM_CONTENT_TYPE: {"model": ProblemDetails}},
        }
        for status, description in (
            (409, "A concurrent write to the same key, or a replay still running: retry"),
            (422, "An Idempotency-Key reused with another request"),
            (429, "The key's or the writes' rate limit was reached: retry after Retry-After"),
            (502, "S3 refused the write (the index was restored)"),
        )
    },
}


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ApiDependencies:
    """What the routes use: the stores and use cases, and the API's own settings."""

    index_store_for: Callable[[PageTokens], DynamoDBIndexStore]
    """An index store issuing and opening tokens with the given :class:`PageTokens`."""
    bucket: str
    reader: FallbackReader
    writer: DocumentWriter
    keys: DynamoDBApiKeyStore
    token_secret: bytes
    token_lifetime: timedelta
    retention: timedelta
    version: str
    cors_origins: tuple[str, ...] = ()
    caches: ApiCaches = field(
        default_factory=lambda: ApiCaches.create(max_entries=0, ttl_seconds=0)
    )
    logger: Logger | None = None
    clock: Callable[[], datetime] = _utc_now
    key_cache_ttl_seconds: float = 0.0
    """How long a process reuses a key record it read (0: read on every request); a revocation
    takes effect within this time."""
    bulk_concurrency: int = 8
    """How many items of one bulk request are written at once."""
    guard: RequestGuard | None = None
    """Allowlists, signatures and rate limits of keyed routes (``None``: allowlists only)."""
    analytics: AnalyticsReader | None = None
    """The change feed's counters (``None``: the analytics routes answer 503)."""
    webhooks: SubscriptionManager | None = None
    """Webhook subscriptions (``None``: the webhook routes answer 503)."""


class CacheSyncResolver(APIGatewayRestResolver):
    """The REST resolver with a greedy ``<key>`` and the security headers on every response."""

    @staticmethod
    def _compile_regex(rule: str, base_regex: str = "^{}/*$") -> re.Pattern[str]:
        if _GREEDY_KEY in rule:
            # DOTALL: a key may hold line breaks (S3 allows any UTF-8 character).
            return re.compile("^" + rule.replace(_GREEDY_KEY, "(?P<key>.+)") + "$", re.DOTALL)
        if _SEGMENT_PARAMETER.search(rule):
            pattern = _SEGMENT_PARAMETER.sub(r"(?P<\1>[^/]+)", rule)
            return re.compile("^" + pattern + "$", re.DOTALL)
        compiled: re.Pattern[str] = APIGatewayRestResolver._compile_regex(rule, base_regex)
        return compiled

    # The rate-limit headers of the request being resolved, once its limit was evaluated: kept
    # on the resolver, not in its context (cleared before the answer is built), and reset for
    # every request (a resolver resolves one request at a time: see local/api_server.py).
    rate_limit_headers: dict[str, str] | None = None
    request_guard: RequestGuard | None = None

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        """Resolve ``event``, then add the security headers the route did not set itself, and
        the rate-limit headers when the request's limit was evaluated (any status)."""
        self.rate_limit_headers = {}
        try:
            result: dict[str, Any] = super().resolve(event, context)
            extra = {**SECURITY_HEADERS, **self.rate_limit_headers}
        finally:
            self.rate_limit_headers = None
        headers = result.setdefault("multiValueHeaders", {})
        present = {name.lower() for name in headers}
        for name, value in extra.items():
            if name.lower() not in present:
                headers[name] = [value]
        return result

    def note_rate_limit(self, headers: Mapping[str, str]) -> None:
        """Keep the rate-limit ``headers`` for the answer of the request being resolved."""
        if self.rate_limit_headers is not None:
            self.rate_limit_headers.update(headers)


def create_app(deps: ApiDependencies) -> CacheSyncResolver:
    """The query API's resolver, every route registered."""
    cors = (
        CORSConfig(
            allow_origin=deps.cors_origins[0],
            extra_origins=list(deps.cors_origins[1:]),
            allow_headers=["Authorization", "X-Api-Key", "Idempotency-Key", "If-None-Match"],
            expose_headers=["ETag", "X-Cache"],
        )
        if deps.cors_origins
        else None
    )
    app = CacheSyncResolver(enable_validation=True, cors=cors)
    app.request_guard = deps.guard
    generated_openapi: list[str] = []
    logger = deps.logger or Logger(service="query_api")
    # A lambda, not deps.keys.get: the store is needed at the first request only (some tests
    # build the resolver without stores).
    key_records = KeyRecordCache(
        lambda key_id: deps.keys.get(key_id), ttl_seconds=deps.key_cache_ttl_seconds
    )

    def principal() -> Principal:
        caller: Principal = app.context[PRINCIPAL]
        return caller

    # ------------------------------------------------------------------ errors

    def problem_response(problem: Problem) -> Response[Any]:
        if problem.status >= 500:
            logger.exception("request failed", extra={"problem": problem.slug})
        return Response(
            status_code=problem.status,
            content_type=PROBLEM_CONTENT_TYPE,
            body=json.dumps(problem.body(app.current_event.path)),
            headers=dict(problem.headers),
        )

    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def invalid_request(error: RequestValidationError) -> Response[Any]:
        if any(tuple(e.get("loc", ()))[:1] == ("response",) for e in error.errors()):
            # Our answer failed its own model: a server error, not the caller's.
            return problem_response(problem_for(error))
        refused = refusal_before_validation()
        return refused or problem_response(validation_problem(error.errors()))

    @app.exception_handler(RequestUnsupportedContentType)  # type: ignore[untyped-decorator]
    def unsupported_body(_: RequestUnsupportedContentType) -> Response[Any]:
        # Raised while Powertools reads the body of a content type it does not parse.
        refused = refusal_before_validation()
        return refused or problem_response(unsupported_media_type())

    @app.exception_handler(UnicodeDecodeError)  # type: ignore[untyped-decorator]
    def undecodable_body(_: UnicodeDecodeError) -> Response[Any]:
        # Raised while Powertools validates the body: a body that is not UTF-8 text.
        refused = refusal_before_validation()
        return refused or problem_response(bad_request("the body is not UTF-8 text").problem)

    @app.exception_handler(RecursionError)  # type: ignore[untyped-decorator]
    def too_deep_body(_: RecursionError) -> Response[Any]:
        # Raised while Powertools decodes the body: JSON nested deeper than the decoder recurses
        # (the caller's error, not a 500).
        refused = refusal_before_validation()
        return refused or problem_response(bad_request("the body nests too deeply").problem)

    def refusal_before_validation() -> Response[Any] | None:
        """The 401 or 403 of a caller the route would refuse, if so.

        Powertools validates a request before the route's middlewares run: the caller must
        still prove its key first, so an anonymous caller learns nothing about the parameters.
        """
        guard = _guard_of(app)
        if guard is not None:
            try:
                guard.admit(app)
            except ApiProblemError as refused:
                return problem_response(refused.problem)
        return None

    @app.not_found
    def route_not_found(_: NotFoundError) -> Response[Any]:
        event = app.current_event
        allowed = _methods_serving(app, event.path)
        if allowed:
            return problem_response(method_not_allowed(event.http_method.upper(), allowed))
        return problem_response(not_found("no such route").problem)

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def any_error(error: Exception) -> Response[Any]:
        return problem_response(problem_for(error))

    # ------------------------------------------------------------------ routes

    @app.get(
        "/v1/documents",
        middlewares=[RequiresScope(Scope.READ, key_records)],
        summary="Query documents",
        description=(
            "Documents by any combination of customer, status, kind and time window, newest "
            "first. A key limited to customers sees only documents naming one of them."
        ),
        responses={
            200: {
                "description": "One page of results",
                "content": {"application/json": {"model": QueryResult}},
            },
            **_PROBLEM_RESPONSES,
        },
        tags=["documents"],
    )
    def query_documents(
        customer: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
        status: Annotated[list[str] | None, Query(description="Repeatable: any of")] = None,
        kind: Annotated[Literal["change", "announcement"] | None, Query()] = None,
        since: Annotated[
            str | None, Query(description="ISO 8601 date or date-time, inclusive")
        ] = None,
        until: Annotated[
            str | None, Query(description="ISO 8601 date or date-time, exclusive")
        ] = None,
        order: Annotated[Literal["desc", "asc"], Query()] = "desc",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        fields: Annotated[str | None, Query(description="Comma list of summary fields")] = None,
        next_token: Annotated[str | None, Query(min_length=1, max_length=8192)] = None,
    ) -> Response[Any]:
        # Any, not QueryResult: the body is serialised here (see _json_response); the 200's
        # model is declared above.
        caller = principal()
        code = customer.strip().lower() if customer is not None else None
        if code is not None and caller.customers is not None and code not in caller.customers:
            raise forbidden(f"this API key may not query customer {code!r}")
        statuses = parse_statuses(status or [])
        start, end = parse_window(since, until, deps.clock())
        projection = parse_projection(fields)
        query = IndexQuery(
            customer=code,
            status=statuses[0] if len(statuses) == 1 else None,
            statuses=tuple(statuses) if len(statuses) > 1 else (),
            within_customers=caller.customers,
            kind=DocumentKind(kind) if kind else None,
            since=start,
            # The window is half-open; the index's BETWEEN is inclusive at both ends.
            until=end - timedelta(microseconds=1) if end is not None else None,
            limit=limit,
            order=order,
            next_token=next_token,
        )
        # The caller's key and customers are part of the key: a page (and its next_token,
        # bound to the key) is never served to another caller.
        cache_key = (caller.key_id, caller.customers, query.model_dump_json(), projection)
        cached = deps.caches.queries.get(cache_key)
        if cached is not None:
            return _json_response(cached, {X_CACHE: "hit"})
        sealer = SigningSealer(deps.token_secret, caller.key_id, lifetime=deps.token_lifetime)
        page = deps.index_store_for(PageTokens(sealer)).query(query)
        index = plan_query(query, deps.clock(), None).index
        reached = page.items[-1].index_time if page.items else None
        result = QueryResult(
            items=[project(item, projection) for item in page.items],
            count=len(page.items),
            next_token=page.next_token,
            progress=QueryProgress(
                index=index.name,
                period=index.period_of(reached) if reached else None,
                reached=reached,
            ),
        )
        deps.caches.queries.put(cache_key, result)
        return _json_response(result, {X_CACHE: "miss"})

    @app.get(
        "/v1/documents/<key>",
        middlewares=[RequiresScope(Scope.READ, key_records)],
        summary="Read one document",
        description="From the index, or from S3 when the index cannot answer. "
        "Send If-None-Match with a known ETag to get 304 when it is unchanged.",
        responses={
            200: {
                "description": "The document",
                "content": {"application/json": {"model": DocumentResult}},
            },
            304: {"description": "Unchanged since the ETag in If-None-Match"},
            404: {
                "description": "No such document",
                "content": {PROBLEM_CONTENT_TYPE: {"model": ProblemDetails}},
            },
            **_PROBLEM_RESPONSES,
        },
        tags=["documents"],
    )
    def get_document(
        key: str,
        if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
    ) -> Response[Any]:
        # Any, not DocumentResult: a 304 has no body (the 200's model is declared above).
        caller = principal()
        _check_document_key(key)
        result = deps.caches.documents.get(key)
        if result is not None and not _still_current(deps, key, result.etag):
            # Changed or deleted since it was cached (through another process, or behind the
            # API's back): the cache never answers for an entry the index no longer holds.
            deps.caches.documents.evict(key)
            result = None
        hit = result is not None
        if result is None:
            result = _read_document(deps, key)
            deps.caches.documents.put(key, result)
        if not caller.may_see(result.customers):
            # Not 403: whether a document of another customer exists is not the caller's business.
            raise not_found(f"no document at {key!r}")
        etag = f'"{result.etag}"'
        headers = {
            "ETag": etag,
            "Cache-Control": "private, no-cache",
            X_CACHE: "hit" if hit else "miss",
        }
        if if_none_match is not None and etag_matches(if_none_match, etag):
            return Response(status_code=304, headers=headers, body=None)
        return _json_response(result, headers)

    @app.put(
        "/v1/documents/<key>",
        middlewares=[RequiresScope(Scope.WRITE, key_records)],
        summary="Write one document",
        description="Through the write-through saga: index intent, S3, index commit. "
        "A retried call with the same Idempotency-Key returns the first receipt.",
        responses={
            200: {
                "description": "The receipt",
                "content": {"application/json": {"model": WriteResult}},
            },
            **_WRITE_PROBLEM_RESPONSES,
            415: {
                "description": "A body that is not JSON (send Content-Type: application/json)",
                "content": {PROBLEM_CONTENT_TYPE: {"model": ProblemDetails}},
            },
            422: {
                "description": "Invalid document, or an Idempotency-Key reused with another body",
                "content": {PROBLEM_CONTENT_TYPE: {"model": ProblemDetails}},
            },
        },
        tags=["documents"],
    )
    def put_document(
        key: str,
        document: Annotated[dict[str, Any], Body(description="The document's JSON")],
        idempotency_key: Annotated[
            str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
        ] = None,
    ) -> WriteResult:
        caller = principal()
        _check_document_key(key)
        _require_json_body(app)
        if caller.customers is not None:
            parsed = parse_document(
                key, json.dumps(document), s3_last_modified=deps.clock(), retention=deps.retention
            )
            if not all(code in caller.customers for code in parsed.customers):
                raise forbidden("this API key may only write documents naming its own customers")
            _require_writable(deps, caller, key)
        try:
            receipt = deps.writer.write_document(
                key, document, idempotency_key=_scoped(caller, idempotency_key)
            )
        finally:
            # Even a failed write may have changed S3 or the index.
            deps.caches.written(key)
        return WriteResult.model_validate(receipt.model_dump(mode="json"))

    @app.delete(
        "/v1/documents/<key>",
        middlewares=[RequiresScope(Scope.WRITE, key_records)],
        summary="Delete one document",
        description="Through the write-through saga: index intent, S3 delete, tombstone.",
        responses={
            200: {
                "description": "The receipt",
                "content": {"application/json": {"model": WriteResult}},
            },
            404: {
                "description": "A document the key may not see",
                "content": {PROBLEM_CONTENT_TYPE: {"model": ProblemDetails}},
            },
            **_WRITE_PROBLEM_RESPONSES,
        },
        tags=["documents"],
    )
    def delete_document(
        key: str,
        idempotency_key: Annotated[
            str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
        ] = None,
    ) -> WriteResult:
        caller = principal()
        _check_document_key(key)
        if caller.customers is not None and not _visible_or_absent(deps, caller, key):
            raise not_found(f"no document at {key!r}")
        try:
            receipt = deps.writer.delete_document(
                key, idempotency_key=_scoped(caller, idempotency_key)
            )
        finally:
            deps.caches.written(key)
        return WriteResult.model_validate(receipt.model_dump(mode="json"))

    # ------------------------------------------------------------------ bulk writes
    # (owned by the bulk work: api/bulk_documents.py holds the logic)

    @app.post(
        "/v1/documents/bulk",
        middlewares=[RequiresScope(Scope.WRITE, key_records)],
        summary="Write and delete many documents",
        description=(
            f"1 to {BULK_MAX_ITEMS} puts and deletes, each its own write-through saga, run "
            "concurrently (items on one key in request order). Every item's result comes back in "
            "request order: its receipt, or the problem a single request would have answered. "
            "A failed item never undoes another. 200 when all succeeded, 207 when any failed."
        ),
        responses={
            200: {
                "description": "Every item succeeded",
                "content": {"application/json": {"model": BulkResult}},
            },
            207: {
                "description": "Some items failed (each with its problem); the others are written",
                "content": {"application/json": {"model": BulkResult}},
            },
            413: {
                "description": f"More than {BULK_MAX_ITEMS} items",
                "content": {PROBLEM_CONTENT_TYPE: {"model": ProblemDetails}},
            },
            415: {
                "description": "A body that is not JSON (send Content-Type: application/json)",
                "content": {PROBLEM_CONTENT_TYPE: {"model": ProblemDetails}},
            },
            **_PROBLEM_RESPONSES,
        },
        tags=["documents"],
    )
    def bulk_documents(request: Annotated[BulkRequest, Body()]) -> Response[Any]:
        caller = principal()
        _require_json_body(app)
        if len(request.items) > BULK_MAX_ITEMS:
            raise ApiProblemError(
                Problem(
                    413,
                    "too-many-items",
                    "Content Too Large",
                    f"a bulk request holds at most {BULK_MAX_ITEMS} items; this one holds "
                    f"{len(request.items)}: split it",
                    extensions={"max_items": BULK_MAX_ITEMS},
                )
            )

        def check(operation: BulkOperation) -> None:
            # On a worker thread: the single routes' checks, without touching the resolver.
            _check_document_key(operation.key)
            if caller.customers is None:
                return
            if operation.document is not None:
                parsed = parse_document(
                    operation.key,
                    json.dumps(operation.document),
                    s3_last_modified=deps.clock(),
                    retention=deps.retention,
                )
                if not all(code in caller.customers for code in parsed.customers):
                    raise forbidden(
                        "this API key may only write documents naming its own customers"
                    )
                _require_writable(deps, caller, operation.key)
            elif not _visible_or_absent(deps, caller, operation.key):
                raise not_found(f"no document at {operation.key!r}")

        operations = bulk_operations(request, lambda value: _scoped(caller, value))
        try:
            status, result = run_bulk(
                deps.writer,
                operations,
                concurrency=deps.bulk_concurrency,
                check=check,
                logger=logger,
            )
        finally:
            # Even a failed item may have changed S3 or the index.
            for key in {operation.key for operation in operations}:
                deps.caches.written(key)
        return Response(
            status_code=status, content_type="application/json", body=result.model_dump_json()
        )

    # ------------------------------------------------------------------ end of bulk writes

    @app.post(
        "/v1/api-keys/<key_id>/rotate",
        middlewares=[RequiresScope(Scope.ADMIN, key_records)],
        summary="Rotate an API key",
        description=(
            "A new secret for the key (same key id), returned once; the old secret keeps working "
            "for grace_seconds. Needs an admin key for every customer."
        ),
        responses={
            200: {
                "description": "The key's new form",
                "content": {"application/json": {"model": RotatedKey}},
            },
            404: {
                "description": "No such active key",
                "content": {PROBLEM_CONTENT_TYPE: {"model": ProblemDetails}},
            },
            409: {
                "description": "The key was rotated or revoked meanwhile",
                "content": {PROBLEM_CONTENT_TYPE: {"model": ProblemDetails}},
            },
            **_PROBLEM_RESPONSES,
        },
        tags=["api keys"],
    )
    def rotate_key(
        key_id: Annotated[str, PathParam(pattern=r"^[0-9a-f]{12}$", description="The key id")],
        grace_seconds: Annotated[
            int, Query(ge=0, le=30 * 86400, description="How long the old secret keeps working")
        ] = 86400,
    ) -> Response[Any]:
        if principal().customers is not None:
            raise forbidden("only an admin key for every customer may rotate keys")
        # Read from the table, not the per-process key cache: the rotation is conditional on
        # the secret it rotates from.
        record = deps.keys.get(key_id)
        if record is None or record.revoked_at is not None:
            raise not_found(f"no active API key {key_id!r}")
        rotated = rotated_api_key(record, deps.clock(), timedelta(seconds=grace_seconds))
        if not deps.keys.rotate(record, rotated.record):
            raise ApiProblemError(
                Problem(409, "key-changed", "Conflict", f"API key {key_id} changed meanwhile")
            )
        logger.info("API key rotated", extra={"key_id": key_id, "by": principal().key_id})
        body = RotatedKey(
            key_id=key_id,
            key=rotated.key,
            previous_secret_valid_until=rotated.record.previous_valid_until,
            # The signing secret follows the key's salt: a rotation changes it too.
            signing_secret=(
                signing_secret(
                    signing_master_secret(deps.token_secret), key_id, rotated.record.salt
                )
                if rotated.record.requires_signing
                else None
            ),
        )
        return Response(
            status_code=200, content_type="application/json", body=body.model_dump_json()
        )

    def analytics_reader() -> AnalyticsReader:
        if deps.analytics is None:
            raise ApiProblemError(
                Problem(503, "analytics-unavailable", "Service Unavailable", "analytics are off")
            )
        return deps.analytics

    register_analytics_routes(
        app,
        analytics_reader,
        guard=RequiresScope(Scope.READ, key_records),
        principal=principal,
        today=deps.clock,
        problem_responses=_PROBLEM_RESPONSES,
    )

    def subscription_manager() -> SubscriptionManager:
        if deps.webhooks is None:
            raise ApiProblemError(
                Problem(503, "webhooks-unavailable", "Service Unavailable", "webhooks are off")
            )
        return deps.webhooks

    register_webhook_routes(
        app,
        subscription_manager,
        guard=RequiresScope(Scope.ADMIN, key_records),
        principal=principal,
        problem_responses=_PROBLEM_RESPONSES,
    )

    @app.get(
        "/v1/health",
        summary="Health",
        description="No key needed. 503 when the index cannot be reached (for load balancers).",
        responses={
            200: {"description": "Serving", "content": {"application/json": {"model": Health}}},
            503: {"description": "Degraded", "content": {"application/json": {"model": Health}}},
        },
        tags=["service"],
        security=[{}],
    )
    def health() -> Response[Any]:
        try:
            deps.index_store_for(PageTokens()).get_state(deps.bucket, HEALTH_PROBE_KEY)
        except IndexStoreError:
            reachable = False
        else:
            reachable = True
        stats = deps.caches.stats()
        report = Health(
            status="ok" if reachable else "degraded",
            version=deps.version,
            index_reachable=reachable,
            cache=CacheReport(hits=stats.hits, misses=stats.misses, hit_ratio=stats.hit_ratio),
        )
        return Response(
            status_code=200 if reachable else 503, content_type="application/json", body=report
        )

    @app.get("/v1/openapi.json", include_in_schema=False)
    def openapi() -> Response[Any]:
        # Generated once per process (seconds on a busy machine): the routes do not change.
        if not generated_openapi:
            generated_openapi.append(openapi_json(app, deps.version))
        return Response(status_code=200, content_type="application/json", body=generated_openapi[0])

    @app.get("/v1/docs", include_in_schema=False)
    def docs_page() -> Response[Any]:
        return Response(
            status_code=200,
            content_type="text/html; charset=utf-8",
            body=DOCS_PAGE,
            headers={"Content-Security-Policy": DOCS_CSP},
        )

    # Not compressed: a gzipped body is base64 in the Lambda answer, which API Gateway (no binary
    # media types declared) would pass to the browser as is.
    @app.get("/v1/docs/<asset>", include_in_schema=False)
    def docs_assets(asset: str) -> Response[Any]:
        found = docs_asset(asset)
        if found is None:
            raise not_found("no such asset")
        text, content_type = found
        return Response(
            status_code=200,
            content_type=f"{content_type}; charset=utf-8",
            body=text,
            headers={"Cache-Control": "public, max-age=86400"},
        )

    app.include_router(console_router())
    return app


def openapi_json(app: APIGatewayRestResolver, version: str) -> str:
    """The OpenAPI document of ``app``, generated from its routes and models."""
    return app.get_openapi_json_schema(
        title="cachesync query API",
        version=version,
        summary="Query, read and write the documents cachesync indexes.",
        security_schemes={
            "bearer": HTTPBearer(description="Authorization: Bearer <API key>"),
            "apiKey": APIKey(name="X-Api-Key", in_=APIKeyIn.header),
        },
        security=[{"bearer": []}, {"apiKey": []}],
    )


@dataclass(frozen=True)
class RequiresScope:
    """Route middleware: the caller's API key must be valid and hold ``scope``.

    Also consulted when a request fails validation (which Powertools runs before the route's
    middlewares): authentication comes first, so an anonymous caller gets 401, never 400.
    """

    scope: Scope
    keys: KeyRecordCache

    @property
    def __name__(self) -> str:
        """The name Powertools shows for a middleware (it reads a function's ``__name__``)."""
        return f"requires_{self.scope.value}"

    def admit(self, app: EventHandlerInstance) -> Principal:
        """The caller, once its key is verified, its request passed the guard
        (``api/request_guard.py``: allowlist, signature, rate limit) and its key holds the
        scope; else a 401, 403, 429 or 503."""
        record, principal = _authenticate(app, self.keys)
        if isinstance(app, CacheSyncResolver):
            guard = app.request_guard or _ALLOWLIST_ONLY
            facts = RequestFacts.of(app.current_event.raw_event)
            guard.check(record, facts, app.note_rate_limit)
        if self.scope not in principal.scopes:
            raise forbidden(f"this API key lacks the {self.scope.value!r} scope")
        return principal

    def __call__(self, app: EventHandlerInstance, next_middleware: Callable[..., Any]) -> Any:
        """Admit the caller, keep it in the request's context, then go on."""
        app.context[PRINCIPAL] = self.admit(app)
        return next_middleware(app)


# Without a configured guard (tests that build the resolver bare), allowlists still hold.
_ALLOWLIST_ONLY: Final = RequestGuard(
    signatures=None, limiter=None, default_limits=LimitPolicy(per_minute=1, burst=1)
)


def _guard_of(app: APIGatewayRestResolver) -> RequiresScope | None:
    """The scope check of the route being resolved, if it has one."""
    # Powertools records the matched route in the request's context under "_route".
    route = app.context.get("_route")
    for middleware in getattr(route, "middlewares", None) or ():
        if isinstance(middleware, RequiresScope):
            return middleware
    return None


def _methods_serving(app: APIGatewayRestResolver, path: str) -> list[str]:
    """The methods of the routes whose pattern matches ``path`` (sorted; empty: none)."""
    # Powertools keeps its routes in these two lists and answers a method it does not find
    # with "not found": the path may still be served under other methods (405, not 404).
    routes = [*app._static_routes, *app._dynamic_routes]
    return sorted({route.method.upper() for route in routes if route.rule.match(path)})


def _authenticate(
    app: EventHandlerInstance, keys: KeyRecordCache
) -> tuple[ApiKeyRecord, Principal]:
    """The caller of the current request, from ``Authorization: Bearer`` or ``X-Api-Key``: its
    key's record and what it may do."""
    event = app.current_event
    # Powertools' event headers are case-insensitive.
    authorization = event.headers.get("Authorization")
    presented = event.headers.get("X-Api-Key")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise unauthorized("the Authorization header must be 'Bearer <API key>'")
        presented = credentials.strip()
    if not presented:
        raise unauthorized("an API key is required (Authorization: Bearer, or X-Api-Key)")
    try:
        key_id, secret = split_key(presented)
        record = keys.get(key_id)
        principal = verify(record, secret)
    except InvalidApiKeyError as error:
        raise unauthorized(str(error)) from error
    assert record is not None
    return record, principal


def _check_document_key(key: str) -> None:
    """A 400 for a key the API does not serve: one holding a control character."""
    if _CONTROL_CHARACTERS.search(key):
        raise bad_request("the key holds a control character (U+0000 to U+001F, or U+007F)")


def _scoped(caller: Principal, idempotency_key: str | None) -> str | None:
    """An idempotency key per API key: two callers choosing the same value never collide (nor
    learn of each other's calls)."""
    return None if idempotency_key is None else f"{caller.key_id}:{idempotency_key}"


def _json_response(body: QueryResult | DocumentResult, headers: dict[str, str]) -> Response[Any]:
    """``body`` as JSON, serialised by pydantic-core in one step. Handing Powertools the model
    would validate it again (it was validated when built), turn it into Python objects and then
    encode those with the json module: about 300 µs for a 50-item page here, against 55 µs."""
    # A last page has no next_token at all (not null), as the API promises.
    absent = {"next_token"} if isinstance(body, QueryResult) and body.next_token is None else None
    return Response(
        status_code=200,
        content_type="application/json",
        body=body.model_dump_json(exclude=absent),
        headers=headers,
    )


def _require_json_body(app: EventHandlerInstance) -> None:
    """A document comes as JSON: a form body (which Powertools parses into fields) is a 415,
    not a document missing every field. No Content-Type at all is taken as JSON."""
    content_type = app.current_event.headers.get("Content-Type") or ""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise ApiProblemError(unsupported_media_type())


def _still_current(deps: ApiDependencies, key: str, etag: str) -> bool:
    """Whether the index still holds, committed, the version of ``key`` with ``etag``: one
    consistent GetItem, the cheap revalidation of a cached document."""
    state = deps.index_store_for(PageTokens()).get_state(deps.bucket, key)
    return (
        state is not None
        and not state.is_tombstone
        and not state.is_pending
        and state.ordering.etag == etag
    )


def _read_document(deps: ApiDependencies, key: str) -> DocumentResult:
    """The document at ``key`` through the fallback reader; 404 when S3 has none."""
    try:
        read = deps.reader.get_document(key)
    except DocumentNotFoundError as error:
        raise not_found(f"no document at {key!r}") from error
    parsed = parse_document(key, read.body, s3_last_modified=deps.clock(), retention=deps.retention)
    return DocumentResult(
        bucket=read.bucket,
        key=read.key,
        etag=read.etag,
        version_id=read.version_id,
        kind=parsed.kind.value,
        doc_id=parsed.doc_id,
        customers=list(parsed.customers),
        source=read.source.value,
        document=json.loads(read.body),
    )


def _visible_or_absent(deps: ApiDependencies, caller: Principal, key: str) -> bool:
    """Whether ``key`` holds no document, or one ``caller`` may see."""
    try:
        read = deps.reader.get_document(key)
    except DocumentNotFoundError:
        return True
    parsed = parse_document(key, read.body, s3_last_modified=deps.clock(), retention=deps.retention)
    return caller.may_see(parsed.customers)


def _require_writable(deps: ApiDependencies, caller: Principal, key: str) -> None:
    """A restricted key may not overwrite a document of other customers."""
    if not _visible_or_absent(deps, caller, key):
        raise forbidden("the document at this key belongs to customers this API key may not see")
