"""A Python client of the query API (``/v1``): typed answers, page walks, retries, timeouts.

    from cachesync.client import CacheSyncClient

    with CacheSyncClient("http://127.0.0.1:8080", api_key) as api:
        for item in api.documents(customer="acme", since="2026-01-01"):
            print(item.key, item.status)

Answers are the API's own response models (``cachesync.api.models``), the ones its OpenAPI
document is generated from. Errors are :mod:`cachesync.client.errors`; retries follow
:class:`~cachesync.client.retries.RetryPolicy`.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, quote, urlencode

import urllib3
from pydantic import BaseModel, ConfigDict

from cachesync.api.models import (
    BulkItem,
    BulkRequest,
    BulkResult,
    DocumentResult,
    Health,
    QueryResult,
    WriteResult,
)
from cachesync.api.request_signing import sign_headers
from cachesync.client.errors import ApiConnectionError, error_for_status
from cachesync.client.retries import RequestSafety, RetryPolicy
from cachesync.clock import utc_now

DOCUMENTS: Final = "/v1/documents"
BULK: Final = "/v1/documents/bulk"
JSON: Final = "application/json"


class QueryItem(BaseModel):
    """One item of a query page: every summary field, ``None`` when ``fields`` left it out."""

    model_config = ConfigDict(frozen=True)

    bucket: str | None = None
    key: str | None = None
    kind: str | None = None
    doc_id: str | None = None
    title: str | None = None
    status: str | None = None
    customers: list[str] | None = None
    index_time: datetime | None = None
    etag: str | None = None
    version_id: str | None = None
    size: int | None = None
    s3_last_modified: datetime | None = None
    expires_at: int | None = None


def _client_version() -> str:
    try:
        return package_version("cachesync")
    except PackageNotFoundError:
        return "0+unknown"


class CacheSyncClient:
    """The query API at ``base_url`` (ending before ``/v1``) with one API key.

    ``timeout``: seconds to connect and to wait for an answer (one number for both, or a
    ``(connect, read)`` pair). Thread-safe: one client (one connection pool) per application.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | tuple[float, float] = (3.0, 30.0),
        retry: RetryPolicy | None = None,
        pool: urllib3.PoolManager | None = None,
        signing_secret: str | None = None,
    ) -> None:
        """``signing_secret``: the key's signing secret (``css_...``), for a key created with
        ``--require-signing``: every request (every attempt) is then signed afresh."""
        self._base = base_url.rstrip("/")
        self._signing_secret = signing_secret
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        self._timeout = urllib3.Timeout(connect=connect, read=read)
        self._retry = retry or RetryPolicy()
        # retries=False: RetryPolicy is the one retry layer (it knows which requests are safe).
        self._pool = pool or urllib3.PoolManager(retries=False, maxsize=8)
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": f"{JSON}, application/problem+json",
            "User-Agent": f"cachesync-python/{_client_version()}",
        }

    def __enter__(self) -> CacheSyncClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.clear()

    # ------------------------------------------------------------------ reads

    def health(self) -> Health:
        """``GET /v1/health`` (no key needed): version, index reachable, cache figures."""
        return Health.model_validate(self._request("GET", "/v1/health").json())

    def query(
        self,
        *,
        customer: str | None = None,
        status: str | Sequence[str] | None = None,
        kind: Literal["change", "announcement"] | None = None,
        since: str | date | None = None,
        until: str | date | None = None,
        order: Literal["desc", "asc"] = "desc",
        limit: int = 50,
        fields: Sequence[str] | None = None,
        next_token: str | None = None,
    ) -> QueryResult:
        """One page of ``GET /v1/documents``; pass its ``next_token`` (with the same
        parameters) for the next. ``since`` is inclusive, ``until`` exclusive."""
        params: list[tuple[str, str]] = [("order", order), ("limit", str(limit))]
        if customer is not None:
            params.append(("customer", customer))
        statuses = [status] if isinstance(status, str) else list(status or ())
        params += [("status", value) for value in statuses]
        if kind is not None:
            params.append(("kind", kind))
        if since is not None:
            params.append(("since", _instant(since)))
        if until is not None:
            params.append(("until", _instant(until)))
        if fields:
            params.append(("fields", ",".join(fields)))
        if next_token is not None:
            params.append(("next_token", next_token))
        reply = self._request("GET", f"{DOCUMENTS}?{urlencode(params)}")
        return QueryResult.model_validate(reply.json())

    def pages(self, **query: Any) -> Iterator[QueryResult]:
        """Every page of a query (the arguments of :meth:`query`), following ``next_token``."""
        token = query.pop("next_token", None)
        while True:
            page = self.query(**query, next_token=token)
            yield page
            token = page.next_token
            if not token:
                return

    def documents(self, **query: Any) -> Iterator[QueryItem]:
        """Every item of a query across all its pages (the arguments of :meth:`query`)."""
        for page in self.pages(**query):
            yield from (QueryItem.model_validate(item) for item in page.items)

    def get(self, key: str, *, if_none_match: str | None = None) -> DocumentResult | None:
        """``GET /v1/documents/{key}``; ``None`` only when ``if_none_match`` (an ETag from an
        earlier read) still matches: the document is unchanged."""
        headers = {"If-None-Match": _quoted(if_none_match)} if if_none_match else {}
        reply = self._request("GET", _document_path(key), headers=headers)
        if reply.status == 304:
            return None
        return DocumentResult.model_validate(reply.json())

    # ------------------------------------------------------------------ writes

    def put(
        self, key: str, document: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> WriteResult:
        """``PUT /v1/documents/{key}``: index first, then S3 (the write-through saga).

        With ``idempotency_key`` a retry after a lost answer is safe (the server replays the
        first receipt), so transient failures are retried; without it only refusals that
        prove nothing was done (429, connection refused) are. See :meth:`new_idempotency_key`.
        """
        body = json.dumps(document).encode()
        return self._write("PUT", key, body, idempotency_key)

    def delete(self, key: str, *, idempotency_key: str | None = None) -> WriteResult:
        """``DELETE /v1/documents/{key}``: tombstone in the index, then S3 (retries: as
        :meth:`put`)."""
        return self._write("DELETE", key, None, idempotency_key)

    def bulk(self, items: Sequence[BulkItem | Mapping[str, Any]]) -> BulkResult:
        """``POST /v1/documents/bulk``: 1 to 100 puts and deletes, each its own saga.

        ``items``: :class:`BulkItem` (``op``, ``key``, ``document`` for a put, optional
        ``idempotency_key``) or mappings of the same fields. Returns every item's result in
        request order, whether all succeeded (HTTP 200) or some failed (207: see
        ``BulkResult.failed`` and each item's ``problem``); a refused request as a whole (400,
        401, 403, 413) raises. Retried on transient failures only when every item has an
        idempotency key (then a retry replays the items already done).
        """
        # More than BULK_MAX_ITEMS is the server's to refuse (413, with its reason).
        request = BulkRequest(items=[BulkItem.model_validate(item) for item in items])
        reply = self._request(
            "POST",
            BULK,
            headers={"Content-Type": JSON},
            body=request.model_dump_json(exclude_none=True).encode(),
            safety=RequestSafety(idempotent=all(item.idempotency_key for item in request.items)),
        )
        return BulkResult.model_validate(reply.json())

    @staticmethod
    def new_idempotency_key() -> str:
        """A fresh idempotency key: keep it with the write you may have to retry."""
        return str(uuid.uuid4())

    def _write(
        self, method: str, key: str, body: bytes | None, idempotency_key: str | None
    ) -> WriteResult:
        headers = {"Content-Type": JSON} if body is not None else {}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        reply = self._request(
            method,
            _document_path(key),
            headers=headers,
            body=body,
            safety=RequestSafety(idempotent=idempotency_key is not None),
        )
        return WriteResult.model_validate(reply.json())

    # ------------------------------------------------------------------ plumbing

    def _request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        safety: RequestSafety | None = None,
    ) -> urllib3.BaseHTTPResponse:
        safety = safety or RequestSafety(idempotent=method in ("GET", "HEAD"))
        return self._retry.call(lambda: self._send(method, path, headers, body), safety)

    def _send(
        self, method: str, path: str, headers: Mapping[str, str] | None, body: bytes | None
    ) -> urllib3.BaseHTTPResponse:
        what = f"{method} {path.split('?', 1)[0]}"
        sent = {**self._headers, **(headers or {})}
        if self._signing_secret is not None:
            # A fresh timestamp and nonce per attempt: a retry is a new request, not a replay.
            route, _, query = path.partition("?")
            sent.update(
                sign_headers(
                    self._signing_secret,
                    method,
                    route,
                    parse_qsl(query, keep_blank_values=True),
                    body or b"",
                    timestamp=int(time.time()),
                    nonce=secrets.token_urlsafe(18),
                )
            )
        try:
            reply = self._pool.request(
                method,
                self._base + path,
                body=body,
                headers=sent,
                timeout=self._timeout,
                redirect=False,
            )
        except urllib3.exceptions.NewConnectionError as error:
            raise ApiConnectionError(
                f"{what}: cannot connect ({error})", request_sent=False
            ) from error
        except urllib3.exceptions.HTTPError as error:
            raise ApiConnectionError(f"{what}: no answer ({error})", request_sent=True) from error
        if 200 <= reply.status < 300 or reply.status == 304:
            return reply
        raise error_for_status(reply.status, _problem(reply), _retry_after(reply), what)


def _document_path(key: str) -> str:
    # "/" stays a separator (the route takes the rest of the path); all else is escaped, so that
    # "a b+c.json" arrives as itself.
    return f"{DOCUMENTS}/{quote(key, safe='/')}"


def _instant(value: str | date) -> str:
    return value if isinstance(value, str) else value.isoformat()


def _quoted(etag: str) -> str:
    return etag if etag.startswith(('"', "W/")) or etag == "*" else f'"{etag}"'


def _problem(reply: urllib3.BaseHTTPResponse) -> dict[str, Any]:
    try:
        problem = json.loads(reply.data)
    except ValueError:
        return {"detail": reply.data[:200].decode("utf-8", "replace")}
    return problem if isinstance(problem, dict) else {}


def _retry_after(reply: urllib3.BaseHTTPResponse) -> float | None:
    value = reply.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - utc_now()).total_seconds())
    except (TypeError, ValueError):
        return None
