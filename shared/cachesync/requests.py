"""The payloads the application-facing functions accept, and their one parser."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cachesync.exceptions import InvalidRequestError

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
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise InvalidRequestError(first["msg"], field=field) from error
