"""The fallback reader against the local stack: each S3 read is validated once."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from cachesync import fallback_reader
from cachesync.fallback_reader import FallbackReader, MissReason, ReadSource
from cachesync.local import LocalStack
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.s3_objects import S3ObjectStore
from tests.support.s3_events import change_document


def test_a_miss_validates_the_s3_document_once_and_backfills_it(
    local_stack: LocalStack, index_store: DynamoDBIndexStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a valid document in S3 that the index does not hold
    s3 = local_stack.client("s3")
    bucket = f"read-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="changes/once.json", Body=change_document("CHG-ONCE"))
    # (the real validation, counted: nothing about what it does changes)
    real: Callable[..., Any] = fallback_reader.index_entry
    calls: list[str] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0].key)
        return real(*args, **kwargs)

    monkeypatch.setattr(fallback_reader, "index_entry", counted)
    reader = FallbackReader(index_store, S3ObjectStore(s3), bucket=bucket)
    # When it is read
    result = reader.get_document("changes/once.json")
    # Then S3 answered, the index was backfilled, and the document was validated only once
    assert (result.source, result.miss_reason, result.backfilled) == (
        ReadSource.S3,
        MissReason.ABSENT,
        True,
    )
    assert calls == ["changes/once.json"]
    assert reader.get_document("changes/once.json").source is ReadSource.INDEX
