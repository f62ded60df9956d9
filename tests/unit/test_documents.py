"""Documents: kind detection, customers, index time, TTL and error paths."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cachesync.documents import (
    AnnouncementMetadata,
    ChangeMetadata,
    DocumentKind,
    parse_document,
)
from cachesync.exceptions import InvalidDocumentError

EVENTS = Path(__file__).resolve().parents[2] / "events"
S3_TIME = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def change(**fields: object) -> str:
    return json.dumps({"object_type": "change", "change_id": "CHG-1", **fields})


def test_change_keeps_unknown_fields_and_normalises_customers() -> None:
    # Given a change with extra fields and messy customer codes
    body = change(customers=[" ACME ", "globex", "acme", ""], risk="low", status="approved")
    # When it is parsed
    parsed = parse_document("changes/CHG-1.json", body, s3_last_modified=S3_TIME)
    # Then the extra field is kept and customers are trimmed, lower-cased and deduplicated
    assert isinstance(parsed.document, ChangeMetadata)
    assert parsed.document.model_extra == {"risk": "low"}
    assert parsed.customers == ("acme", "globex")
    assert parsed.kind is DocumentKind.CHANGE
    assert parsed.doc_id == "CHG-1"
    assert parsed.status == "approved"


def test_sample_documents_parse() -> None:
    # Given the sample documents shipped in events/documents
    change_raw = (EVENTS / "documents" / "change.json").read_bytes()
    announcement_raw = (EVENTS / "documents" / "announcement.json").read_bytes()
    # When they are parsed
    parsed_change = parse_document("changes/CHG-1001.json", change_raw, s3_last_modified=S3_TIME)
    parsed_ann = parse_document(
        "announcements/ANN-2001.json", announcement_raw, s3_last_modified=S3_TIME
    )
    # Then each has its kind, and the raw body is kept exactly
    assert parsed_change.kind is DocumentKind.CHANGE
    assert parsed_ann.kind is DocumentKind.ANNOUNCEMENT
    assert isinstance(parsed_ann.document, AnnouncementMetadata)
    assert parsed_change.body == change_raw.decode()


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("changes/x.json", DocumentKind.CHANGE),
        ("announcements/x.json", DocumentKind.ANNOUNCEMENT),
        ("customers/acme/changes/2026/x.json", DocumentKind.CHANGE),
        ("customers/acme/announcements/x.json", DocumentKind.ANNOUNCEMENT),
    ],
)
def test_kind_comes_from_the_key_prefix_when_object_type_is_absent(
    key: str, kind: DocumentKind
) -> None:
    # Given a document without object_type but with both possible ids
    body = json.dumps({"change_id": "C", "announcement_id": "A"})
    # When it is parsed under a kind prefix
    parsed = parse_document(key, body, s3_last_modified=S3_TIME)
    # Then the prefix decides the kind
    assert parsed.kind is kind


def test_object_type_wins_over_the_key_prefix() -> None:
    # Given an announcement stored under changes/
    body = json.dumps({"object_type": "announcement", "announcement_id": "A"})
    # When it is parsed
    parsed = parse_document("changes/odd.json", body, s3_last_modified=S3_TIME)
    # Then object_type decides
    assert parsed.kind is DocumentKind.ANNOUNCEMENT


def test_customer_comes_from_the_key_when_the_document_names_none() -> None:
    # Given a document under customers/<code>/ without customers
    # When it is parsed
    parsed = parse_document("customers/Initech/changes/c.json", change(), s3_last_modified=S3_TIME)
    # Then the key's customer segment is used, normalised
    assert parsed.customers == ("initech",)


def test_document_customers_win_over_the_key_segment() -> None:
    # Given a document that names its customers, under another customer's prefix
    parsed = parse_document(
        "customers/initech/changes/c.json", change(customers=["acme"]), s3_last_modified=S3_TIME
    )
    # Then the document's own list is used
    assert parsed.customers == ("acme",)


def test_index_time_prefers_modified_then_created_then_s3() -> None:
    # Given documents with decreasing amounts of time information
    both = change(created_at="2026-01-01T00:00:00Z", modified_at="2026-01-02T00:00:00+02:00")
    created_only = change(created_at="2026-01-01T00:00:00")
    # When they are parsed
    # Then modified_at wins (converted to UTC), naive means UTC, and S3 time is the last resort
    assert parse_document("changes/a", both, s3_last_modified=S3_TIME).index_time == datetime(
        2026, 1, 1, 22, 0, tzinfo=UTC
    )
    assert parse_document(
        "changes/a", created_only, s3_last_modified=S3_TIME
    ).index_time == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_document("changes/a", change(), s3_last_modified=S3_TIME).index_time == S3_TIME


def test_announcement_index_time_falls_back_to_posted_at() -> None:
    body = json.dumps(
        {"object_type": "announcement", "announcement_id": "A", "posted_at": "2026-02-01T00:00:00Z"}
    )
    parsed = parse_document("announcements/a", body, s3_last_modified=S3_TIME)
    assert parsed.index_time == datetime(2026, 2, 1, tzinfo=UTC)


@pytest.mark.parametrize("status", ["completed", "cancelled"])
def test_terminal_changes_expire_after_the_retention(status: str) -> None:
    # Given a finished change
    body = change(status=status, modified_at="2026-03-01T00:00:00Z")
    # When it is parsed with a 10-day retention
    parsed = parse_document(
        "changes/a", body, s3_last_modified=S3_TIME, retention=timedelta(days=10)
    )
    # Then it expires 10 days after its index time
    assert parsed.expires_at == datetime(2026, 3, 11, tzinfo=UTC)


def test_open_documents_never_expire() -> None:
    parsed = parse_document("changes/a", change(status="approved"), s3_last_modified=S3_TIME)
    assert parsed.expires_at is None


def test_announcement_expires_at_wins_when_earlier_than_the_retention() -> None:
    # Given an archived announcement whose own expiry is before the retention ends
    body = json.dumps(
        {
            "object_type": "announcement",
            "announcement_id": "A",
            "status": "archived",
            "modified_at": "2026-03-01T00:00:00Z",
            "expires_at": "2026-03-05T00:00:00Z",
        }
    )
    # When it is parsed with the default retention (90 days)
    parsed = parse_document("announcements/a", body, s3_last_modified=S3_TIME)
    # Then its own expires_at is the TTL
    assert parsed.expires_at == datetime(2026, 3, 5, tzinfo=UTC)


def test_published_announcement_expires_at_its_own_expiry() -> None:
    body = json.dumps(
        {
            "object_type": "announcement",
            "announcement_id": "A",
            "expires_at": "2026-04-01T00:00:00Z",
        }
    )
    parsed = parse_document("announcements/a", body, s3_last_modified=S3_TIME)
    assert parsed.expires_at == datetime(2026, 4, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("key", "raw", "field", "reason_part"),
    [
        ("changes/a", b"not json", None, "not a JSON object"),
        ("changes/a", b"[1, 2]", None, "not a JSON object"),
        ("changes/a", b"\xff\xfe", None, "not UTF-8"),
        ("changes/a", change(status="exploded").encode(), "status", "Input should be"),
        ("changes/a", json.dumps({"object_type": "change"}).encode(), "change_id", "required"),
        ("changes/a", json.dumps({"object_type": "memo"}).encode(), "object_type", "unknown"),
        ("misc/a", json.dumps({"change_id": "x"}).encode(), "object_type", "changes/"),
        ("changes/a", change(modified_at="yesterday").encode(), "modified_at", "datetime"),
        ("changes/a", change(customers=[f"c{i}" for i in range(41)]).encode(), "customers", "40"),
        ("changes/a", b'{"object_type": "change", "risk": NaN}', None, "invalid JSON"),
        # (valid JSON syntax, but a double overflows to infinity, deep in a list)
        ("changes/a", change().replace("{", '{"risk": [[1e999]], ', 1).encode(), None, "overflow"),
    ],
)
def test_invalid_documents_raise_one_clear_error(
    key: str, raw: bytes, field: str | None, reason_part: str
) -> None:
    # Given an invalid document
    # When it is parsed
    with pytest.raises(InvalidDocumentError) as caught:
        parse_document(key, raw, s3_last_modified=S3_TIME)
    # Then the error names the key, the field and the reason
    assert caught.value.key == key
    assert caught.value.field == field
    assert reason_part in caught.value.reason
    assert key in str(caught.value)


def test_invalid_sample_document_is_refused() -> None:
    raw = (EVENTS / "documents" / "invalid_status.json").read_bytes()
    with pytest.raises(InvalidDocumentError) as caught:
        parse_document("changes/bad.json", raw, s3_last_modified=S3_TIME)
    assert caught.value.field == "status"
