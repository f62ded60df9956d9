"""One normaliser: every shape an S3 change reaches us in becomes :class:`ObjectChange`.

Shapes accepted (all documented AWS formats):

* an S3 event notification ``{"Records": [{"eventSource": "aws:s3", ...}]}`` (direct to Lambda,
  or as the body of an SQS message);
* an SNS envelope whose ``Message`` is such a notification (S3 -> SNS -> SQS fan-out);
* an EventBridge event from S3 (``source: aws.s3``, ``Object Created`` / ``Object Deleted``),
  direct or as an SQS message body;
* the ``s3:TestEvent`` S3 sends when a notification configuration is saved: no changes.

Keys in S3 notifications are form-encoded and decoded here, exactly once; EventBridge keys are
not encoded. Sequencers are normalised (``sequencer.py``); one that cannot be ordered is dropped
and the change is treated as one without a sequencer.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError

from cachesync.exceptions import CacheSyncError, InvalidEventError
from cachesync.s3_keys import decode_event_key, validate_key
from cachesync.sequencer import normalise_sequencer
from cachesync.validation_errors import first_validation_error


class Operation(StrEnum):
    """What happened to the object."""

    CREATED = "created"
    REMOVED = "removed"
    OTHER = "other"
    """A notification that does not change content (restore, tagging, ACL, transition)."""


_CREATED_PREFIXES: Final = ("ObjectCreated:",)
_REMOVED_PREFIXES: Final = ("ObjectRemoved:", "LifecycleExpiration:")
_EVENTBRIDGE_OPERATIONS: Final = {
    "Object Created": Operation.CREATED,
    "Object Deleted": Operation.REMOVED,
}


class ObjectChange(BaseModel):
    """One change to one S3 object, whatever shape announced it."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    """Decoded key."""
    operation: Operation
    event_name: str
    event_time: datetime
    etag: str | None = None
    size: int | None = None
    version_id: str | None = None
    sequencer: str | None = None
    """Normalised sequencer; ``None`` when absent or not a usable hexadecimal value."""
    raw_sequencer: str | None = None


def changes_from_message(message: Any) -> list[ObjectChange]:
    """The changes in one decoded message (an S3 notification, SNS envelope or EventBridge event).

    Raises :class:`InvalidEventError` for anything that is none of those.
    """
    if not isinstance(message, dict):
        raise InvalidEventError(f"expected a JSON object, got {type(message).__name__}")
    if message.get("Event") == "s3:TestEvent":
        return []
    if message.get("Type") == "Notification" and "Message" in message:
        return changes_from_body(message["Message"], source="SNS message")
    if message.get("source") == "aws.s3" and "detail-type" in message:
        return [_from_eventbridge(message)]
    records = message.get("Records")
    if isinstance(records, list):
        return [_from_s3_record(record) for record in records]
    raise InvalidEventError("not an S3 notification, SNS envelope or S3 EventBridge event")


def changes_per_record(message: Any) -> list[list[ObjectChange] | InvalidEventError]:
    """The changes in one decoded message, a notification's records one by one.

    As :func:`changes_from_message`, except that each record of an S3 notification comes back
    in its place as its changes or as the :class:`InvalidEventError` that makes it unreadable:
    one malformed record does not hide the others. Any other shape comes back whole (a list of
    one item), or raises as :func:`changes_from_message` does.
    """
    records = message.get("Records") if isinstance(message, dict) else None
    if (
        not isinstance(records, list)
        or message.get("Event") == "s3:TestEvent"
        or (message.get("Type") == "Notification" and "Message" in message)
        or (message.get("source") == "aws.s3" and "detail-type" in message)
    ):
        return [changes_from_message(message)]
    parsed: list[list[ObjectChange] | InvalidEventError] = []
    for record in records:
        try:
            parsed.append([_from_s3_record(record)])
        except InvalidEventError as error:
            parsed.append(error)
    return parsed


def changes_from_body(body: Any, *, source: str = "message body") -> list[ObjectChange]:
    """The changes in a JSON text (an SQS message body or an SNS ``Message``)."""
    if not isinstance(body, str):
        raise InvalidEventError(f"{source} is not a string", source=source)
    try:
        decoded = json.loads(body)
    except json.JSONDecodeError as error:
        raise InvalidEventError(f"{source} is not JSON ({error.msg})", source=source) from error
    return changes_from_message(decoded)


def _operation_of(event_name: str) -> Operation:
    if event_name.startswith(_CREATED_PREFIXES):
        return Operation.CREATED
    if event_name.startswith(_REMOVED_PREFIXES):
        return Operation.REMOVED
    return Operation.OTHER


def _from_s3_record(record: Any) -> ObjectChange:
    if not isinstance(record, dict) or record.get("eventSource") != "aws:s3":
        raise InvalidEventError("a record is not an S3 event record (eventSource aws:s3)")
    try:
        s3 = record["s3"]
        obj = s3["object"]
        raw_sequencer = obj.get("sequencer")
        return ObjectChange(
            bucket=s3["bucket"]["name"],
            key=decode_event_key(obj["key"]),
            operation=_operation_of(record["eventName"]),
            event_name=record["eventName"],
            event_time=record["eventTime"],
            etag=obj.get("eTag") or None,
            size=obj.get("size"),
            version_id=obj.get("versionId") or None,
            sequencer=normalise_sequencer(raw_sequencer),
            raw_sequencer=raw_sequencer,
        )
    except (KeyError, TypeError, AttributeError, ValidationError, CacheSyncError) as error:
        raise _malformed("S3 event record", error) from error


def _from_eventbridge(event: dict[str, Any]) -> ObjectChange:
    detail_type = str(event["detail-type"])
    try:
        detail = event["detail"]
        obj = detail["object"]
        raw_sequencer = obj.get("sequencer")
        event_name = f"{detail_type}:{detail.get('reason', '')}"
        if detail.get("deletion-type") == "Delete Marker Created":
            # The sync tells a delete marker (the key is gone) from the permanent deletion of one
            # version by the event's name, as "ObjectRemoved:DeleteMarkerCreated" says it.
            event_name += " (Delete Marker Created)"
        return ObjectChange(
            bucket=detail["bucket"]["name"],
            key=validate_key(obj["key"]),
            operation=_EVENTBRIDGE_OPERATIONS.get(detail_type, Operation.OTHER),
            event_name=event_name,
            event_time=event["time"],
            etag=obj.get("etag") or None,
            size=obj.get("size"),
            version_id=obj.get("version-id") or None,
            sequencer=normalise_sequencer(raw_sequencer),
            raw_sequencer=raw_sequencer,
        )
    except (KeyError, TypeError, AttributeError, ValidationError, CacheSyncError) as error:
        raise _malformed("S3 EventBridge event", error) from error


def _malformed(what: str, error: Exception) -> InvalidEventError:
    """One clear error for a record that does not have the documented shape."""
    if isinstance(error, KeyError):
        return InvalidEventError(f"{what} lacks {error}")
    if isinstance(error, TypeError | AttributeError):
        return InvalidEventError(f"{what} has a field of the wrong type ({error})")
    if isinstance(error, ValidationError):
        return InvalidEventError(f"{what} is malformed: {first_validation_error(error).describe()}")
    return InvalidEventError(f"{what}: {error}")
