"""The ordering rule every guarded write enforces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cachesync.ordering import OrderingFacts, format_time, is_same_state, parse_time, supersedes

T0 = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def facts(seq: str | None = None, at: datetime = T0, etag: str | None = "e1") -> OrderingFacts:
    return OrderingFacts(sequencer=seq, s3_time=at, etag=etag)


def test_sequencers_decide_when_both_have_one() -> None:
    # A later sequencer wins even with an earlier clock; an equal one is a duplicate
    assert supersedes(facts("02", T0 - timedelta(hours=1)), facts("01"))
    assert not supersedes(facts("01", T0 + timedelta(hours=1)), facts("02"))
    assert not supersedes(facts("01"), facts("01"))
    assert is_same_state(facts("01"), facts("01", etag="other"))


def test_s3_clock_decides_without_sequencers() -> None:
    assert supersedes(facts(at=T0 + timedelta(seconds=1)), facts())
    assert not supersedes(facts(at=T0 - timedelta(seconds=1)), facts())


def test_same_instant_different_object_supersedes_but_same_object_is_duplicate() -> None:
    assert supersedes(facts(etag="e2"), facts(etag="e1"))
    assert not supersedes(facts(etag="e1"), facts(etag="e1"))
    assert is_same_state(facts(etag="e1"), facts(etag="e1"))


def test_deletion_at_the_same_instant_supersedes_an_object_not_a_deletion() -> None:
    assert supersedes(facts(etag=None), facts(etag="e1"))
    assert not supersedes(facts(etag=None), facts(etag=None))


def test_mixed_sources_fall_back_to_the_s3_clock() -> None:
    # A sequenced event against a state without sequencer (e.g. a backfill) and vice versa
    assert supersedes(facts("05", T0 + timedelta(seconds=1)), facts(None))
    assert not supersedes(facts("05", T0 - timedelta(seconds=1)), facts(None))
    assert supersedes(facts(None, T0 + timedelta(seconds=1)), facts("05"))


def test_time_format_round_trips_and_sorts_as_time() -> None:
    times = [T0, T0 + timedelta(microseconds=1), T0 + timedelta(days=400)]
    texts = [format_time(t) for t in times]
    assert sorted(texts) == texts
    assert [parse_time(t) for t in texts] == times


def test_at_a_clock_tie_a_sequenced_state_is_not_replaced_by_an_unsequenced_one() -> None:
    # A backfill read (no sequencer) in the same second as an applied event: the event stays
    assert not supersedes(facts(None, etag="backfill"), facts("05", etag="event"))
    # while the event's state still replaces an unsequenced one at the same instant
    assert supersedes(facts("05", etag="event"), facts(None, etag="backfill"))
