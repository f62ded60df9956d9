"""Fuzzing every parser of outside input (hypothesis): each one answers with its own named error,
never another exception.

Bounded here (``EXAMPLES`` per target); ``CACHESYNC_SOAK=1`` (``make soak``) runs ten times as
many. A crash found becomes a case of its own below.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cachesync.api.request_signing import SignatureError, SignatureVerifier
from cachesync.api.tokens import SigningSealer
from cachesync.change_feed import stream_change
from cachesync.changes import changes_from_body, changes_from_message
from cachesync.documents import parse_document
from cachesync.exceptions import InvalidDocumentError, InvalidEventError, InvalidQueryError
from cachesync.stores.page_tokens import PageTokens

EXAMPLES = 2_000 if os.environ.get("CACHESYNC_SOAK") == "1" else 200
NOW = datetime(2026, 12, 1, tzinfo=UTC)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=os.environ.get("CACHESYNC_SOAK") != "1",
    suppress_health_check=[HealthCheck.too_slow],
)

# Any JSON value, with the names the parsers look for among the random ones.
NAMES = st.sampled_from(
    [
        "Records",
        "s3",
        "object",
        "key",
        "bucket",
        "name",
        "eventName",
        "sequencer",
        "size",
        "eTag",
        "versionId",
        "eventTime",
        "Message",
        "Type",
        "detail",
        "detail-type",
        "source",
        "time",
        "dynamodb",
        "Keys",
        "NewImage",
        "OldImage",
        "SequenceNumber",
        "ApproximateCreationDateTime",
        "object_type",
        "change_id",
        "status",
        "customers",
        "title",
        "modified_at",
    ]
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(NAMES | st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=30,
)


@FUZZ
@given(body=st.one_of(JSON.map(json.dumps), st.text(max_size=200)))
def test_the_event_normaliser_takes_any_body(body: str) -> None:
    with contextlib.suppress(InvalidEventError):
        changes_from_body(body)


@FUZZ
@given(message=JSON)
def test_the_event_normaliser_takes_any_message(message: Any) -> None:
    with contextlib.suppress(InvalidEventError):
        changes_from_message(message)


@FUZZ
@given(raw=st.one_of(JSON.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200)))
def test_the_document_parser_takes_any_bytes(raw: bytes) -> None:
    with contextlib.suppress(InvalidDocumentError):
        parse_document("changes/fuzz.json", raw, s3_last_modified=NOW)


@FUZZ
@given(record=JSON)
@example(record={"dynamodb": None})  # found by this test: a member that is not an object
def test_the_stream_record_parser_takes_any_record(record: Any) -> None:
    with contextlib.suppress(InvalidEventError):
        stream_change(record if isinstance(record, dict) else {"dynamodb": record})


@FUZZ
@given(
    token=st.one_of(
        st.text(max_size=120),
        st.binary(max_size=120).map(lambda raw: base64.urlsafe_b64encode(raw).decode()),
    )
)
def test_the_page_token_decoder_takes_any_token(token: str) -> None:
    tokens = PageTokens(SigningSealer(b"s" * 32, "0123456789ab", lifetime=timedelta(hours=1)))
    with contextlib.suppress(InvalidQueryError):
        tokens.open(token, "fingerprint")


class _Nonces:
    def remember(self, _key_id: str, _nonce: str, _expires_at: int) -> bool:
        return True


@FUZZ
@given(
    path=st.text(max_size=60),
    query=st.lists(st.tuples(st.text(max_size=10), st.text(max_size=10)), max_size=4),
    headers=st.dictionaries(
        st.sampled_from(
            ["x-cachesync-timestamp", "x-cachesync-nonce", "x-cachesync-signature", "other"]
        ),
        st.text(max_size=80),
    ),
    body=st.binary(max_size=64),
)
def test_the_signature_check_takes_any_request(
    path: str, query: list[tuple[str, str]], headers: dict[str, str], body: bytes
) -> None:
    verifier = SignatureVerifier(b"m" * 32, _Nonces(), clock=NOW.timestamp)
    with contextlib.suppress(SignatureError):
        verifier.verify("0123456789ab", "GET", path, query, headers, body)
