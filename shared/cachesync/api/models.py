"""What the query API returns: response models (request parameters are declared on the routes).

Index and store models never leak into a response: routes map them to these.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The fields of a query result item, in the order they are returned; `fields` projects them.
SUMMARY_FIELDS: Final = (
    "bucket",
    "key",
    "kind",
    "doc_id",
    "title",
    "status",
    "customers",
    "index_time",
    "etag",
    "version_id",
    "size",
    "s3_last_modified",
    "expires_at",
)


class QueryProgress(BaseModel):
    """How far a walk through a query's time window has come (for a progress display)."""

    model_config = ConfigDict(frozen=True)

    index: Literal["TimeRangeIndex", "CustomerTimeIndex", "StatusTimeIndex"]
    """The index that answers the query."""
    period: str | None
    """The index time period (``2026-03`` or ``2026``) of the last item of this page."""
    reached: datetime | None
    """The index time of the last item of this page (``None``: the page is empty)."""


class QueryResult(BaseModel):
    """One page of a document query."""

    model_config = ConfigDict(frozen=True)

    items: list[dict[str, Any]] = Field(
        description=(
            "Document summaries, newest first unless order=asc. Each holds the fields asked for "
            f"with `fields` (default: all of {', '.join(SUMMARY_FIELDS)})."
        )
    )
    count: int = Field(description="The number of items on this page.")
    next_token: str | None = Field(
        default=None,
        description="Pass as `next_token` (with the same parameters) for the next page; "
        "absent on the last page.",
    )
    progress: QueryProgress


class DocumentResult(BaseModel):
    """One document, with where it was read from."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    etag: str
    version_id: str | None
    kind: str
    doc_id: str
    customers: list[str]
    source: Literal["index", "s3"]
    """``index``: answered by the index; ``s3``: read from S3 (and backfilled into the index)."""
    document: dict[str, Any]
    """The document's JSON."""


class WriteResult(BaseModel):
    """The receipt of a write or delete through the write-through saga."""

    model_config = ConfigDict(frozen=True)

    operation: Literal["put", "delete"]
    bucket: str
    key: str
    etag: str | None = None
    version_id: str | None = None
    size: int | None = None
    index: Literal["committed", "superseded", "pending", "dry_run"]
    """``committed``: the index holds this write; ``superseded``: another writer got in between
    (the index follows S3); ``pending``: S3 holds it and the index follows shortly."""
    kind: str | None = None
    doc_id: str | None = None
    customers: list[str] = Field(default_factory=list)


class RotatedKey(BaseModel):
    """A key's new form after a rotation: shown once, never stored."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    key: str
    """The key with its new secret (``csk_<key id>_<secret>``): store it now."""
    previous_secret_valid_until: datetime
    """The old secret works until then."""
    signing_secret: str | None = None
    """For a key that requires signing: its new signing secret (the old one also works until
    ``previous_secret_valid_until``); store it now."""


class CacheReport(BaseModel):
    """This process's memory cache since it started."""

    model_config = ConfigDict(frozen=True)

    hits: int
    misses: int
    hit_ratio: float | None


class Health(BaseModel):
    """Whether this API instance can serve."""

    model_config = ConfigDict(frozen=True)

    status: Literal["ok", "degraded"]
    version: str
    index_reachable: bool
    cache: CacheReport


class ProblemDetails(BaseModel):
    """An error (RFC 9457), sent as ``application/problem+json``."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


# ---------------------------------------------------------------------- bulk writes

BULK_MAX_ITEMS: Final = 100
"""The most items one ``POST /v1/documents/bulk`` may hold (more: a 413 problem)."""


class BulkItem(BaseModel):
    """One put or delete of a bulk request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal["put", "delete"]
    key: str = Field(min_length=1, max_length=1024, description="The document's S3 key.")
    document: dict[str, Any] | None = Field(
        default=None, description="The document's JSON: required with a put, absent with a delete."
    )
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="As the Idempotency-Key header of a single write (scoped to the API key): "
        "a retried item returns its first receipt.",
    )

    @model_validator(mode="after")
    def _document_only_with_a_put(self) -> BulkItem:
        # A malformed item refuses the whole request (400) before anything is written.
        if self.op == "put" and self.document is None:
            raise ValueError("a put needs a document")
        if self.op == "delete" and self.document is not None:
            raise ValueError("a delete takes no document")
        return self


class BulkRequest(BaseModel):
    """The body of ``POST /v1/documents/bulk``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    items: list[BulkItem] = Field(
        min_length=1,
        # Not max_length: more items are a 413 with a reason, not a validation error.
        json_schema_extra={"maxItems": BULK_MAX_ITEMS},
        description=f"1 to {BULK_MAX_ITEMS} puts and deletes, each its own write.",
    )


class BulkItemResult(BaseModel):
    """What became of one item: its receipt, or the problem that stopped it."""

    model_config = ConfigDict(frozen=True)

    index: int
    """The item's position in the request (from 0)."""
    key: str
    op: Literal["put", "delete"]
    status: int
    """The HTTP status the item would have had as a single request (200: written)."""
    receipt: WriteResult | None = None
    """Present when the item succeeded."""
    problem: ProblemDetails | None = None
    """Present when the item failed (RFC 9457)."""


class BulkResult(BaseModel):
    """Every item's result, in request order (HTTP 200: all succeeded; 207: some failed)."""

    model_config = ConfigDict(frozen=True)

    items: list[BulkItemResult]
    succeeded: int
    failed: int

    @property
    def failures(self) -> list[BulkItemResult]:
        """The items that failed, in request order."""
        return [item for item in self.items if item.receipt is None]
