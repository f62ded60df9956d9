"""The API key store: create, read, list and revoke API keys in their DynamoDB table.

Layout: ``api_keys_schema.py``. DynamoDB error codes become cachesync errors in exactly one
function, :func:`_translate`. The store sees hashes only: secrets never reach it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from cachesync.api.keys import ApiKeyRecord, Scope
from cachesync.api_keys_schema import REVOKED_KEY_RETENTION, KeyAttr
from cachesync.exceptions import (
    ApiKeyNotFoundError,
    CacheSyncError,
    IndexRequestError,
    IndexUnavailableError,
)
from cachesync.ordering import format_time, parse_time
from cachesync.retry_policies import DEFAULT_RETRY_POLICY, RetryPolicy, error_code
from cachesync.retry_policies import is_transient_aws_error as _is_transient
from cachesync.stores.index_items import deserialize, serialize

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

T = TypeVar("T")


class _KeyExistsError(CacheSyncError):
    """Internal: a write's condition failed (a create met an existing key id, or a revocation
    found the key gone or already revoked)."""


class DynamoDBApiKeyStore:
    """API keys in one DynamoDB table, through an injected boto3 client."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
    ) -> None:
        self._client = client
        self._table = table_name
        self._retry = retry_policy

    @property
    def table_name(self) -> str:
        """The DynamoDB table this store reads and writes."""
        return self._table

    def create(self, record: ApiKeyRecord) -> bool:
        """Store a new key; ``False`` if its key id is taken (draw another and retry)."""
        try:
            self._call(
                "PutItem",
                lambda: self._client.put_item(
                    TableName=self._table,
                    Item=serialize(_item(record)),
                    # A new key never replaces another key's record.
                    ConditionExpression="attribute_not_exists(#id)",
                    ExpressionAttributeNames={"#id": KeyAttr.KEY_ID},
                ),
            )
        except _KeyExistsError:
            return False
        return True

    def get(self, key_id: str) -> ApiKeyRecord | None:
        """The record of ``key_id``, or ``None``. Read consistently: a revocation counts at once."""
        response = self._call(
            "GetItem",
            lambda: self._client.get_item(
                TableName=self._table,
                Key=serialize({KeyAttr.KEY_ID: key_id}),
                ConsistentRead=True,
            ),
        )
        raw = response.get("Item")
        return _record(deserialize(raw)) if raw else None

    def list(self) -> Iterator[ApiKeyRecord]:
        """Every key, revoked ones included (a scan: the table holds few items)."""
        start: dict[str, Any] | None = None
        while True:
            request: dict[str, Any] = {"TableName": self._table}
            if start:
                request["ExclusiveStartKey"] = start
            response = self._call("Scan", lambda r=request: self._client.scan(**r))  # type: ignore[misc]
            for raw in response.get("Items", []):
                yield _record(deserialize(raw))
            start = response.get("LastEvaluatedKey")
            if not start:
                return

    def revoke(self, key_id: str, now: datetime) -> None:
        """Mark ``key_id`` revoked from ``now`` on; :class:`ApiKeyNotFoundError` if unknown.

        Revoking a revoked key keeps its first revocation time.
        """
        record = self.get(key_id)
        if record is None:
            raise ApiKeyNotFoundError(key_id)
        if record.revoked_at is not None:
            return
        item = {
            **_item(record),
            KeyAttr.REVOKED_AT: format_time(now),
            KeyAttr.EXPIRES_AT: int((now + REVOKED_KEY_RETENTION).timestamp()),
        }
        try:
            self._call(
                "PutItem",
                lambda: self._client.put_item(
                    TableName=self._table,
                    Item=serialize(item),
                    # The key still exists (a put would otherwise recreate a deleted key), and
                    # was not revoked meanwhile (the first revocation time stays).
                    ConditionExpression="attribute_exists(#id) AND attribute_not_exists(#revoked)",
                    ExpressionAttributeNames={
                        "#id": KeyAttr.KEY_ID,
                        "#revoked": KeyAttr.REVOKED_AT,
                    },
                ),
            )
        except _KeyExistsError as error:
            if self.get(key_id) is None:
                raise ApiKeyNotFoundError(key_id) from error

    def rotate(self, before: ApiKeyRecord, after: ApiKeyRecord) -> bool:
        """Store ``after`` (a rotation of ``before``); ``False`` if the key changed meanwhile
        (rotated or revoked by someone else: read it again and decide)."""
        item = _item(after)
        try:
            self._call(
                "PutItem",
                lambda: self._client.put_item(
                    TableName=self._table,
                    Item=serialize(item),
                    ConditionExpression=(
                        # The key still exists: a put would otherwise recreate a deleted key.
                        "attribute_exists(#id)"
                        # It was not revoked meanwhile: a rotation never revives a revoked key.
                        " AND attribute_not_exists(#revoked)"
                        # Its secret is still the one rotated from: two rotations at once
                        # cannot both win, nor one undo the other.
                        " AND #hash = :hash"
                    ),
                    ExpressionAttributeNames={
                        "#id": KeyAttr.KEY_ID,
                        "#revoked": KeyAttr.REVOKED_AT,
                        "#hash": KeyAttr.SECRET_HASH,
                    },
                    ExpressionAttributeValues=serialize({":hash": before.secret_hash}),
                ),
            )
        except _KeyExistsError:
            return False
        return True

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        try:
            return self._retry.call(operation, fn)
        except ClientError as error:
            raise _translate(operation, error, self._table) from error
        except BotoCoreError as error:
            raise IndexUnavailableError(
                operation, type(error).__name__, f"API keys table {self._table}: {error}"
            ) from error


def _item(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        KeyAttr.KEY_ID: record.key_id,
        KeyAttr.NAME: record.name,
        KeyAttr.SALT: record.salt,
        KeyAttr.SECRET_HASH: record.secret_hash,
        KeyAttr.CUSTOMERS: list(record.customers),
        KeyAttr.SCOPES: [scope.value for scope in record.scopes],
        KeyAttr.CREATED_AT: format_time(record.created_at),
        **(
            {
                KeyAttr.ROTATED_AT: format_time(record.rotated_at),
                KeyAttr.PREVIOUS_SALT: record.previous_salt,
                KeyAttr.PREVIOUS_SECRET_HASH: record.previous_secret_hash,
                KeyAttr.PREVIOUS_VALID_UNTIL: format_time(record.previous_valid_until),
            }
            if record.rotated_at and record.previous_valid_until
            else {}
        ),
        # Written only when set: older items (and keys without options) keep their layout.
        **({KeyAttr.ALLOWED_CIDRS: list(record.allowed_cidrs)} if record.allowed_cidrs else {}),
        **({KeyAttr.REQUIRES_SIGNING: True} if record.requires_signing else {}),
        **(
            {KeyAttr.RATE_PER_MINUTE: record.rate_per_minute}
            if record.rate_per_minute is not None
            else {}
        ),
        **({KeyAttr.RATE_BURST: record.rate_burst} if record.rate_burst is not None else {}),
    }


def _record(item: dict[str, Any]) -> ApiKeyRecord:
    revoked = item.get(KeyAttr.REVOKED_AT)
    return ApiKeyRecord(
        key_id=str(item[KeyAttr.KEY_ID]),
        name=str(item[KeyAttr.NAME]),
        salt=str(item[KeyAttr.SALT]),
        secret_hash=str(item[KeyAttr.SECRET_HASH]),
        customers=tuple(str(code) for code in item[KeyAttr.CUSTOMERS]),
        scopes=tuple(Scope(str(scope)) for scope in item[KeyAttr.SCOPES]),
        created_at=parse_time(str(item[KeyAttr.CREATED_AT])),
        revoked_at=parse_time(str(revoked)) if revoked else None,
        rotated_at=_time_or_none(item.get(KeyAttr.ROTATED_AT)),
        previous_salt=item.get(KeyAttr.PREVIOUS_SALT),
        previous_secret_hash=item.get(KeyAttr.PREVIOUS_SECRET_HASH),
        previous_valid_until=_time_or_none(item.get(KeyAttr.PREVIOUS_VALID_UNTIL)),
        allowed_cidrs=tuple(str(cidr) for cidr in item.get(KeyAttr.ALLOWED_CIDRS) or ()),
        requires_signing=bool(item.get(KeyAttr.REQUIRES_SIGNING, False)),
        rate_per_minute=_int_or_none(item.get(KeyAttr.RATE_PER_MINUTE)),
        rate_burst=_int_or_none(item.get(KeyAttr.RATE_BURST)),
    )


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None else None


def _time_or_none(value: Any) -> datetime | None:
    return parse_time(str(value)) if value else None


def _translate(operation: str, error: ClientError, table: str) -> CacheSyncError:
    """The one place DynamoDB error codes of the keys table become cachesync errors."""
    code = error_code(error)
    # Named: the errors say "index", and a missing keys table is the likely cause here.
    message = f"API keys table {table}: {error.response.get('Error', {}).get('Message', error)}"
    if code == "ConditionalCheckFailedException":
        return _KeyExistsError(message)
    if _is_transient(error):
        return IndexUnavailableError(operation, code, message)
    return IndexRequestError(operation, code, message)
