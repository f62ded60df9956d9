"""S3 event sequencers: the per-key order of PUT and DELETE events.

The S3 user guide: the greater hexadecimal sequencer is the later event; sequencers of one key
may differ in length, so right-pad the shorter with zeros before comparing. Documentation
examples mix upper and lower case, so case is normalised. Sequencers never order different keys.

We store sequencers upper-cased and right-padded to :data:`SEQUENCER_WIDTH` characters, so that
DynamoDB's byte-wise string comparison in a condition expression is exactly the S3 rule.
"""

from __future__ import annotations

import string
from typing import Final

SEQUENCER_WIDTH: Final = 64
_HEX_DIGITS: Final = frozenset(string.hexdigits)


def normalise_sequencer(raw: str | None) -> str | None:
    """The comparable form of a sequencer, or ``None`` when absent or not usable.

    A sequencer that is not hexadecimal, or longer than :data:`SEQUENCER_WIDTH`, cannot be
    ordered against others; the caller treats the event as one without a sequencer.
    """
    if raw is None:
        return None
    value = raw.strip()
    if not value or len(value) > SEQUENCER_WIDTH or not set(value) <= _HEX_DIGITS:
        return None
    return value.upper().ljust(SEQUENCER_WIDTH, "0")


def compare_sequencers(left: str, right: str) -> int:
    """-1, 0 or 1 as ``left`` is earlier than, the same as, or later than ``right``.

    Raises :class:`ValueError` when either is not a usable sequencer.
    """
    a, b = normalise_sequencer(left), normalise_sequencer(right)
    if a is None or b is None:
        raise ValueError(f"not comparable sequencers: {left!r}, {right!r}")
    return (a > b) - (a < b)
