"""Condition expressions of the index store's guarded writes, built without I/O.

Every write to the index is conditional. The ordering guard (:func:`newer_than_stored`) is
``ordering.supersedes`` written as a DynamoDB condition: the two must stay identical (a property
test against DynamoDB Local checks it). The other guards prove that nobody wrote the entry between
our read and our write. Each clause says in a comment what it protects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cachesync.index_models import StoredState
from cachesync.index_schema import PARTITION_KEY, Attr
from cachesync.ordering import OrderingFacts, format_time
from cachesync.stores.index_items import serialize

# Placeholders for the attribute names the guards read.
_NAMES: Final = {
    "#pk": PARTITION_KEY,
    "#lm": Attr.S3_LAST_MODIFIED,
    "#etag": Attr.ETAG,
    "#seq": Attr.SEQUENCER,
    "#rev": Attr.REVISION,
    "#ck": Attr.CUSTOMERS_KEY,
}


@dataclass(frozen=True, slots=True)
class Condition:
    """A condition expression with the placeholders it uses (values as Python values)."""

    expression: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def and_(self, other: Condition) -> Condition:
        """Both conditions (their placeholders must not clash; those of this module do not)."""
        return Condition(
            f"{self.expression} AND {other.expression}", {**self.values, **other.values}
        )

    @property
    def names(self) -> dict[str, str]:
        """The attribute name placeholders the expression uses (DynamoDB refuses unused ones)."""
        return {name: attr for name, attr in _NAMES.items() if name in self.expression}

    def request_arguments(self) -> dict[str, Any]:
        """``ConditionExpression`` and its placeholder maps, ready for a write request."""
        arguments: dict[str, Any] = {
            "ConditionExpression": self.expression,
            "ExpressionAttributeNames": self.names,
        }
        if self.values:  # DynamoDB refuses an empty map (a value-free "still absent" condition)
            arguments["ExpressionAttributeValues"] = serialize(dict(self.values))
        return arguments


class Unread:
    """Marker type: the write did not read the key's entry first (see :func:`entry_unchanged`)."""


UNREAD: Final = Unread()


def newer_than_stored(new: OrderingFacts) -> Condition:
    """The condition that the stored state is older than ``new`` (``ordering.supersedes``)."""
    values: dict[str, Any] = {":lm": format_time(new.s3_time)}
    # Same instant on S3's clock: only a different object counts as newer, so a redelivered
    # event is a duplicate. A deletion (no ETag) is newer than an object, not than a deletion.
    if new.etag is not None:
        values[":etag"] = new.etag
        same_instant_differs = "(attribute_not_exists(#etag) OR #etag <> :etag)"
    else:
        same_instant_differs = "attribute_exists(#etag)"
    by_s3_clock = f"(#lm < :lm OR (#lm = :lm AND {same_instant_differs}))"
    if new.sequencer is not None:
        values[":seq"] = new.sequencer
        expression = (
            "(attribute_not_exists(#pk)"  # first state we see for this key
            " OR #seq < :seq"  # stored state came from an earlier event of this key
            # stored state has no sequencer (backfill, write-through): S3's clock decides
            f" OR (attribute_not_exists(#seq) AND {by_s3_clock}))"
        )
    else:
        expression = (
            "(attribute_not_exists(#pk)"  # first state we see for this key
            # no sequencer to compare: S3's clock decides...
            " OR #lm < :lm"
            # ...and at the same instant (LastModified has whole seconds) a state that came
            # with a sequencer is the authority: only an unsequenced one may be replaced
            f" OR (#lm = :lm AND attribute_not_exists(#seq) AND {same_instant_differs}))"
        )
    return Condition(expression, values)


def still_absent() -> Condition:
    """We read that the key had no entry: it must still have none."""
    return Condition("attribute_not_exists(#pk)")


def still_revision(revision: str) -> Condition:
    """The entry is still the one we read or wrote: never clobber a newer write or event."""
    return Condition("#rev = :rev", {":rev": revision})


def absent_or_same_customers(customers_key: str) -> Condition:
    """No entry yet, or one naming exactly these customers (``index_items.customers_key``).

    Optimistic: a writer that did not read assumes the stored entry names the same customers, so
    overwriting the link items is complete. If it names others, the condition fails and returns
    the entry, and the writer retries knowing which links to delete.
    """
    return Condition("(attribute_not_exists(#pk) OR #ck = :ck)", {":ck": customers_key})


def entry_unchanged(previous: StoredState | Unread | None, customers_key: str) -> Condition:
    """The guard that the entry is still what the writer believes it is.

    ``previous``: the state read before the write (``None``: no entry), or :data:`UNREAD`.
    ``customers_key``: that of the item being written (used when unread).
    """
    if isinstance(previous, Unread):
        return absent_or_same_customers(customers_key)
    if previous is None:
        return still_absent()
    # The links the write deletes are the ones of the entry we read: nobody rewrote it since.
    return still_revision(previous.revision_token)


def guarded_write(
    new: OrderingFacts | None, previous: StoredState | Unread | None, customers_key: str
) -> Condition:
    """The condition of one guarded write of an entry.

    ``new``: the written state's ordering facts, which must supersede the stored state
    (``None``: the caller established the truth itself, only :func:`entry_unchanged` applies).
    """
    unchanged = entry_unchanged(previous, customers_key)
    return unchanged if new is None else newer_than_stored(new).and_(unchanged)
