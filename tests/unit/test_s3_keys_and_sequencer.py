"""Key decoding, key paths and sequencer comparison."""

from __future__ import annotations

from urllib.parse import quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachesync.exceptions import InvalidKeyError
from cachesync.s3_keys import customer_from_key, decode_event_key, kind_from_key
from cachesync.sequencer import SEQUENCER_WIDTH, compare_sequencers, normalise_sequencer


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("red+flower.jpg", "red flower.jpg"),
        ("a%2Bb.json", "a+b.json"),
        ("100%25+done.json", "100% done.json"),
        ("caf%C3%A9/r%C3%A9sum%C3%A9.json", "café/résumé.json"),
        ("customers/acme/changes/2026/11/x.json", "customers/acme/changes/2026/11/x.json"),
        ("Happy%20Face.jpg", "Happy Face.jpg"),
    ],
)
def test_event_keys_are_decoded_exactly_once(raw: str, decoded: str) -> None:
    assert decode_event_key(raw) == decoded


@given(st.text(min_size=1, max_size=200).filter(lambda k: len(k.encode()) <= 1024))
def test_any_key_round_trips_through_s3_form_encoding(key: str) -> None:
    # Given any key, encoded as S3 notifications encode it
    encoded = quote_plus(key, safe="/")
    # When it is decoded
    # Then it is the original key
    assert decode_event_key(encoded) == key


@pytest.mark.parametrize("raw", ["", "%C3", "x" * 1025])
def test_undecodable_keys_are_refused(raw: str) -> None:
    with pytest.raises(InvalidKeyError):
        decode_event_key(raw)


@pytest.mark.parametrize(
    ("key", "kind", "customer"),
    [
        ("changes/a.json", "change", None),
        ("announcements/a.json", "announcement", None),
        ("customers/acme/changes/a.json", "change", "acme"),
        ("customers/acme/notes/a.json", None, "acme"),
        ("changes", None, None),
        ("other/changes/a.json", None, None),
    ],
)
def test_key_paths(key: str, kind: str | None, customer: str | None) -> None:
    assert kind_from_key(key) == kind
    assert customer_from_key(key) == customer


def test_sequencers_compare_as_hex_with_right_padding() -> None:
    # Given sequencers of different lengths and cases
    # Then the right-padded value decides, case-insensitively
    assert compare_sequencers("0A", "0B") == -1
    assert compare_sequencers("0a", "0A") == 0
    assert compare_sequencers("0A00", "0A") == 0  # right padding: equal
    assert compare_sequencers("0A01", "0A") == 1
    assert compare_sequencers("0B", "0A0F") == 1  # a shorter one can be later
    assert compare_sequencers("00643717F9F8B85354", "00643717F9F8B85355") == -1


@pytest.mark.parametrize("raw", [None, "", "Happy Sequencer", "0x12", "G1", "0" * 65])
def test_unusable_sequencers_normalise_to_none(raw: str | None) -> None:
    assert normalise_sequencer(raw) is None


def test_comparing_an_unusable_sequencer_raises() -> None:
    with pytest.raises(ValueError, match="not comparable"):
        compare_sequencers("zz", "01")


@given(
    st.text("0123456789abcdefABCDEF", min_size=1, max_size=40),
    st.text("0123456789abcdefABCDEF", min_size=1, max_size=40),
)
def test_normalised_string_order_equals_numeric_right_padded_order(a: str, b: str) -> None:
    # Given two hex sequencers
    width = max(len(a), len(b))
    numeric = (int(a.ljust(width, "0"), 16) > int(b.ljust(width, "0"), 16)) - (
        int(a.ljust(width, "0"), 16) < int(b.ljust(width, "0"), 16)
    )
    # When their normalised forms are compared as strings (what DynamoDB does)
    left, right = normalise_sequencer(a), normalise_sequencer(b)
    assert left is not None
    assert right is not None
    assert len(left) == SEQUENCER_WIDTH
    # Then the order is the S3 rule
    assert ((left > right) - (left < right)) == numeric
