"""The documents cachesync indexes: models, kind detection, customers, index time and TTL.

Documents are JSON objects in S3. Two kinds are built in; unknown extra fields are kept.
:func:`parse_document` turns the bytes of an object into :class:`ParsedDocument`, the one input
the index store needs, or raises :class:`InvalidDocumentError` naming the key and the field.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

import pydantic_core
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from cachesync.exceptions import InvalidDocumentError
from cachesync.s3_keys import customer_from_key, kind_from_key
from cachesync.validation_errors import first_validation_error

# A document names at most this many customers: one transaction writes the document item, its
# new customer links and deletes its old ones, and DynamoDB caps a transaction at 100 items.
MAX_CUSTOMERS: Final = 40
MAX_CUSTOMER_CODE_LENGTH: Final = 128
# The summary fields an index item carries are bounded, so that a document's metadata always fits
# in one item (the body moves to S3 when it does not): a document with a 500 KB title is refused
# as invalid everywhere (event, backfill, write-through, API), before anything is written.
MAX_TITLE_LENGTH: Final = 10_000
MAX_ID_LENGTH: Final = 1_024
DEFAULT_RETENTION: Final = timedelta(days=90)


def _assume_utc(value: datetime) -> datetime:
    """Timestamps without a zone are UTC; everything is stored in UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_assume_utc)]


def normalise_customers(codes: list[str]) -> list[str]:
    """Trim, lower-case and deduplicate customer codes, keeping first-seen order."""
    seen: dict[str, None] = {}
    for code in codes:
        normalised = code.strip().lower()
        if normalised:
            seen.setdefault(normalised, None)
    return list(seen)


class DocumentKind(StrEnum):
    """The built-in document kinds."""

    CHANGE = "change"
    ANNOUNCEMENT = "announcement"


class ChangeStatus(StrEnum):
    """Lifecycle of a change record."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class AnnouncementStatus(StrEnum):
    """Lifecycle of an announcement."""

    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class _DocumentBase(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    title: str = Field(default="", max_length=MAX_TITLE_LENGTH)
    customers: list[str] = Field(default_factory=list)
    modified_at: UtcDatetime | None = None

    @field_validator("customers")
    @classmethod
    def _normalise_customers(cls, codes: list[str]) -> list[str]:
        normalised = normalise_customers(codes)
        if len(normalised) > MAX_CUSTOMERS:
            raise ValueError(f"at most {MAX_CUSTOMERS} customers, got {len(normalised)}")
        if any(len(code) > MAX_CUSTOMER_CODE_LENGTH for code in normalised):
            raise ValueError(f"customer codes are at most {MAX_CUSTOMER_CODE_LENGTH} characters")
        return normalised


class ChangeMetadata(_DocumentBase):
    """A change record (``object_type: "change"``)."""

    object_type: Literal["change"] = "change"
    change_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    status: ChangeStatus = ChangeStatus.DRAFT
    created_at: UtcDatetime | None = None
    scheduled_start: UtcDatetime | None = None
    scheduled_end: UtcDatetime | None = None

    @property
    def doc_id(self) -> str:
        """The document's own identifier."""
        return self.change_id


class AnnouncementMetadata(_DocumentBase):
    """An announcement (``object_type: "announcement"``)."""

    object_type: Literal["announcement"] = "announcement"
    announcement_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    announcement_type: str = "general"
    status: AnnouncementStatus = AnnouncementStatus.DRAFT
    posted_at: UtcDatetime | None = None
    expires_at: UtcDatetime | None = None

    @property
    def doc_id(self) -> str:
        """The document's own identifier."""
        return self.announcement_id


Document = ChangeMetadata | AnnouncementMetadata
_MODELS: Final[dict[str, type[ChangeMetadata] | type[AnnouncementMetadata]]] = {
    DocumentKind.CHANGE: ChangeMetadata,
    DocumentKind.ANNOUNCEMENT: AnnouncementMetadata,
}
_TERMINAL_STATUSES: Final = frozenset(
    {ChangeStatus.COMPLETED, ChangeStatus.CANCELLED, AnnouncementStatus.ARCHIVED}
)
_JSON_OBJECT: Final = TypeAdapter(dict[str, Any])


class ParsedDocument(BaseModel):
    """A validated document and everything the index derives from it."""

    model_config = ConfigDict(frozen=True)

    document: Document = Field(discriminator="object_type")
    kind: DocumentKind
    doc_id: str
    status: str
    title: str
    customers: tuple[str, ...]
    index_time: datetime
    expires_at: datetime | None
    body: str


def detect_kind(key: str, body: dict[str, Any]) -> DocumentKind:
    """The kind from ``object_type``, else from the key's prefix; raise if neither tells."""
    declared = body.get("object_type")
    if declared is not None:
        try:
            return DocumentKind(declared)
        except ValueError as error:
            known = ", ".join(kind.value for kind in DocumentKind)
            raise InvalidDocumentError(
                key, f"unknown object_type {declared!r} (known: {known})", field="object_type"
            ) from error
    from_key = kind_from_key(key)
    if from_key is None:
        raise InvalidDocumentError(
            key,
            "no object_type, and the key is not under changes/ or announcements/",
            field="object_type",
        )
    return DocumentKind(from_key)


def index_time_of(document: Document, s3_last_modified: datetime) -> datetime:
    """``modified_at``, else ``created_at`` / ``posted_at``, else S3's LastModified."""
    created = document.created_at if isinstance(document, ChangeMetadata) else document.posted_at
    return document.modified_at or created or _assume_utc(s3_last_modified)


def expiry_of(document: Document, index_time: datetime, retention: timedelta) -> datetime | None:
    """When the index entry expires: terminal documents after ``retention``; an announcement's
    own ``expires_at`` wins when earlier. ``None``: never (S3 stays the source of truth)."""
    candidates: list[datetime] = []
    if document.status in _TERMINAL_STATUSES:
        candidates.append(index_time + retention)
    if isinstance(document, AnnouncementMetadata) and document.expires_at is not None:
        candidates.append(document.expires_at)
    return min(candidates, default=None)


def _holds_non_finite_number(value: object) -> bool:
    """Whether a parsed JSON value holds an infinite float anywhere (walked without recursion)."""
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, float) and not math.isfinite(current):
            return True
        if isinstance(current, dict):
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
    return False


def parse_document(
    key: str,
    raw: bytes | str,
    *,
    s3_last_modified: datetime,
    retention: timedelta = DEFAULT_RETENTION,
) -> ParsedDocument:
    """Validate the bytes of ``key`` as a document; raise :class:`InvalidDocumentError`."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        # NaN and Infinity are not JSON (RFC 8259): a body holding them would be served to
        # clients whose parsers refuse it, so the document is refused here, named.
        body = _JSON_OBJECT.validate_python(pydantic_core.from_json(text, allow_inf_nan=False))
    except UnicodeDecodeError as error:
        raise InvalidDocumentError(key, "not UTF-8 text") from error
    except ValidationError as error:
        raise InvalidDocumentError(
            key, f"not a JSON object ({first_validation_error(error).message})"
        ) from error
    except ValueError as error:  # from_json: not JSON (NaN/Infinity included)
        raise InvalidDocumentError(key, f"not a JSON object (invalid JSON: {error})") from error
    # A number too large for a double (1e999) parses as infinity, which no JSON can carry back.
    if _holds_non_finite_number(body):
        raise InvalidDocumentError(key, "not a JSON object (a number overflows a double)")

    kind = detect_kind(key, body)
    if not body.get("customers"):
        from_key = customer_from_key(key)
        if from_key is not None:
            body = {**body, "customers": [from_key]}
    try:
        document: Document = _MODELS[kind].model_validate({**body, "object_type": kind.value})
    except ValidationError as error:
        first = first_validation_error(error)
        raise InvalidDocumentError(key, first.message, field=first.field) from error

    index_time = index_time_of(document, s3_last_modified)
    return ParsedDocument(
        document=document,
        kind=kind,
        doc_id=document.doc_id,
        status=document.status.value,
        title=document.title,
        customers=tuple(document.customers),
        index_time=index_time,
        expires_at=expiry_of(document, index_time, retention),
        body=text,
    )
