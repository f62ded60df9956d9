"""Build S3 events for tests from the samples in ``events/``, changing only what a test needs.

The shapes (field names, nesting, encodings) come from the samples, which follow AWS's formats;
tests substitute bucket, key, ETag, size, version and sequencer of real objects.
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote_plus

EVENTS_DIR: Final = Path(__file__).resolve().parents[2] / "events"


def load_event(name: str) -> dict[str, Any]:
    """A sample from ``events/`` by file name."""
    loaded: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
    return loaded


def s3_record(
    event_name: str,
    bucket: str,
    key: str,
    *,
    etag: str | None = None,
    size: int | None = None,
    sequencer: str | None = None,
    version_id: str | None = None,
    event_time: datetime | None = None,
) -> dict[str, Any]:
    """One S3 notification record (from ``events/s3_put.json``), key form-encoded as S3 does."""
    record = copy.deepcopy(load_event("s3_put.json")["Records"][0])
    record["eventName"] = event_name
    record["eventTime"] = (event_time or datetime.now(UTC)).isoformat(timespec="milliseconds")
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/")}
    if size is not None:
        obj["size"] = size
    if etag is not None:
        obj["eTag"] = etag
    if version_id is not None:
        obj["versionId"] = version_id
    if sequencer is not None:
        obj["sequencer"] = sequencer
    record["s3"]["object"] = obj
    return record


def s3_notification(*records: dict[str, Any]) -> dict[str, Any]:
    """A direct S3 notification event holding ``records``."""
    return {"Records": list(records)}


def sqs_event(
    *bodies: str | dict[str, Any], queue: str = "cachesync-object-created"
) -> dict[str, Any]:
    """An SQS event (from ``events/sqs_s3_put.json``) with one message per body."""
    template = load_event("sqs_s3_put.json")["Records"][0]
    records = []
    for body in bodies:
        record = copy.deepcopy(template)
        record["messageId"] = str(uuid.uuid4())
        record["body"] = body if isinstance(body, str) else json.dumps(body)
        record["eventSourceARN"] = f"arn:aws:sqs:us-east-1:123456789012:{queue}"
        records.append(record)
    return {"Records": records}


def sns_envelope(notification: dict[str, Any]) -> dict[str, Any]:
    """An SNS notification (from ``events/sqs_sns_s3_put.json``) carrying ``notification``."""
    envelope: dict[str, Any] = json.loads(load_event("sqs_sns_s3_put.json")["Records"][0]["body"])
    envelope["Message"] = json.dumps(notification)
    return envelope


def eventbridge_event(
    detail_type: str,
    bucket: str,
    key: str,
    *,
    etag: str | None = None,
    size: int | None = None,
    sequencer: str | None = None,
    version_id: str | None = None,
) -> dict[str, Any]:
    """An S3 EventBridge event (from ``events/eventbridge_object_created.json``)."""
    event = load_event("eventbridge_object_created.json")
    event["detail-type"] = detail_type
    event["time"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event["detail"]["bucket"]["name"] = bucket
    obj: dict[str, Any] = {"key": key}
    for name, value in (
        ("etag", etag),
        ("size", size),
        ("sequencer", sequencer),
        ("version-id", version_id),
    ):
        if value is not None:
            obj[name] = value
    event["detail"]["object"] = obj
    return event


def change_document(change_id: str, **fields: Any) -> bytes:
    """A valid change document."""
    body = {
        "object_type": "change",
        "change_id": change_id,
        "title": f"change {change_id}",
        "customers": ["acme"],
        "status": "approved",
        "modified_at": datetime.now(UTC).isoformat(),
        **fields,
    }
    return json.dumps(body).encode()
