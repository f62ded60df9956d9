"""Index items: domain models to DynamoDB items and back, without a server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cachesync.documents import parse_document
from cachesync.exceptions import ItemTooLargeError
from cachesync.index_models import IndexEntry, ObjectVersion, Tombstone, WriteSource
from cachesync.index_schema import (
    CUSTOMER_TIME_INDEX,
    PARTITION_KEY,
    SORT_KEY,
    STATUS_TIME_INDEX,
    TIME_RANGE_INDEX,
    Attr,
    RecordType,
)
from cachesync.ordering import format_time
from cachesync.sequencer import normalise_sequencer
from cachesync.stores.index_items import (
    EPOCH,
    MAX_ITEM_BYTES,
    deserialize,
    document_from_item,
    document_items,
    document_key,
    is_live_document,
    item_size,
    linked_customers,
    links_to_remove,
    pending_claim,
    pending_item,
    primary_customer,
    serialize,
    state_from_item,
    summary_from_item,
    tombstone_item,
    with_revision,
)

NOW = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
MODIFIED = datetime(2026, 11, 19, 8, 0, tzinfo=UTC)


def entry(customers: list[str], *, body_extra: dict[str, object] | None = None) -> IndexEntry:
    raw = json.dumps(
        {
            "object_type": "change",
            "change_id": "CHG-1",
            "status": "approved",
            "title": "Upgrade",
            "customers": customers,
            "modified_at": MODIFIED.isoformat(),
            **(body_extra or {}),
        }
    )
    version = ObjectVersion(
        bucket="docs",
        key="changes/a.json",
        etag="e1",
        size=len(raw),
        last_modified=MODIFIED,
        sequencer=normalise_sequencer("0A"),
    )
    document = parse_document("changes/a.json", raw, s3_last_modified=MODIFIED)
    return IndexEntry(version=version, document=document, source=WriteSource.EVENT)


def test_a_document_item_is_in_all_three_indexes_under_its_primary_customer() -> None:
    # Given a document naming two customers
    # When it becomes items
    items = document_items(entry(["globex", "acme"]), NOW)
    # Then the document item carries the time, status and primary (smallest) customer GSI keys
    item = items.document
    assert item[PARTITION_KEY] == "docs/changes/a.json"
    assert item[SORT_KEY] == "doc"
    assert item[Attr.RECORD_TYPE] == RecordType.DOCUMENT
    assert item[TIME_RANGE_INDEX.partition_key] == "2026-11"
    assert item[STATUS_TIME_INDEX.partition_key] == "approved#2026-11"
    assert item[CUSTOMER_TIME_INDEX.partition_key] == "acme#2026"
    assert item[Attr.CUSTOMERS_KEY] == "acme\nglobex"
    assert item[Attr.UPDATED_AT] == format_time(NOW)
    # And the other customer gets one link item in the same partition, in CustomerTimeIndex only
    (link,) = items.links
    assert link[PARTITION_KEY] == item[PARTITION_KEY]
    assert link[SORT_KEY] == "customer#globex"
    assert link[CUSTOMER_TIME_INDEX.partition_key] == "globex#2026"
    assert TIME_RANGE_INDEX.partition_key not in link
    assert Attr.BODY not in link


def test_a_document_naming_no_customer_is_in_no_customer_index() -> None:
    # Given / When a document without customers becomes items
    items = document_items(entry([]), NOW)
    # Then it has no CustomerTimeIndex key and no links
    assert CUSTOMER_TIME_INDEX.partition_key not in items.document
    assert items.links == []


def test_a_body_past_the_limit_is_dropped_and_flagged() -> None:
    # Given a document whose body alone exceeds the item limit
    big = entry(["acme"], body_extra={"notes": "x" * MAX_ITEM_BYTES})
    # When it becomes items
    item = document_items(big, NOW).document
    # Then the body is left to S3 and the item fits
    assert item[Attr.BODY] is None
    assert item[Attr.BODY_IN_S3] is True
    assert item_size(item) <= MAX_ITEM_BYTES


def test_metadata_past_the_limit_is_an_error() -> None:
    # Given a document whose title alone exceeds the item limit (parse_document refuses such a
    # title, MAX_TITLE_LENGTH: the store's own guard is checked on an entry built around it)
    small = entry(["acme"])
    huge = small.model_copy(
        update={"document": small.document.model_copy(update={"title": "t" * MAX_ITEM_BYTES})}
    )
    # When / Then it cannot be indexed
    with pytest.raises(ItemTooLargeError):
        document_items(huge, NOW)


def test_a_document_item_reads_back_as_document_summary_and_state() -> None:
    # Given a document item after a round trip through DynamoDB's typed JSON
    item = deserialize(serialize(with_revision(document_items(entry(["acme"]), NOW).document)))
    # When it is read as a document, a summary and a state
    document = document_from_item(item)
    summary = summary_from_item(item)
    state = state_from_item(item)
    # Then each view has the values written
    assert document.doc_id == "CHG-1"
    assert document.sequencer == normalise_sequencer("0A")
    assert document.body is not None
    assert json.loads(document.body)["title"] == "Upgrade"
    assert summary.customers == ("acme",)
    assert summary.size == document.size
    assert not state.is_tombstone
    assert not state.is_pending
    assert state.ordering.etag == "e1"
    assert state.ordering.s3_time == MODIFIED
    assert len(state.revision_token) == 32
    assert is_live_document(item, NOW)


def test_a_tombstone_item_is_in_no_index_and_expires() -> None:
    # Given a deletion
    deletion = Tombstone(
        bucket="docs", key="k", deleted_at=MODIFIED, sequencer=None, source=WriteSource.EVENT
    )
    # When it becomes an item
    item = tombstone_item(deletion, NOW, timedelta(days=30))
    # Then it has no GSI key, orders by the deletion time, and expires after the TTL
    assert not {index.partition_key for index in (TIME_RANGE_INDEX, STATUS_TIME_INDEX)} & set(item)
    assert item[Attr.S3_LAST_MODIFIED] == format_time(MODIFIED)
    assert item[Attr.EXPIRES_AT] == int((NOW + timedelta(days=30)).timestamp())
    state = state_from_item(serialize_round_trip(item))
    assert state.is_tombstone
    assert state.ordering.etag is None
    assert not is_live_document(item, NOW)


def test_an_entry_past_its_ttl_is_not_live() -> None:
    # Given a document item whose TTL is now
    item = {**document_items(entry(["acme"]), NOW).document, Attr.EXPIRES_AT: int(NOW.timestamp())}
    # When / Then reads do not return it
    assert not is_live_document(item, NOW)


def test_a_pending_marker_keeps_the_replaced_entrys_ordering_and_customers() -> None:
    # Given a stored document item
    previous = with_revision(document_items(entry(["globex", "acme"]), NOW).document)
    # When a write-through replaces it by a pending marker
    marker = pending_item("docs", "changes/a.json", "put", previous, NOW)
    # Then the marker keeps the ordering facts and customers, has its own revision, no GSI keys
    state = state_from_item(marker)
    assert state.is_pending
    assert state.pending_since == NOW
    assert state.ordering == state_from_item(previous).ordering
    assert state.customers == ("globex", "acme")
    assert state.revision_token != previous[Attr.REVISION]
    assert TIME_RANGE_INDEX.partition_key not in marker
    assert Attr.BODY not in marker


def test_a_pending_marker_of_a_new_key_is_older_than_anything_s3_reports() -> None:
    # Given / When a marker replaces no entry
    marker = pending_item("docs", "new.json", "put", None, NOW)
    # Then its ordering time is the epoch, with no sequencer, ETag or customers
    state = state_from_item(marker)
    assert state.ordering.s3_time == EPOCH
    assert state.ordering.sequencer is None
    assert state.ordering.etag is None
    assert state.customers == ()


def test_link_bookkeeping_keeps_the_primary_customer_on_the_document_item() -> None:
    # Given customers in any order
    customers = ["globex", "acme", "initech"]
    # When / Then the smallest is primary and the others are linked
    assert primary_customer(customers) == "acme"
    assert linked_customers(customers) == ["globex", "initech"]
    # And a rewrite naming fewer customers removes only the links it no longer needs
    assert links_to_remove(customers, ["acme", "initech"]) == ["globex"]
    # (a customer that becomes primary moves onto the document item: its link goes too)
    assert links_to_remove(customers, ["globex"]) == ["globex", "initech"]


def test_serialisation_drops_none_and_round_trips_numbers() -> None:
    # Given values with a None and a number
    # When they are serialised and read back
    back = deserialize(serialize({"a": None, "n": 5, "s": "x", "l": ["y"]}))
    # Then None is gone and the number is a Decimal
    assert back == {"n": Decimal(5), "s": "x", "l": ["y"]}


def serialize_round_trip(item: dict[str, object]) -> dict[str, object]:
    return deserialize(serialize(item))


def test_a_claim_keeps_the_replaced_entrys_ordering_facts_and_hides_the_document() -> None:
    # Given the claim of a key for a write-through
    claim = pending_claim("docs", "changes/CHG-1.json", "put", NOW)
    # When its update expression is read
    set_part, remove_part = claim.update_expression.split(" REMOVE ")
    removed = {claim.names[name] for name in remove_part.split(", ")}
    defaulted = {
        claim.names[assignment.split(" = ")[0]]
        for assignment in set_part.removeprefix("SET ").split(", ")
        if "if_not_exists" in assignment
    }
    # Then the document, its summary, expiry and every GSI key go; carried facts default only
    assert {
        Attr.BODY,
        Attr.STATUS,
        Attr.EXPIRES_AT,
        TIME_RANGE_INDEX.partition_key,
        TIME_RANGE_INDEX.sort_key,
        CUSTOMER_TIME_INDEX.partition_key,
        STATUS_TIME_INDEX.sort_key,
    } <= removed
    assert defaulted == {Attr.CUSTOMERS, Attr.CUSTOMERS_KEY, Attr.S3_LAST_MODIFIED}
    assert claim.key == document_key("docs", "changes/CHG-1.json")


def test_the_claimed_marker_carries_the_replaced_entrys_facts() -> None:
    # Given a claim and the entry it replaced
    claim = pending_claim("docs", "changes/CHG-1.json", "put", NOW)
    previous = {Attr.ETAG: "abc", Attr.SEQUENCER: "00AB", Attr.CUSTOMERS: ["acme"], Attr.BODY: "{}"}
    # When the marker it left is reconstructed
    marker = claim.marker(previous)
    no_entry = claim.marker(None)
    # Then ordering facts and customers are the replaced entry's, the document is not carried
    assert marker[Attr.ETAG] == "abc"
    assert marker[Attr.SEQUENCER] == "00AB"
    assert marker[Attr.CUSTOMERS] == ["acme"]
    assert Attr.BODY not in marker
    assert marker[Attr.REVISION] == claim.fresh[Attr.REVISION]
    assert no_entry == claim.fresh
