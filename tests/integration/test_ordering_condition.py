"""Property: the ordering rule in Python and in DynamoDB are the same rule.

``ordering.supersedes(new, old)`` and the condition of ``index_conditions.newer_than_stored`` state
one rule twice. For generated pairs of stored and incoming states (sequencers of different lengths
and cases, missing or unusable sequencers, LastModified ties, tombstones, pending markers), a
conditional write against DynamoDB Local must apply exactly when ``supersedes`` says it may, both
for the bare condition and through the store's public writes.

``make soak`` raises the number of examples (tests/support/scale.py).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cachesync.documents import parse_document
from cachesync.index_models import (
    IndexEntry,
    ObjectVersion,
    Tombstone,
    WriteOutcome,
    WriteSource,
)
from cachesync.ordering import OrderingFacts, supersedes
from cachesync.sequencer import normalise_sequencer
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.index_conditions import newer_than_stored
from cachesync.stores.index_items import (
    Item,
    document_items,
    pending_item,
    serialize,
    state_from_item,
    tombstone_item,
    with_revision,
)
from tests.support.scale import scaled

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BUCKET = "docs"
NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 19, 8, 0, 0, tzinfo=UTC)  # whole seconds, as S3's LastModified
TOMBSTONE_TTL = timedelta(days=30)
EXAMPLES = scaled(100, 1000)
PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # One table serves every example of a test; each example writes keys of its own.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Few digits, both cases: generated sequencers often tie or differ only by case or padding.
_HEX = "019aAfF"
raw_sequencers = st.one_of(
    st.text(alphabet=_HEX, min_size=1, max_size=12),
    # Unusable sequencers (not hexadecimal, too long) normalise to "none".
    st.sampled_from(["Happy Sequencer", "f" * 65]),
)
# Offsets from the stored state's time: mostly ties, whole seconds and microseconds either side.
time_offsets = st.sampled_from(
    [timedelta(0)] * 4
    + [timedelta(seconds=1), timedelta(seconds=-1), timedelta(microseconds=1), -timedelta(1)]
)
StoredKind = Literal[
    "absent", "document", "tombstone", "pending-document", "pending-tombstone", "pending-new"
]


@st.composite
def sequencer_pairs(draw: st.DrawFn) -> tuple[str | None, str | None]:
    """Raw (stored, incoming) sequencers, often related: equal, padded, case-flipped, extended."""
    stored = draw(st.none() | raw_sequencers)
    relation = draw(st.sampled_from(["none", "independent", "padded", "swapcase", "extended"]))
    if relation == "none":
        return stored, None
    if relation == "independent" or stored is None:
        return stored, draw(raw_sequencers)
    if relation == "padded":  # the same sequencer, right-padded: equal after normalisation
        return stored, stored + "0" * draw(st.integers(min_value=1, max_value=4))
    if relation == "swapcase":
        return stored, stored.swapcase()
    return stored, stored + draw(st.text(alphabet=_HEX, min_size=1, max_size=3))


@dataclass(frozen=True)
class Case:
    """One stored state of a key and one incoming write."""

    stored_kind: StoredKind
    stored_sequencer: str | None
    stored_time: datetime
    stored_etag: str
    incoming_deletion: bool
    incoming_sequencer: str | None
    incoming_time: datetime
    incoming_etag: str


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A stored state (of any kind) and an incoming object or deletion."""
    stored_sequencer, incoming_sequencer = draw(sequencer_pairs())
    return Case(
        stored_kind=draw(
            st.sampled_from(
                [
                    "absent",
                    "document",
                    "tombstone",
                    "pending-document",
                    "pending-tombstone",
                    "pending-new",
                ]
            )
        ),
        stored_sequencer=stored_sequencer,
        stored_time=T0,
        stored_etag=draw(st.sampled_from(["e1", "e2"])),
        incoming_deletion=draw(st.booleans()),
        incoming_sequencer=incoming_sequencer,
        incoming_time=T0 + draw(time_offsets),
        incoming_etag=draw(st.sampled_from(["e1", "e2"])),
    )


def entry(key: str, sequencer: str | None, at: datetime, etag: str) -> IndexEntry:
    raw = json.dumps(
        {
            "object_type": "change",
            "change_id": key,
            "status": "approved",
            "title": key,
            "customers": ["acme"],
            "modified_at": at.isoformat(),
        }
    )
    version = ObjectVersion(
        bucket=BUCKET,
        key=key,
        etag=etag,
        size=len(raw),
        last_modified=at,
        sequencer=normalise_sequencer(sequencer),
    )
    document = parse_document(key, raw, s3_last_modified=at)
    return IndexEntry(version=version, document=document, source=WriteSource.EVENT)


def tombstone(key: str, sequencer: str | None, at: datetime) -> Tombstone:
    return Tombstone(
        bucket=BUCKET,
        key=key,
        deleted_at=at,
        sequencer=normalise_sequencer(sequencer),
        source=WriteSource.EVENT,
    )


def stored_item(case: Case, key: str) -> Item | None:
    """The item the case stores for ``key`` (``None``: no entry), as the store would write it."""
    document = with_revision(
        document_items(
            entry(key, case.stored_sequencer, case.stored_time, case.stored_etag), NOW
        ).document
    )
    deletion = with_revision(
        tombstone_item(tombstone(key, case.stored_sequencer, case.stored_time), NOW, TOMBSTONE_TTL)
    )
    items: dict[StoredKind, Item | None] = {
        "absent": None,
        "document": document,
        "tombstone": deletion,
        "pending-document": pending_item(BUCKET, key, "put", document, NOW),
        "pending-tombstone": pending_item(BUCKET, key, "put", deletion, NOW),
        "pending-new": pending_item(BUCKET, key, "put", None, NOW),
    }
    return items[case.stored_kind]


def incoming(case: Case, key: str) -> tuple[Item, OrderingFacts, IndexEntry | Tombstone]:
    """The incoming write of the case: its item, its ordering facts and its model."""
    if case.incoming_deletion:
        deletion = tombstone(key, case.incoming_sequencer, case.incoming_time)
        item = with_revision(tombstone_item(deletion, NOW, TOMBSTONE_TTL))
        return item, deletion.ordering(), deletion
    document = entry(key, case.incoming_sequencer, case.incoming_time, case.incoming_etag)
    item = with_revision(document_items(document, NOW).document)
    return item, document.version.ordering(), document


def expected_to_apply(stored: Item | None, new: OrderingFacts) -> bool:
    """The Python statement of the rule: a first state always applies."""
    return stored is None or supersedes(new, state_from_item(stored).ordering)


def seed(client: DynamoDBClient, table: str, item: Item | None) -> None:
    if item is not None:
        client.put_item(TableName=table, Item=serialize(item))


def conditional_put(client: DynamoDBClient, table: str, item: Item, new: OrderingFacts) -> bool:
    """Put ``item`` under the ordering guard alone; whether DynamoDB applied it."""
    try:
        client.put_item(
            TableName=table, Item=serialize(item), **newer_than_stored(new).request_arguments()
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


def tie(
    stored_kind: StoredKind,
    stored_sequencer: str | None,
    incoming_sequencer: str | None,
    *,
    deletion: bool = False,
    incoming_etag: str = "e2",
) -> Case:
    """A case at a LastModified tie: the clauses most easily got wrong."""
    return Case(
        stored_kind=stored_kind,
        stored_sequencer=stored_sequencer,
        stored_time=T0,
        stored_etag="e1",
        incoming_deletion=deletion,
        incoming_sequencer=incoming_sequencer,
        incoming_time=T0,
        incoming_etag=incoming_etag,
    )


# Always tried, besides the generated cases.
TIES = (
    tie("document", "0A", None),  # a backfill in the event's second: the event stays
    tie("document", None, "0A"),  # an event in the backfill's second: the event wins
    tie("tombstone", None, None, deletion=True),  # a redelivered deletion: duplicate
    tie("document", None, None, deletion=True),  # a deletion at the object's instant: applies
    tie("document", "0a", "0A00"),  # the same sequencer in another case and length
    tie("pending-document", "0A", None),  # a marker keeps the sequenced state's authority
)


def with_ties(test: Any) -> Any:
    """Decorate ``test`` with an explicit example per entry of :data:`TIES`."""
    for case in TIES:
        test = example(case=case)(test)
    return test


def describe(case: Case, stored: Item | None, new: OrderingFacts) -> str:
    old = None if stored is None else state_from_item(stored).ordering
    return f"{case}\nstored ordering: {old}\nincoming ordering: {new}"


@PROPERTY_SETTINGS
@given(case=cases())
@with_ties
def test_the_ordering_condition_applies_exactly_when_supersedes_says_so(
    dynamodb_client: DynamoDBClient, index_table: str, case: Case
) -> None:
    # Given a key holding the case's stored state (or no entry)
    key = f"prop/{uuid.uuid4().hex}.json"
    stored = stored_item(case, key)
    seed(dynamodb_client, index_table, stored)
    item, new, _ = incoming(case, key)
    # When the incoming state is written under the ordering guard
    applied = conditional_put(dynamodb_client, index_table, item, new)
    # Then DynamoDB applied it exactly when the Python rule says it supersedes the stored state
    assert applied == expected_to_apply(stored, new), describe(case, stored, new)


@PROPERTY_SETTINGS
@given(case=cases())
@with_ties
def test_the_stores_guarded_writes_apply_exactly_when_supersedes_says_so(
    dynamodb_client: DynamoDBClient, index_table: str, case: Case
) -> None:
    # Given a key holding the case's stored state (or no entry)
    store = DynamoDBIndexStore(dynamodb_client, index_table, clock=lambda: NOW)
    key = f"prop/{uuid.uuid4().hex}.json"
    stored = stored_item(case, key)
    seed(dynamodb_client, index_table, stored)
    _, new, model = incoming(case, key)
    # When the store writes the incoming document or deletion
    if isinstance(model, Tombstone):
        result = store.put_tombstone(model)
    else:
        result = store.put_document(model)
    # Then it applied exactly when the Python rule says so, and the key holds the winner
    should_apply = expected_to_apply(stored, new)
    assert (result.outcome is WriteOutcome.APPLIED) == should_apply, describe(case, stored, new)
    after = store.get_state(BUCKET, key)
    assert after is not None
    expected_state = new if should_apply else state_from_item(stored or {}).ordering
    assert after.ordering == expected_state, describe(case, stored, new)


def test_the_generated_cases_cover_every_kind_and_tie() -> None:
    # Given the case strategy
    # When many cases are drawn
    seen: set[Any] = set()

    @settings(max_examples=300, database=None)
    @given(case=cases())
    def collect(case: Case) -> None:
        stored = stored_item(case, "k")
        _, new, _ = incoming(case, "k")
        old = None if stored is None else state_from_item(stored).ordering
        seen.add(case.stored_kind)
        seen.add("deletion" if case.incoming_deletion else "object")
        if old is not None:
            seen.add(("time-tie", new.s3_time == old.s3_time))
            both = new.sequencer is not None and old.sequencer is not None
            seen.add(("both-sequenced", both))
            if both:
                seen.add(("sequencer-tie", new.sequencer == old.sequencer))
            seen.add(("applies", supersedes(new, old)))

    collect()
    # Then every stored kind, both incoming kinds, ties and both answers of the rule occur
    assert {
        "absent",
        "document",
        "tombstone",
        "pending-document",
        "pending-tombstone",
        "pending-new",
        "deletion",
        "object",
        ("time-tie", True),
        ("time-tie", False),
        ("both-sequenced", True),
        ("both-sequenced", False),
        ("sequencer-tie", True),
        ("sequencer-tie", False),
        ("applies", True),
        ("applies", False),
    } <= seen
