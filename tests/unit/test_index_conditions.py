"""Write conditions of the index store, built without a server.

What DynamoDB makes of them is checked against DynamoDB Local by the ordering property test
(tests/integration/test_ordering_condition.py); these tests pin their shape and placeholders.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cachesync.index_models import StoredState
from cachesync.index_schema import PARTITION_KEY, Attr
from cachesync.ordering import OrderingFacts, format_time
from cachesync.stores.index_conditions import (
    UNREAD,
    Condition,
    entry_unchanged,
    guarded_write,
    newer_than_stored,
    still_absent,
    still_revision,
)

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SEQ = "0A".ljust(64, "0")


def state(revision: str = "r1") -> StoredState:
    return StoredState(
        is_tombstone=False,
        ordering=OrderingFacts(sequencer=None, s3_time=T0, etag="e0"),
        version_id=None,
        customers=("acme",),
        revision_token=revision,
        expires_at=None,
    )


def test_a_sequenced_write_compares_sequencers_and_falls_back_to_the_clock() -> None:
    # Given the ordering facts of an event with a sequencer
    new = OrderingFacts(sequencer=SEQ, s3_time=T0, etag="e1")
    # When its guard is built
    condition = newer_than_stored(new)
    # Then it accepts a first state, an earlier sequencer, or an unsequenced older state
    assert "attribute_not_exists(#pk)" in condition.expression
    assert "#seq < :seq" in condition.expression
    assert "attribute_not_exists(#seq) AND (#lm < :lm" in condition.expression
    assert condition.values == {":lm": format_time(T0), ":seq": SEQ, ":etag": "e1"}
    assert condition.names == {
        "#pk": PARTITION_KEY,
        "#seq": Attr.SEQUENCER,
        "#lm": Attr.S3_LAST_MODIFIED,
        "#etag": Attr.ETAG,
    }


def test_an_unsequenced_write_never_replaces_a_sequenced_state_at_a_clock_tie() -> None:
    # Given the ordering facts of a backfill (no sequencer)
    new = OrderingFacts(sequencer=None, s3_time=T0, etag="e1")
    # When its guard is built
    condition = newer_than_stored(new)
    # Then the clock decides, and a tie applies only over an unsequenced, different object
    assert ":seq" not in condition.values
    assert "#seq <" not in condition.expression
    assert (
        "(#lm = :lm AND attribute_not_exists(#seq) AND (attribute_not_exists(#etag) OR "
        "#etag <> :etag))" in condition.expression
    )


def test_a_deletion_at_a_clock_tie_replaces_an_object_not_a_deletion() -> None:
    # Given the ordering facts of a deletion (no ETag)
    new = OrderingFacts(sequencer=None, s3_time=T0, etag=None)
    # When its guard is built
    condition = newer_than_stored(new)
    # Then a tie requires a stored ETag (an object), and no ETag value is sent
    assert "#lm = :lm AND attribute_not_exists(#seq) AND attribute_exists(#etag)" in (
        condition.expression
    )
    assert ":etag" not in condition.values


def test_the_entry_guard_follows_what_the_writer_read() -> None:
    # Given / When the writer did not read, read no entry, or read an entry
    unread = entry_unchanged(UNREAD, "acme")
    absent = entry_unchanged(None, "acme")
    known = entry_unchanged(state("r7"), "acme")
    # Then: same customers or no entry; still no entry; still that revision
    assert unread == Condition("(attribute_not_exists(#pk) OR #ck = :ck)", {":ck": "acme"})
    assert absent == still_absent()
    assert known == still_revision("r7")


def test_a_guarded_write_joins_the_ordering_and_entry_guards() -> None:
    # Given an event's ordering facts and a state read before
    new = OrderingFacts(sequencer=SEQ, s3_time=T0, etag="e1")
    # When the write's condition is built
    condition = guarded_write(new, state("r2"), "acme")
    # Then both guards must hold
    assert condition.expression == f"{newer_than_stored(new).expression} AND #rev = :rev"
    assert condition.values[":rev"] == "r2"
    assert condition.names["#rev"] == Attr.REVISION


def test_a_verified_write_is_guarded_only_by_the_entry() -> None:
    # Given a writer that established the truth itself and read no entry
    # When its condition is built
    condition = guarded_write(None, None, "acme")
    # Then only "still absent" applies, and no empty value map is sent (DynamoDB refuses it)
    arguments = condition.request_arguments()
    assert arguments == {
        "ConditionExpression": "attribute_not_exists(#pk)",
        "ExpressionAttributeNames": {"#pk": PARTITION_KEY},
    }


def test_request_arguments_serialise_values() -> None:
    # Given / When a revision guard becomes request arguments
    arguments = still_revision("r1").request_arguments()
    # Then the value is DynamoDB typed JSON and only the used name is declared
    assert arguments["ExpressionAttributeValues"] == {":rev": {"S": "r1"}}
    assert arguments["ExpressionAttributeNames"] == {"#rev": Attr.REVISION}
