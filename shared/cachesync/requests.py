"""The payloads the application-facing functions accept, and their one parser."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cachesync.documents import DocumentKind
from cachesync.exceptions import InvalidRequestError
from cachesync.validation_errors import first_validation_error

R = TypeVar("R", bound=BaseModel)


class WriteRequest(BaseModel):
    """``write_through``'s payload: put a document, or delete one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    operation: Literal["put", "delete"]
    key: str = Field(min_length=1)
    document: dict[str, Any] | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=256)
    dry_run: bool = False


class ReadRequest(BaseModel):
    """``fallback_read``'s payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1)
    consistent: bool = False


def parse_request(model: type[R], payload: Any) -> R:
    """Validate ``payload`` as ``model``; raise :class:`InvalidRequestError` naming the field."""
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        first = first_validation_error(error)
        raise InvalidRequestError(first.message, field=first.field) from error


class BackfillRequest(BaseModel):
    """``backfill``'s payload (from the console, a scheduler or itself): which objects to index.

    A long backfill spans invocations: each returns a ``continuation`` to pass back in the same
    request, or passes it to itself when ``self_invoke`` is set.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefixes: list[str] = Field(default_factory=lambda: [""], min_length=1)
    since: datetime | None = None
    """Earliest document index time; a time without an offset is UTC."""
    until: datetime | None = None
    customer: str | None = Field(default=None, min_length=1)
    type: DocumentKind | None = None
    dry_run: bool = False
    continuation: str | None = Field(default=None, min_length=1)
    """The ``continuation`` a previous invocation of the same request returned."""
    self_invoke: bool = False
    """Invoke the function again (asynchronously) with the continuation until done."""

    @field_validator("since", "until")
    @classmethod
    def _utc_unless_said(cls, moment: datetime | None) -> datetime | None:
        # S3 listing times carry an offset: a naive bound could not be compared with them.
        if moment is None or moment.tzinfo is not None:
            return moment
        return moment.replace(tzinfo=UTC)

    @model_validator(mode="after")
    def _window_is_ordered(self) -> BackfillRequest:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError(f"since ({self.since}) is after until ({self.until})")
        return self
