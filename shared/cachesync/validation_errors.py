"""The one way cachesync reports a pydantic ``ValidationError``: its first error, located.

Every boundary (documents, requests, events, settings, Batch Operations arguments) turns a
validation failure into a domain error naming one field and one reason: the first error is the
one a person fixes first, and a message listing all of them is harder to act on.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError


@dataclass(frozen=True)
class FieldError:
    """The first error of a validation: where (a dotted path, ``None`` at the top) and why."""

    field: str | None
    message: str
    missing: bool
    """The field was required and absent (callers word that case themselves)."""

    def describe(self) -> str:
        """``field: message``, or the message alone when the error is not about one field."""
        return f"{self.field}: {self.message}" if self.field else self.message


def first_validation_error(error: ValidationError, *, within: tuple[str, ...] = ()) -> FieldError:
    """The first error of ``error``, its location prefixed by ``within`` (an enclosing path)."""
    first = error.errors()[0]
    path = ".".join((*within, *(str(part) for part in first["loc"])))
    return FieldError(
        field=path or None, message=str(first["msg"]), missing=first["type"] == "missing"
    )
