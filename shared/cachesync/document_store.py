"""What applications use for documents, with the cache switched on or off.

``open_document_store(settings)`` returns a :class:`DocumentStore` for reads, writes and queries.
With the cache on (``CACHESYNC_CACHE_ENABLED=true``, the default) it is
:class:`CachedDocumentStore`: the fallback reader, the write-through saga and the index's
queries. With the cache off it is :class:`DirectS3DocumentStore`: S3 alone, queries answered by
listing the bucket and filtering every document (slow, but the same answers), so an application
turns the cache on and off without a code change. Both take and return the same models:
:class:`~cachesync.fallback_reader.ReadResult`, :class:`~cachesync.write_through.WriteReceipt`,
:class:`~cachesync.index_models.QueryPage`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from aws_lambda_powertools import Logger

from cachesync.clock import utc_now
from cachesync.current_state import index_entry
from cachesync.documents import parse_document
from cachesync.exceptions import (
    DocumentNotFoundError,
    InvalidDocumentError,
    InvalidQueryError,
    ObjectNotFoundError,
)
from cachesync.fallback_reader import FallbackReader, ReadResult, ReadSource
from cachesync.index_models import (
    DEFAULT_WINDOW_DAYS,
    DocumentSummary,
    IndexEntry,
    IndexQuery,
    QueryPage,
    WriteSource,
)
from cachesync.ordering import format_time, parse_time
from cachesync.s3_keys import validate_key
from cachesync.stores.index_query_plan import CLOCK_SLACK
from cachesync.stores.interfaces import IndexStore, ObjectStore
from cachesync.stores.page_tokens import query_fingerprint
from cachesync.write_through import (
    DocumentWriter,
    IndexCommit,
    WriteOperation,
    WriteReceipt,
    document_text,
)

DocumentBody = Mapping[str, Any] | bytes | str


class DocumentStore(Protocol):
    """Documents for an application: read, write, delete, query."""

    def get(self, key: str) -> ReadResult:
        """The document at ``key``; raises :class:`DocumentNotFoundError` when there is none."""
        ...

    def put(
        self, key: str, document: DocumentBody, *, idempotency_key: str | None = None
    ) -> WriteReceipt:
        """Validate and store ``document`` at ``key``; raises :class:`InvalidDocumentError`
        before writing anything."""
        ...

    def delete(self, key: str, *, idempotency_key: str | None = None) -> WriteReceipt:
        """Delete the document at ``key``."""
        ...

    def query(self, query: IndexQuery) -> QueryPage:
        """One page of the documents matching ``query``, in index-time order."""
        ...


class CachedDocumentStore:
    """The cache on: reads index first (S3 on a miss), writes through the index, queries the
    index's GSIs."""

    def __init__(self, reader: FallbackReader, writer: DocumentWriter, index: IndexStore) -> None:
        self._reader = reader
        self._writer = writer
        self._index = index

    def get(self, key: str) -> ReadResult:
        """The document at ``key``, from the index or S3."""
        return self._reader.get_document(key)

    def put(
        self, key: str, document: DocumentBody, *, idempotency_key: str | None = None
    ) -> WriteReceipt:
        """Write ``document`` through the index to S3."""
        return self._writer.write_document(key, document, idempotency_key=idempotency_key)

    def delete(self, key: str, *, idempotency_key: str | None = None) -> WriteReceipt:
        """Delete ``key`` through the index (tombstone) and S3."""
        return self._writer.delete_document(key, idempotency_key=idempotency_key)

    def query(self, query: IndexQuery) -> QueryPage:
        """One page from the index."""
        return self._index.query(query)


class DirectS3DocumentStore:
    """The cache off: S3 alone. The index is neither read nor written.

    Idempotency keys are accepted and not needed: putting the same body twice leaves the same
    object, deleting twice leaves none. A query lists the whole bucket and reads every object:
    its cost grows with the bucket, which is what the index exists to avoid.
    """

    def __init__(
        self,
        objects: ObjectStore,
        *,
        bucket: str,
        retention: timedelta,
        logger: Logger | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._objects = objects
        self._bucket = bucket
        self._retention = retention
        self._logger = logger or Logger(service="cachesync")
        self._clock = clock

    def get(self, key: str) -> ReadResult:
        """The object at ``key``, read from S3."""
        try:
            stored = self._objects.get(self._bucket, validate_key(key))
        except ObjectNotFoundError as error:
            raise DocumentNotFoundError(self._bucket, key) from error
        return ReadResult(
            bucket=self._bucket,
            key=key,
            body=stored.body.decode("utf-8"),
            etag=stored.etag,
            version_id=stored.version_id,
            source=ReadSource.S3,
        )

    def put(
        self, key: str, document: DocumentBody, *, idempotency_key: str | None = None
    ) -> WriteReceipt:
        """Validate ``document`` as the write-through does, then put it in S3."""
        del idempotency_key  # a PUT of the same body is idempotent by itself
        body = document_text(key, document)
        parsed = parse_document(
            validate_key(key), body, s3_last_modified=self._clock(), retention=self._retention
        )
        written = self._objects.put(self._bucket, key, body.encode("utf-8"))
        return WriteReceipt(
            operation=WriteOperation.PUT,
            bucket=self._bucket,
            key=key,
            etag=written.etag,
            version_id=written.version_id,
            size=len(body.encode("utf-8")),
            index=IndexCommit.BYPASSED,
            kind=parsed.kind.value,
            doc_id=parsed.doc_id,
            customers=parsed.customers,
        )

    def delete(self, key: str, *, idempotency_key: str | None = None) -> WriteReceipt:
        """Delete the object at ``key`` in S3."""
        del idempotency_key  # deleting twice leaves no object either
        deleted = self._objects.delete(self._bucket, validate_key(key))
        return WriteReceipt(
            operation=WriteOperation.DELETE,
            bucket=self._bucket,
            key=key,
            version_id=deleted.version_id,
            index=IndexCommit.BYPASSED,
        )

    def query(self, query: IndexQuery) -> QueryPage:
        """One page of the matching documents, found by reading the whole bucket.

        Same answers as the index: the same window (inclusive, default a year back to a day
        ahead), filters, order and page size; documents past their TTL and objects that are not
        valid documents are left out. Ties in index time are ordered by key.
        """
        now = self._clock()
        fingerprint = query_fingerprint(query)
        window, after = (
            _open_token(query.next_token, fingerprint) if query.next_token else (None, None)
        )
        since, until = window or (
            format_time(query.since or now - timedelta(days=DEFAULT_WINDOW_DAYS)),
            format_time(query.until or now + CLOCK_SLACK),
        )
        descending = query.order == "desc"
        matches = sorted(
            (
                summary
                for summary in self._summaries()
                if _matches(summary, query, parse_time(since), parse_time(until), now)
            ),
            key=lambda summary: (summary.index_time, summary.key),
            reverse=descending,
        )
        if after is not None:
            position = (parse_time(after[0]), after[1])
            matches = [
                s
                for s in matches
                if (
                    (s.index_time, s.key) < position
                    if descending
                    else (s.index_time, s.key) > position
                )
            ]
        page = matches[: query.limit]
        token = None
        if len(matches) > query.limit:
            last = page[-1]
            token = _issue_token(
                fingerprint, (since, until), (format_time(last.index_time), last.key)
            )
        return QueryPage(items=page, next_token=token)

    def _summaries(self) -> Iterator[DocumentSummary]:
        token: str | None = None
        while True:
            listing = self._objects.list_page(self._bucket, "", token=token)
            for listed in listing.objects:
                try:
                    stored = self._objects.get(self._bucket, listed.key)
                    entry = index_entry(
                        stored, source=WriteSource.BACKFILL, retention=self._retention
                    )
                except ObjectNotFoundError:
                    continue  # deleted since the listing
                except InvalidDocumentError as invalid:
                    self._logger.warning(
                        "not a valid document: left out of the query",
                        extra={"key": listed.key, "reason": invalid.reason},
                    )
                    continue
                yield summary_of(entry)
            token = listing.next_token
            if token is None:
                return


def summary_of(entry: IndexEntry) -> DocumentSummary:
    """What a query returns about ``entry`` (the index stores the same fields)."""
    version, document = entry.version, entry.document
    return DocumentSummary(
        bucket=version.bucket,
        key=version.key,
        kind=document.kind,
        doc_id=document.doc_id,
        title=document.title,
        status=document.status,
        customers=document.customers,
        index_time=document.index_time,
        etag=version.etag,
        version_id=version.version_id,
        size=version.size,
        s3_last_modified=version.last_modified,
        expires_at=document.expires_at,
    )


def _matches(
    summary: DocumentSummary, query: IndexQuery, since: datetime, until: datetime, now: datetime
) -> bool:
    statuses = (query.status,) if query.status is not None else query.statuses
    customer = query.customer.strip().lower() if query.customer is not None else None
    return (
        since <= summary.index_time <= until
        # The index hides an entry from the second its TTL (whole epoch seconds) is reached.
        and (
            summary.expires_at is None or int(summary.expires_at.timestamp()) > int(now.timestamp())
        )
        and (query.kind is None or summary.kind == query.kind)
        and (not statuses or summary.status in statuses)
        and (customer is None or customer in summary.customers)
        and (
            query.within_customers is None
            or any(c in summary.customers for c in query.within_customers)
        )
    )


_CURSOR_FORMAT: Final = "s3-1"


def _issue_token(fingerprint: str, window: tuple[str, str], after: tuple[str, str]) -> str:
    payload = {"v": _CURSOR_FORMAT, "f": fingerprint, "w": list(window), "a": list(after)}
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def _open_token(token: str, fingerprint: str) -> tuple[tuple[str, str], tuple[str, str]]:
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode()))
        if payload["v"] != _CURSOR_FORMAT:
            raise InvalidQueryError("next_token is not a token of this store")
        owner = payload["f"]
        since, until = (str(part) for part in payload["w"])
        time, key = (str(part) for part in payload["a"])
        parse_time(time)
    except (binascii.Error, ValueError, KeyError, TypeError) as error:
        raise InvalidQueryError("next_token is not a token of this store") from error
    if owner != fingerprint:
        raise InvalidQueryError("next_token belongs to another query")
    return (since, until), (time, key)
