"""The first validation error, located: the one message every boundary reports."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from cachesync.validation_errors import first_validation_error


class _Inner(BaseModel):
    count: int


class _Outer(BaseModel):
    name: str
    inner: _Inner


def _error(payload: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        _Outer.model_validate(payload)
    return caught.value


def test_nested_field_is_a_dotted_path() -> None:
    # Given a payload whose nested field has the wrong type
    error = _error({"name": "n", "inner": {"count": "many"}})
    # When its first error is taken
    first = first_validation_error(error)
    # Then it names the nested field and the reason, and is not a missing field
    assert first.field == "inner.count"
    assert "integer" in first.message
    assert not first.missing
    assert first.describe() == f"inner.count: {first.message}"


def test_missing_field_is_flagged_and_prefixed() -> None:
    # Given a payload without a required field, inside an enclosing document
    error = _error({"inner": {"count": 1}})
    # When its first error is taken within that document
    first = first_validation_error(error, within=("job", "userArguments"))
    # Then the path starts at the enclosing document and the error says it is missing
    assert first.field == "job.userArguments.name"
    assert first.missing


def test_error_about_the_whole_value_has_no_field() -> None:
    # Given a payload that is not an object at all
    error = _error(["not", "an", "object"])
    # When its first error is taken
    first = first_validation_error(error)
    # Then no field is named and the description is the message alone
    assert first.field is None
    assert first.describe() == first.message
