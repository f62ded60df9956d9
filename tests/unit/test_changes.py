"""The one normaliser: every sample event becomes exactly the changes it describes.

Every ``events/*.json`` and ``events/aws-samples/*.json`` file is normalised the way the handlers
do it (an SQS event message by message with ``changes_from_body``, anything else with
``changes_from_message``) and compared field by field with a table written from the raw JSON.
A new sample without a row in the table fails the test until someone writes its expectations.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest

from cachesync.changes import ObjectChange, Operation, changes_from_body, changes_from_message
from cachesync.exceptions import InvalidEventError
from cachesync.sequencer import SEQUENCER_WIDTH

EVENTS_DIR: Final = Path(__file__).resolve().parents[2] / "events"
AWS_SAMPLES_DIR: Final = EVENTS_DIR / "aws-samples"
# Samples for the application-facing functions (write_through, fallback_read, backfill,
# query_api) are requests, not S3 events: their own tests use them.
APPLICATION_SAMPLE_PREFIXES: Final = (
    "write_through",
    "fallback_read",
    "backfill",
    "query_api",
    "change_feed",
)
S3_EVENT_SAMPLES: Final = sorted(
    p for p in EVENTS_DIR.glob("*.json") if not p.name.startswith(APPLICATION_SAMPLE_PREFIXES)
)
BUCKET: Final = "cachesync-documents"
EMPTY_ETAG: Final = "d41d8cd98f00b204e9800998ecf8427e"
"""The MD5 of no content: the ETag S3 gives delete markers."""


# ---------------------------------------------------------------------------- expectations


def at(
    year: int, month: int, day: int, hour: int, minute: int, second: int, ms: int = 0
) -> datetime:
    """A UTC instant (``ms``: milliseconds)."""
    return datetime(year, month, day, hour, minute, second, ms * 1000, tzinfo=UTC)


def padded(sequencer: str) -> str:
    """The normalised form of an upper-case sequencer: right-padded with zeros."""
    return sequencer + "0" * (SEQUENCER_WIDTH - len(sequencer))


@dataclass(frozen=True)
class Expected:
    """The fields of one :class:`ObjectChange` a test asserts."""

    key: str
    operation: Operation
    event_name: str
    event_time: datetime
    etag: str | None = None
    size: int | None = None
    version_id: str | None = None
    sequencer: str | None = None
    """Normalised."""
    bucket: str = BUCKET

    @classmethod
    def of(cls, change: ObjectChange) -> Expected:
        return cls(
            key=change.key,
            operation=change.operation,
            event_name=change.event_name,
            event_time=change.event_time,
            etag=change.etag,
            size=change.size,
            version_id=change.version_id,
            sequencer=change.sequencer,
            bucket=change.bucket,
        )


@dataclass(frozen=True)
class Invalid:
    """A message that must raise :class:`InvalidEventError` whose text matches ``match``."""

    match: str


MessageExpectation = list[Expected] | Invalid
"""What one message normalises to: for SQS one per record, otherwise one for the event."""


def created(key: str, name: str, time: datetime, etag: str, size: int, seq: str) -> Expected:
    return Expected(
        key=key,
        operation=Operation.CREATED,
        event_name=f"ObjectCreated:{name}",
        event_time=time,
        etag=etag,
        size=size,
        sequencer=padded(seq),
    )


NOT_A_NOTIFICATION: Final = Invalid("not an S3 notification, SNS envelope or S3 EventBridge event")

SAMPLES: Final[dict[str, list[MessageExpectation]]] = {
    "s3_put.json": [
        [
            created(
                "changes/CHG-1001.json",
                "Put",
                at(2026, 11, 3, 10, 15, 2, ms=318),
                "671fd455384ea75c5ac1630a76d6b71a",
                352,
                "006AE9B4264BD12F6E",
            )
        ]
    ],
    "s3_post.json": [
        [
            created(
                "announcements/ANN-2001.json",
                "Post",
                at(2026, 11, 3, 11, 2, 41, ms=907),
                "a2f802e4dbb6f7ce17842a041314b1f9",
                344,
                "006AE9BF51D83EEFCB",
            )
        ]
    ],
    "s3_copy.json": [
        [
            created(
                "changes/CHG-1002.json",
                "Copy",
                at(2026, 11, 3, 12, 30, 15, ms=44),
                "207acf08f9b56842188303b8554a4e13",
                642,
                "006AE9D3D70A7D9224",
            )
        ]
    ],
    "s3_multipart.json": [
        [
            created(
                "changes/CHG-1003.json",
                "CompleteMultipartUpload",
                at(2026, 11, 3, 13, 45, 9, ms=561),
                "152040c4fceff9d2de1166c753a92b9a-4",
                16_963_207,
                "006AE9E56585C0C50A",
            )
        ]
    ],
    "s3_put_versioned.json": [
        [
            Expected(
                key="changes/CHG-1004.json",
                operation=Operation.CREATED,
                event_name="ObjectCreated:Put",
                event_time=at(2026, 11, 4, 9, 12, 33, ms=276),
                etag="058a526bfdcd958de825d104778e6010",
                size=628,
                version_id="76yr01jP8fPLhjc9KOpPxpFVS7fyq7CR",
                sequencer=padded("006AEAF70141CDBE00"),
            )
        ]
    ],
    "s3_encoded_keys.json": [
        [
            created(
                "customers/acme/changes/CHG 2001 (draft).json",
                "Put",
                at(2026, 11, 3, 14, 20, 0, ms=137),
                "26595584b65e2626077bcdee5ba53868",
                385,
                "006AE9ED9020A9D95B",
            ),
            created(
                "changes/a+b=c.json",
                "Put",
                at(2026, 11, 3, 14, 20, 0, ms=868),
                "542d8a4fc2bd2a6a97614b1d3e5cf95c",
                333,
                "006AE9ED90CEF2909A",
            ),
            created(
                "changes/100% done.json",
                "Put",
                at(2026, 11, 3, 14, 20, 1, ms=599),
                "1ed62cb252cd62c9b1e7ac765da63f35",
                649,
                "006AE9ED918ED01582",
            ),
            created(
                "changes/café/résumé ünïcode.json",
                "Put",
                at(2026, 11, 3, 14, 20, 2, ms=330),
                "658ceb2dd70187fb6a73189b2ef11511",
                416,
                "006AE9ED924EAD9CB9",
            ),
            created(
                "customers/globex/changes/2026/11/22/CHG-3001.json",
                "Put",
                at(2026, 11, 3, 14, 20, 3, ms=61),
                "cba88206a4d61497fdd12787f9d7c93d",
                568,
                "006AE9ED930E8B2F70",
            ),
        ]
    ],
    "s3_delete.json": [
        [
            Expected(
                key="changes/CHG-1001.json",
                operation=Operation.REMOVED,
                event_name="ObjectRemoved:Delete",
                event_time=at(2026, 11, 5, 16, 40, 27, ms=733),
                sequencer=padded("006AECB17BAEC2C866"),
            )
        ]
    ],
    "s3_delete_marker.json": [
        [
            Expected(
                key="changes/CHG-1004.json",
                operation=Operation.REMOVED,
                event_name="ObjectRemoved:DeleteMarkerCreated",
                event_time=at(2026, 11, 5, 17, 5, 51, ms=120),
                etag=EMPTY_ETAG,
                version_id="Sl.KxUbkxim0Xy5oMXlyODKGbw4jeCLW",
                sequencer=padded("006AECB76F1C9C4013"),
            )
        ]
    ],
    "s3_lifecycle_expiration.json": [
        [
            Expected(
                key="changes/CHG-1005.json",
                operation=Operation.REMOVED,
                event_name="LifecycleExpiration:Delete",
                event_time=at(2026, 11, 6, 3, 17, 45, ms=602),
                sequencer=padded("006AED46D98F872B2F"),
            )
        ]
    ],
    "s3_lifecycle_delete_marker.json": [
        [
            Expected(
                key="changes/CHG-1006.json",
                operation=Operation.REMOVED,
                event_name="LifecycleExpiration:DeleteMarkerCreated",
                event_time=at(2026, 11, 6, 3, 18, 2, ms=915),
                etag=EMPTY_ETAG,
                version_id="Fy6qZNjtgXR9hsG2e3JLyQwuBw1XkpId",
                sequencer=padded("006AED46EADA2732E0"),
            )
        ]
    ],
    "s3_test_event.json": [[]],
    "sqs_s3_put.json": [
        [
            created(
                "changes/CHG-1101.json",
                "Put",
                at(2026, 11, 10, 9, 0, 1, ms=204),
                "5259ff1cc63ee7446364d0e9f7385863",
                504,
                "006AF2DD1130A33765",
            )
        ],
        [
            created(
                "changes/CHG-1102.json",
                "Put",
                at(2026, 11, 10, 9, 0, 3, ms=77),
                "3dcaeb530c905e73b42fc1907c5367fb",
                314,
                "006AF2DD13125BBCD2",
            )
        ],
        [
            created(
                "changes/CHG-1103.json",
                "Put",
                at(2026, 11, 10, 9, 0, 4, ms=950),
                "2fe69db8bd512ef66f63b88f57e9046c",
                275,
                "006AF2DD14E27F6DFE",
            )
        ],
    ],
    "sqs_s3_delete.json": [
        [
            Expected(
                key="changes/CHG-1101.json",
                operation=Operation.REMOVED,
                event_name="ObjectRemoved:Delete",
                event_time=at(2026, 11, 10, 15, 22, 48, ms=519),
                sequencer=padded("006AF336C87BBD4C56"),
            )
        ]
    ],
    "sqs_s3_test_event.json": [[]],
    "sqs_mixed_batch.json": [
        [
            created(
                "changes/CHG-1104.json",
                "Put",
                at(2026, 11, 11, 7, 45, 30, ms=77),
                "d6374443e547bb4c969decda9b4919c3",
                565,
                "006AF41D1A125BBAFB",
            )
        ],
        Invalid("message body is not JSON"),
        NOT_A_NOTIFICATION,
        [
            created(
                "changes/CHG-1105.json",
                "Put",
                at(2026, 11, 11, 7, 45, 36, ms=17),
                "00d460b2b5f81e0f1bb2c2e7e712efde",
                416,
                "006AF41D20040DA52F",
            )
        ],
    ],
    "sqs_sns_s3_put.json": [
        [
            created(
                "announcements/ANN-2101.json",
                "Put",
                at(2026, 11, 12, 10, 0, 3, ms=845),
                "08866ad1a752e9f970a1eedd95413f61",
                354,
                "006AF58E23C976C0B4",
            )
        ]
    ],
    "sqs_sns_s3_delete.json": [
        [
            Expected(
                key="announcements/ANN-2101.json",
                operation=Operation.REMOVED,
                event_name="ObjectRemoved:Delete",
                event_time=at(2026, 11, 12, 18, 31, 20, ms=466),
                sequencer=padded("006AF605F86F1A6A43"),
            )
        ]
    ],
    "eventbridge_object_created.json": [
        [
            Expected(
                key="changes/CHG-1201.json",
                operation=Operation.CREATED,
                event_name="Object Created:PutObject",
                event_time=at(2026, 11, 13, 9, 30, 0),
                etag="301a1938c8052320aa1bd67b1d206989",
                size=368,
                version_id="XpqsrXoF1rMt0h0H_MWoPgAkHuYZz2D1",
                sequencer=padded("006AF6D8987A1202E6"),
            )
        ]
    ],
    "eventbridge_object_deleted.json": [
        [
            Expected(
                key="changes/CHG-1201.json",
                operation=Operation.REMOVED,
                event_name="Object Deleted:DeleteObject",
                event_time=at(2026, 11, 13, 17, 45, 10),
                version_id="XpqsrXoF1rMt0h0H_MWoPgAkHuYZz2D1",
                sequencer=padded("006AF74CA642C1E1C3"),
            )
        ]
    ],
    "eventbridge_delete_marker.json": [
        [
            Expected(
                key="changes/CHG-1202.json",
                operation=Operation.REMOVED,
                event_name="Object Deleted:DeleteObject (Delete Marker Created)",
                event_time=at(2026, 11, 14, 8, 12, 44),
                etag=EMPTY_ETAG,
                version_id="_1OGLw1KgLX5B9fbAJVfuekHeuTmXteE",
                sequencer=padded("006AF817FCD74AC593"),
            )
        ]
    ],
    "eventbridge_lifecycle_expired.json": [
        [
            Expected(
                key="changes/CHG-1203.json",
                operation=Operation.REMOVED,
                event_name="Object Deleted:Lifecycle Expiration (Delete Marker Created)",
                event_time=at(2026, 11, 15, 2, 11, 37),
                etag=EMPTY_ETAG,
                version_id="0I4eo7ZX3_T01l3bg.QD__6aCkfYkwvc",
                sequencer=padded("006AF914D92719C50C"),
            )
        ]
    ],
}

_POWERTOOLS_BUCKET: Final = "lambda-artifacts-deafc19498e3f2df"
_POWERTOOLS_KEY: Final = "b21b84d653bb07b05b1e6b33684dc11b"
_POWERTOOLS_PUT: Final = Expected(
    bucket=_POWERTOOLS_BUCKET,
    key=_POWERTOOLS_KEY,
    operation=Operation.CREATED,
    event_name="ObjectCreated:Put",
    event_time=at(2019, 9, 3, 19, 37, 27, ms=192),
    etag="b21b84d653bb07b05b1e6b33684dc11b",
    size=1_305_107,
    sequencer=padded("0C0F6F405D6ED209E1"),
)

AWS_SAMPLES: Final[dict[str, list[MessageExpectation]]] = {
    "s3Event.json": [[_POWERTOOLS_PUT]],
    "s3EventGlacier.json": [[_POWERTOOLS_PUT]],
    "s3EventDeleteObject.json": [
        [
            Expected(
                bucket=_POWERTOOLS_BUCKET,
                key=_POWERTOOLS_KEY,
                operation=Operation.REMOVED,
                event_name="ObjectRemoved:Delete",
                event_time=at(2019, 9, 3, 19, 37, 27, ms=192),
                sequencer=padded("0C0F6F405D6ED209E1"),
            )
        ]
    ],
    "s3EventDecodedKey.json": [
        [
            Expected(
                bucket="sourcebucket",
                key="Happy Face.jpg",
                operation=Operation.CREATED,
                event_name="ObjectCreated:Put",
                event_time=at(1970, 1, 1, 0, 0, 0, ms=123),
                etag=EMPTY_ETAG,
                size=1024,
                version_id="version",
                sequencer=None,  # "Happy Sequencer" is not hexadecimal: unusable
            )
        ]
    ],
    "s3SqsEvent.json": [
        [
            Expected(
                bucket="xxx",
                key="test.pdf",
                operation=Operation.CREATED,
                event_name="ObjectCreated:Put",
                event_time=at(2023, 4, 12, 20, 43, 38, ms=21),
                etag="2e3ad1e983318bbd8e73b080e2997980",
                size=104_681,
                version_id="yd3d4HaWOT2zguDLvIQLU6ptDTwKBnQV",
                sequencer=padded("00643717F9F8B85354"),
            )
        ]
    ],
    "s3EventBridgeNotificationObjectCreatedEvent.json": [
        [
            Expected(
                bucket="example-bucket",
                key="IMG_m7fzo3.jpg",
                operation=Operation.CREATED,
                event_name="Object Created:PutObject",
                event_time=at(2023, 3, 8, 17, 50, 14),
                etag="4e68adba0abe2dc8653dc3354e14c01d",
                size=184_662,
                sequencer=padded("006408CAD69598B05E"),
            )
        ]
    ],
    "s3EventBridgeNotificationObjectDeletedEvent.json": [
        [
            Expected(
                bucket="example-bucket",
                key="IMG_m7fzo3.jpg",
                operation=Operation.REMOVED,
                event_name="Object Deleted:DeleteObject (Delete Marker Created)",
                event_time=at(2021, 11, 12, 0, 0, 0),
                sequencer=padded("006408CAD69598B05E"),
            )
        ]
    ],
    # The Powertools sample of a lifecycle expiration carries the expired object's size and
    # ETag; they are passed through as given (a removal does not use them).
    "s3EventBridgeNotificationObjectExpiredEvent.json": [
        [
            Expected(
                bucket="example-bucket",
                key="IMG_m7fzo3.jpg",
                operation=Operation.REMOVED,
                event_name="Object Deleted:Lifecycle Expiration (Delete Marker Created)",
                event_time=at(2021, 11, 12, 0, 0, 0),
                etag="4e68adba0abe2dc8653dc3354e14c01d",
                size=184_662,
                sequencer=padded("006408CAD69598B05E"),
            )
        ]
    ],
    # An SNS notification whose Message is {"message": "hello world", ...}: not from S3.
    "snsSqsEvent.json": [NOT_A_NOTIFICATION],
    # S3 Batch Operations invocations have their own handler; the notification normaliser must
    # not take them for notifications.
    "s3BatchOperationEventSchemaV1.json": [NOT_A_NOTIFICATION],
    "s3BatchOperationEventSchemaV2.json": [NOT_A_NOTIFICATION],
}


# ---------------------------------------------------------------------------- helpers


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def load_sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = load(EVENTS_DIR / name)
    return loaded


def is_sqs_event(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)
    )


def normalise(event: Any) -> list[list[ObjectChange] | InvalidEventError]:
    """Normalise ``event`` as the handlers do: per SQS message, or the whole event."""
    if is_sqs_event(event):
        outcomes: list[list[ObjectChange] | InvalidEventError] = []
        for record in event["Records"]:
            try:
                outcomes.append(changes_from_body(record["body"]))
            except InvalidEventError as error:
                outcomes.append(error)
        return outcomes
    try:
        return [changes_from_message(event)]
    except InvalidEventError as error:
        return [error]


def assert_normalises_to(event: Any, expected: list[MessageExpectation]) -> None:
    outcomes = normalise(event)
    assert len(outcomes) == len(expected), "one outcome per message"
    for index, (outcome, wanted) in enumerate(zip(outcomes, expected, strict=True)):
        if isinstance(wanted, Invalid):
            assert isinstance(outcome, InvalidEventError), f"message {index}: {outcome!r}"
            assert re.search(re.escape(wanted.match), str(outcome)), str(outcome)
            continue
        assert not isinstance(outcome, InvalidEventError), f"message {index}: {outcome}"
        assert [Expected.of(change) for change in outcome] == wanted, f"message {index}"
        for change in outcome:
            assert change.event_time.utcoffset() == timedelta(0), "event times are UTC-aware"


def s3_record(**object_fields: Any) -> dict[str, Any]:
    """The record of ``events/s3_put.json`` with ``s3.object`` fields replaced or added."""
    record: dict[str, Any] = copy.deepcopy(load_sample("s3_put.json")["Records"][0])
    record["s3"]["object"].update(object_fields)
    return record


def eventbridge_event(**object_fields: Any) -> dict[str, Any]:
    """``events/eventbridge_object_created.json`` with ``detail.object`` fields replaced."""
    event = load_sample("eventbridge_object_created.json")
    event["detail"]["object"].update(object_fields)
    return event


def sqs_body(name: str, index: int = 0) -> str:
    body: str = load_sample(name)["Records"][index]["body"]
    return body


# ---------------------------------------------------------------------------- every sample


@pytest.mark.parametrize("path", S3_EVENT_SAMPLES, ids=lambda p: p.name)
def test_every_sample_normalises_to_exactly_its_changes(path: Path) -> None:
    # Given a sample from events/ and the changes its raw JSON describes
    if path.name not in SAMPLES:
        pytest.fail(f"{path.name} is a new sample: add its expected changes to SAMPLES")
    # When it is normalised as the handlers normalise it
    # Then every message gives exactly the expected changes (or the expected error)
    assert_normalises_to(load(path), SAMPLES[path.name])


@pytest.mark.parametrize("path", sorted(AWS_SAMPLES_DIR.glob("*.json")), ids=lambda p: p.name)
def test_every_real_aws_sample_normalises_to_exactly_its_changes(path: Path) -> None:
    # Given a real AWS sample and the changes its raw JSON describes
    if path.name not in AWS_SAMPLES:
        pytest.fail(f"{path.name} is a new AWS sample: add its expectations to AWS_SAMPLES")
    # When it is normalised as the handlers normalise it
    # Then every message gives exactly the expected changes (or the expected error)
    assert_normalises_to(load(path), AWS_SAMPLES[path.name])


def test_expectation_tables_name_only_existing_samples() -> None:
    # Given the two expectation tables
    # When they are compared with the sample folders
    on_disk = {p.name for p in S3_EVENT_SAMPLES}
    aws_on_disk = {p.name for p in AWS_SAMPLES_DIR.glob("*.json")}
    # Then no row describes a sample that was renamed or removed
    assert set(SAMPLES) <= on_disk
    assert set(AWS_SAMPLES) <= aws_on_disk


# ---------------------------------------------------------------------------- keys


def test_encoded_keys_decode_to_the_documented_list() -> None:
    # Given the sample with form-encoded keys and the decoded list next to it
    decoded = load(EVENTS_DIR / "expected" / "s3_encoded_keys.decoded.json")
    # When it is normalised
    changes = changes_from_message(load_sample("s3_encoded_keys.json"))
    # Then the keys are exactly that list, in order
    assert [change.key for change in changes] == decoded


def test_keys_are_decoded_exactly_once() -> None:
    # Given a key holding a literal "%2B", which S3 encodes as "%252B"
    record = s3_record(key="changes/literal%252B+plus.json")
    # When it is normalised
    [change] = changes_from_message({"Records": [record]})
    # Then one decoding is applied, not two
    assert change.key == "changes/literal%2B plus.json"


def test_eventbridge_keys_are_taken_as_they_are() -> None:
    # Given an EventBridge event, whose keys S3 does not encode
    event = eventbridge_event(key="changes/a+b%2B c.json")
    # When it is normalised
    [change] = changes_from_message(event)
    # Then the key is unchanged
    assert change.key == "changes/a+b%2B c.json"


# ---------------------------------------------------------------------------- envelopes


def test_s3_test_event_yields_no_change_directly_and_inside_sqs() -> None:
    # Given the s3:TestEvent S3 sends when a notification configuration is saved
    direct = load_sample("s3_test_event.json")
    in_sqs = sqs_body("sqs_s3_test_event.json")
    # When it is normalised, as a direct event and as an SQS body
    # Then there is no change (and no error)
    assert changes_from_message(direct) == []
    assert changes_from_body(in_sqs) == []


def test_sns_envelope_yields_the_inner_notification_change() -> None:
    # Given an SQS body holding an SNS envelope whose Message is an S3 notification
    body = sqs_body("sqs_sns_s3_put.json")
    inner = json.loads(json.loads(body)["Message"])
    # When the body is normalised
    changes = changes_from_body(body)
    # Then it yields the change of the inner notification, once
    assert changes == changes_from_message(inner)
    assert [(c.key, c.operation) for c in changes] == [
        ("announcements/ANN-2101.json", Operation.CREATED)
    ]


def test_sns_envelope_of_a_test_event_yields_no_change() -> None:
    # Given an SNS envelope carrying the s3:TestEvent
    envelope = json.loads(sqs_body("sqs_sns_s3_put.json"))
    envelope["Message"] = sqs_body("sqs_s3_test_event.json")
    # When it is normalised
    # Then there is no change
    assert changes_from_message(envelope) == []


def test_sns_envelope_whose_message_is_not_an_s3_notification_is_invalid() -> None:
    # Given AWS's SNS-in-SQS sample, whose Message is {"message": "hello world", ...}
    body = load(AWS_SAMPLES_DIR / "snsSqsEvent.json")["Records"][0]["body"]
    # When it is normalised
    # Then it is refused, not taken for an empty notification
    with pytest.raises(InvalidEventError, match="not an S3 notification"):
        changes_from_body(body)


def test_sns_envelope_whose_message_is_not_json_is_invalid() -> None:
    # Given an SNS envelope whose Message is plain text
    envelope = json.loads(sqs_body("sqs_sns_s3_put.json"))
    envelope["Message"] = "hello"
    # When it is normalised
    # Then the error names the SNS message
    with pytest.raises(InvalidEventError, match="SNS message is not JSON") as raised:
        changes_from_message(envelope)
    assert raised.value.source == "SNS message"


def test_eventbridge_event_in_an_sqs_body_is_the_same_change_as_direct() -> None:
    # Given an EventBridge event routed by a rule to SQS
    event = load_sample("eventbridge_object_created.json")
    # When its body is normalised
    # Then it is the change of the event delivered directly
    assert changes_from_body(json.dumps(event)) == changes_from_message(event)


def test_mixed_batch_bad_bodies_are_invalid_and_good_ones_normalise() -> None:
    # Given the SQS batch of a valid put, "not json at all", {"hello": "world"}, a valid put
    bodies = [r["body"] for r in load_sample("sqs_mixed_batch.json")["Records"]]
    # When each body is normalised
    first, second = changes_from_body(bodies[0]), changes_from_body(bodies[3])
    # Then the two bad bodies raise InvalidEventError, each saying why
    with pytest.raises(InvalidEventError, match="message body is not JSON"):
        changes_from_body(bodies[1])
    with pytest.raises(InvalidEventError, match="not an S3 notification"):
        changes_from_body(bodies[2])
    # And the good ones are their puts
    assert [c.key for c in first + second] == ["changes/CHG-1104.json", "changes/CHG-1105.json"]


# ---------------------------------------------------------------------------- operations


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        (EVENTS_DIR, "s3_delete.json"),
        (EVENTS_DIR, "s3_lifecycle_expiration.json"),
        (EVENTS_DIR, "eventbridge_object_deleted.json"),
        (AWS_SAMPLES_DIR, "s3EventDeleteObject.json"),
        (AWS_SAMPLES_DIR, "s3EventBridgeNotificationObjectDeletedEvent.json"),
    ],
)
def test_deletions_have_no_etag_and_no_size(folder: Path, name: str) -> None:
    # Given a deletion event
    event = load(folder / name)
    # When it is normalised
    [change] = changes_from_message(event)
    # Then it is a removal without ETag or size
    assert change.operation is Operation.REMOVED
    assert (change.etag, change.size) == (None, None)


def test_deletions_inside_sqs_and_sns_have_no_etag_and_no_size() -> None:
    # Given deletions delivered through SQS, and through SNS then SQS
    # When they are normalised
    changes = changes_from_body(sqs_body("sqs_s3_delete.json")) + changes_from_body(
        sqs_body("sqs_sns_s3_delete.json")
    )
    # Then they are removals without ETag or size
    assert [(c.operation, c.etag, c.size) for c in changes] == [(Operation.REMOVED, None, None)] * 2


@pytest.mark.parametrize(
    ("name", "version_id"),
    [
        ("s3_delete_marker.json", "Sl.KxUbkxim0Xy5oMXlyODKGbw4jeCLW"),
        ("s3_lifecycle_delete_marker.json", "Fy6qZNjtgXR9hsG2e3JLyQwuBw1XkpId"),
        ("eventbridge_delete_marker.json", "_1OGLw1KgLX5B9fbAJVfuekHeuTmXteE"),
        ("eventbridge_lifecycle_expired.json", "0I4eo7ZX3_T01l3bg.QD__6aCkfYkwvc"),
    ],
)
def test_delete_markers_carry_the_empty_content_etag_and_their_version(
    name: str, version_id: str
) -> None:
    # Given an event for a delete marker
    # When it is normalised
    [change] = changes_from_message(load_sample(name))
    # Then it is a removal with the marker's version, the empty-content ETag and no size
    assert change.operation is Operation.REMOVED
    assert (change.etag, change.size, change.version_id) == (EMPTY_ETAG, None, version_id)


@pytest.mark.parametrize(
    "name",
    [
        "s3_lifecycle_expiration.json",
        "s3_lifecycle_delete_marker.json",
        "eventbridge_lifecycle_expired.json",
    ],
)
def test_lifecycle_expirations_are_removals(name: str) -> None:
    # Given a lifecycle expiration (LifecycleExpiration:*, or EventBridge "Lifecycle Expiration")
    # When it is normalised
    [change] = changes_from_message(load_sample(name))
    # Then it removes the object
    assert change.operation is Operation.REMOVED


@pytest.mark.parametrize(
    "event_name",
    [
        "ObjectRestore:Post",
        "ObjectRestore:Completed",
        "ObjectRestore:Delete",
        "ObjectTagging:Put",
        "ObjectTagging:Delete",
        "ObjectAcl:Put",
        "LifecycleTransition",
        "IntelligentTiering",
    ],
)
def test_s3_events_that_change_no_content_are_other(event_name: str) -> None:
    # Given an S3 notification record of a kind that does not change content
    record = s3_record()
    record["eventName"] = event_name
    # When it is normalised
    [change] = changes_from_message({"Records": [record]})
    # Then it is OTHER, still naming its object
    assert change.operation is Operation.OTHER
    assert (change.bucket, change.key, change.event_name) == (
        BUCKET,
        "changes/CHG-1001.json",
        event_name,
    )


@pytest.mark.parametrize(
    "detail_type",
    [
        "Object Restore Initiated",
        "Object Restore Completed",
        "Object Restore Expired",
        "Object Tags Added",
        "Object Tags Deleted",
        "Object ACL Updated",
        "Object Storage Class Changed",
        "Object Access Tier Changed",
    ],
)
def test_eventbridge_events_that_change_no_content_are_other(detail_type: str) -> None:
    # Given an S3 EventBridge event of a kind that does not change content
    event = eventbridge_event()
    event["detail-type"] = detail_type
    # When it is normalised
    [change] = changes_from_message(event)
    # Then it is OTHER
    assert change.operation is Operation.OTHER
    assert change.key == "changes/CHG-1201.json"


@pytest.mark.parametrize("event_version", ["2.0", "2.1", "2.2", "2.3", "2.5"])
def test_any_2x_event_version_is_accepted(event_version: str) -> None:
    # Given a record with another 2.x eventVersion
    record = s3_record()
    record["eventVersion"] = event_version
    # When it is normalised
    [change] = changes_from_message({"Records": [record]})
    # Then it is the same put
    assert (change.key, change.operation) == ("changes/CHG-1001.json", Operation.CREATED)


# ---------------------------------------------------------------------------- sequencers


def test_unusable_sequencer_is_dropped_but_kept_raw() -> None:
    # Given AWS's decoded-key sample, whose sequencer is "Happy Sequencer"
    event = load(AWS_SAMPLES_DIR / "s3EventDecodedKey.json")
    # When it is normalised
    [change] = changes_from_message(event)
    # Then the change has no sequencer, and the raw value is kept for the logs
    assert change.sequencer is None
    assert change.raw_sequencer == "Happy Sequencer"


def test_absent_sequencer_is_none() -> None:
    # Given a record without sequencer (as moto sends them)
    record = s3_record()
    del record["s3"]["object"]["sequencer"]
    # When it is normalised
    [change] = changes_from_message({"Records": [record]})
    # Then the change has no sequencer
    assert (change.sequencer, change.raw_sequencer) == (None, None)


def test_lower_case_sequencer_is_upper_cased_and_padded() -> None:
    # Given the lower-case, 16-digit sequencer of AWS's EventBridge documentation example
    event = eventbridge_event(sequencer="617f08299329d189")
    # When it is normalised
    [change] = changes_from_message(event)
    # Then it is upper-cased and right-padded to the stored width
    assert change.sequencer == "617F08299329D189" + "0" * (SEQUENCER_WIDTH - 16)
    assert change.raw_sequencer == "617f08299329d189"


# ---------------------------------------------------------------------------- malformed


def _without_key(record: dict[str, Any]) -> None:
    del record["s3"]["object"]["key"]


def _without_bucket(record: dict[str, Any]) -> None:
    del record["s3"]["bucket"]


def _without_event_time(record: dict[str, Any]) -> None:
    del record["eventTime"]


def _unparsable_event_time(record: dict[str, Any]) -> None:
    record["eventTime"] = "yesterday"


def _from_sns(record: dict[str, Any]) -> None:
    record["eventSource"] = "aws:sns"


def _without_event_source(record: dict[str, Any]) -> None:
    del record["eventSource"]


def _invalid_utf8_escape(record: dict[str, Any]) -> None:
    record["s3"]["object"]["key"] = "changes/caf%C3.json"


def _empty_key(record: dict[str, Any]) -> None:
    record["s3"]["object"]["key"] = ""


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_without_key, "S3 event record lacks 'key'"),
        (_without_bucket, "S3 event record lacks 'bucket'"),
        (_without_event_time, "S3 event record lacks 'eventTime'"),
        (_unparsable_event_time, "S3 event record is malformed: event_time"),
        (_from_sns, "a record is not an S3 event record (eventSource aws:s3)"),
        (_without_event_source, "a record is not an S3 event record (eventSource aws:s3)"),
        (_invalid_utf8_escape, "'changes/caf%C3.json': percent escapes are not valid UTF-8"),
        (_empty_key, "empty key"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else None,
)
def test_malformed_s3_records_are_invalid_with_a_helpful_message(
    mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    # Given an S3 notification whose record is broken in one way
    record = s3_record()
    mutate(record)
    # When it is normalised
    # Then InvalidEventError says what is wrong
    with pytest.raises(InvalidEventError, match=re.escape(message)):
        changes_from_message({"Records": [record]})


@pytest.mark.parametrize("record", ["a string", 42, None, ["list"]])
def test_a_record_that_is_not_an_object_is_invalid(record: Any) -> None:
    # Given a notification whose record is not a JSON object
    # When it is normalised
    # Then it is refused as not an S3 event record
    with pytest.raises(InvalidEventError, match="not an S3 event record"):
        changes_from_message({"Records": [record]})


def test_one_bad_record_fails_its_whole_notification() -> None:
    # Given the five-record notification with its third key made undecodable
    event = load_sample("s3_encoded_keys.json")
    event["Records"][2]["s3"]["object"]["key"] = "%C3"
    # When it is normalised
    # Then the notification is refused (its message is retried whole)
    with pytest.raises(InvalidEventError, match="not valid UTF-8"):
        changes_from_message(event)


def test_eventbridge_event_without_object_key_is_invalid() -> None:
    # Given an S3 EventBridge event whose detail.object has no key
    event = load_sample("eventbridge_object_created.json")
    del event["detail"]["object"]["key"]
    # When it is normalised
    # Then the error names the missing field
    with pytest.raises(InvalidEventError, match="S3 EventBridge event lacks 'key'"):
        changes_from_message(event)


def test_eventbridge_event_without_time_is_invalid() -> None:
    # Given an S3 EventBridge event without its time
    event = load_sample("eventbridge_object_created.json")
    del event["time"]
    # When it is normalised
    # Then the error names the missing field
    with pytest.raises(InvalidEventError, match="S3 EventBridge event lacks 'time'"):
        changes_from_message(event)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ([], "expected a JSON object, got list"),
        ("text", "expected a JSON object, got str"),
        ({"hello": "world"}, "not an S3 notification, SNS envelope or S3 EventBridge event"),
        ({"Records": "not a list"}, "not an S3 notification"),
    ],
)
def test_messages_of_no_known_shape_are_invalid(message: Any, error: str) -> None:
    # Given a decoded message of no known shape
    # When it is normalised
    # Then it is refused, saying so
    with pytest.raises(InvalidEventError, match=re.escape(error)):
        changes_from_message(message)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("not json at all", "message body is not JSON"),
        ("", "message body is not JSON"),
        ({"Records": []}, "message body is not a string"),
        (None, "message body is not a string"),
    ],
)
def test_bodies_that_are_not_json_text_are_invalid(body: Any, error: str) -> None:
    # Given an SQS body that is not JSON text
    # When it is normalised
    # Then it is refused, saying so
    with pytest.raises(InvalidEventError, match=re.escape(error)):
        changes_from_body(body)


@pytest.mark.parametrize(("field", "value"), [("key", 123), ("sequencer", 5)])
def test_wrong_typed_object_fields_are_invalid(field: str, value: object) -> None:
    # Given an S3 record whose object field has the wrong type
    record = json.loads((EVENTS_DIR / "s3_put.json").read_text())["Records"][0]
    record["s3"]["object"][field] = value
    # When it is normalised
    # Then it is one clear invalid-event error, not a crash
    with pytest.raises(InvalidEventError, match="wrong type"):
        changes_from_message({"Records": [record]})
