"""The object store: reads (and later writes) of documents in S3.

All S3 I/O of cachesync happens here, through an injected boto3 client. S3 error codes become
cachesync errors in exactly one function, :func:`_translate`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from cachesync.exceptions import (
    CacheSyncError,
    ObjectChangedError,
    ObjectNotFoundError,
    ObjectRequestError,
    ObjectUnavailableError,
)
from cachesync.retry_policies import (
    DEFAULT_RETRY_POLICY,
    RetryPolicy,
    error_code,
    is_transient_aws_error,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")

_NOT_FOUND: Final = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NotFound"})
_CHANGED: Final = frozenset({"PreconditionFailed", "412"})


def unquote_etag(etag: str) -> str:
    """S3 quotes ETags in HTTP responses but not in event notifications; we store them bare."""
    return etag.strip('"')


class ListedObject(BaseModel):
    """What a listing tells about an object, without reading it."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    etag: str
    size: int
    last_modified: datetime


class StoredObject(ListedObject):
    """An object read from S3: its bytes and the version they belong to."""

    body: bytes
    version_id: str | None


class PutResult(BaseModel):
    """What S3 answered to a PutObject (it does not return the object's LastModified)."""

    model_config = ConfigDict(frozen=True)

    etag: str
    version_id: str | None


class DeleteResult(BaseModel):
    """What S3 answered to a DeleteObject."""

    model_config = ConfigDict(frozen=True)

    version_id: str | None
    deleted_at: datetime
    """S3's clock at the deletion (the response's Date header, whole seconds)."""


class ObjectHead(ListedObject):
    """An object's metadata from HeadObject."""

    version_id: str | None


class ListingPage(BaseModel):
    """One page of a listing and where the next one starts (``None``: the last page)."""

    model_config = ConfigDict(frozen=True)

    objects: list[ListedObject]
    next_token: str | None


class S3ObjectStore:
    """Documents in S3, read through an injected boto3 S3 client."""

    def __init__(
        self, client: S3Client, *, retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY
    ) -> None:
        self._client = client
        self._retry = retry_policy

    def get(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        if_match: str | None = None,
    ) -> StoredObject:
        """Read ``bucket/key``: a given version, or the current one if it still has ``if_match``.

        Raises :class:`ObjectNotFoundError` when the object (or version) is gone and
        :class:`ObjectChangedError` when it no longer has the ETag asked for.
        """
        arguments: dict[str, str] = {"Bucket": bucket, "Key": key}
        if version_id is not None:
            arguments["VersionId"] = version_id
        if if_match is not None:
            arguments["IfMatch"] = f'"{unquote_etag(if_match)}"'

        def read() -> StoredObject:
            response = self._client.get_object(**arguments)  # type: ignore[arg-type]
            body = response["Body"].read()
            return StoredObject(
                bucket=bucket,
                key=key,
                body=body,
                etag=unquote_etag(response["ETag"]),
                version_id=response.get("VersionId"),
                size=len(body),
                last_modified=response["LastModified"],
            )

        return self._call("GetObject", bucket, key, read, version_id, if_match)

    def head(self, bucket: str, key: str, *, if_match: str | None = None) -> ObjectHead:
        """The current object's metadata; raises like :meth:`get`."""
        arguments: dict[str, str] = {"Bucket": bucket, "Key": key}
        if if_match is not None:
            arguments["IfMatch"] = f'"{unquote_etag(if_match)}"'

        def head() -> ObjectHead:
            response = self._client.head_object(**arguments)  # type: ignore[arg-type]
            return ObjectHead(
                bucket=bucket,
                key=key,
                etag=unquote_etag(response["ETag"]),
                size=int(response["ContentLength"]),
                last_modified=response["LastModified"],
                version_id=response.get("VersionId"),
            )

        return self._call("HeadObject", bucket, key, head, None, if_match)

    def put(self, bucket: str, key: str, body: bytes) -> PutResult:
        """Store ``body`` as a JSON document at ``bucket/key``."""

        def put() -> PutResult:
            response = self._client.put_object(
                Bucket=bucket, Key=key, Body=body, ContentType="application/json"
            )
            return PutResult(
                etag=unquote_etag(response["ETag"]), version_id=response.get("VersionId")
            )

        return self._call("PutObject", bucket, key, put, None, None)

    def delete(self, bucket: str, key: str) -> DeleteResult:
        """Delete the current object at ``bucket/key`` (a delete marker on versioned buckets)."""

        def delete() -> DeleteResult:
            response = self._client.delete_object(Bucket=bucket, Key=key)
            headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            return DeleteResult(
                version_id=response.get("VersionId"),
                deleted_at=parsedate_to_datetime(headers["date"]),
            )

        return self._call("DeleteObject", bucket, key, delete, None, None)

    def list_page(
        self, bucket: str, prefix: str, *, token: str | None = None, page_size: int = 1000
    ) -> ListingPage:
        """One page of the objects under ``prefix``, in key order."""

        def list_objects() -> ListingPage:
            arguments: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size}
            if token:
                arguments["ContinuationToken"] = token
            response = self._client.list_objects_v2(**arguments)
            return ListingPage(
                objects=[
                    ListedObject(
                        bucket=bucket,
                        key=entry["Key"],
                        etag=unquote_etag(entry.get("ETag", "")),
                        size=int(entry.get("Size", 0)),
                        last_modified=entry["LastModified"],
                    )
                    for entry in response.get("Contents", [])
                ],
                next_token=response.get("NextContinuationToken")
                if response.get("IsTruncated")
                else None,
            )

        return self._call("ListObjectsV2", bucket, prefix, list_objects, None, None)

    def find(self, bucket: str, key: str) -> ListedObject | None:
        """The current object at exactly ``key``, from a listing (needs no read permission)."""

        def list_one() -> ListedObject | None:
            response = self._client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
            for entry in response.get("Contents", []):
                if entry.get("Key") == key:
                    return ListedObject(
                        bucket=bucket,
                        key=key,
                        etag=unquote_etag(entry.get("ETag", "")),
                        size=int(entry.get("Size", 0)),
                        last_modified=entry["LastModified"],
                    )
            return None

        return self._call("ListObjectsV2", bucket, key, list_one, None, None)

    def _call(
        self,
        operation: str,
        bucket: str,
        key: str,
        fn: Callable[[], T],
        version_id: str | None,
        if_match: str | None,
    ) -> T:
        try:
            return self._retry.call(operation, fn)
        except ClientError as error:
            raise _translate(operation, bucket, key, error, version_id, if_match) from error
        except BotoCoreError as error:
            raise ObjectUnavailableError(
                operation, bucket, key, type(error).__name__, str(error)
            ) from error


def _translate(
    operation: str,
    bucket: str,
    key: str,
    error: ClientError,
    version_id: str | None,
    if_match: str | None,
) -> CacheSyncError:
    """The one place S3 error codes become cachesync errors."""
    code = error_code(error)
    message = str(error.response.get("Error", {}).get("Message", code))
    if code in _NOT_FOUND:
        return ObjectNotFoundError(bucket, key, version_id)
    if code in _CHANGED and if_match is not None:
        return ObjectChangedError(bucket, key, if_match)
    if is_transient_aws_error(error):
        return ObjectUnavailableError(operation, bucket, key, code, message)
    return ObjectRequestError(operation, bucket, key, code, message)
