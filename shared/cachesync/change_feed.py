"""The change feed use case: index stream records in, domain events and analytics out.

For each record of the index table's stream: read what was published for its document, decide
(``change_events.decide``), hand the event to the publishers (webhook fan-out), then commit the
published state and the analytics counters in one conditional transaction. Publishing comes
first: if the commit is lost, the record's retry decides the same event again, with the same id
(delivery is at least once, receivers deduplicate on it); if publishing fails, nothing was
committed and the record is retried whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from cachesync.change_analytics import (
    LagIncrement,
    VolumeIncrement,
    lag_increment,
    volume_increments,
)
from cachesync.change_events import (
    TTL_PRINCIPAL,
    Decision,
    DomainEvent,
    Published,
    StreamChange,
    decide,
)
from cachesync.exceptions import InvalidEventError
from cachesync.index_schema import PARTITION_KEY
from cachesync.stores.index_items import deserialize


class PublishedStateStore(Protocol):
    """Where the feed keeps what it published and its analytics (``DynamoDBChangeFeedStore``)."""

    def published(self, document_pk: str) -> Published | None:
        """What was last published for the document (consistent)."""
        ...

    def commit(
        self,
        document_pk: str,
        published: Published,
        volume: list[VolumeIncrement],
        lag: LagIncrement | None,
        now: datetime,
    ) -> bool:
        """Record the published state and add the counters; ``False`` if applied before."""
        ...


class EventPublisher(Protocol):
    """Something that passes domain events on (the webhook fan-out)."""

    def publish(self, event: DomainEvent) -> None:
        """Pass ``event`` on; raise if it could not be (the record is then retried)."""
        ...


class ChangeFeed:
    """Turns index stream records into published domain events and analytics."""

    def __init__(
        self,
        state: PublishedStateStore,
        publishers: Iterable[EventPublisher] = (),
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._state = state
        self._publishers = tuple(publishers)
        self._clock = clock

    def process(self, change: StreamChange) -> Decision:
        """Publish what ``change`` means (if anything) and record it; return the decision."""
        document_pk = str(change.keys[PARTITION_KEY])
        decision = decide(change, self._state.published(document_pk))
        if decision.event is None or decision.published is None:
            return decision
        for publisher in self._publishers:
            publisher.publish(decision.event)
        committed = self._state.commit(
            document_pk,
            decision.published,
            volume_increments(decision.event),
            lag_increment(decision.event),
            self._clock(),
        )
        if not committed:
            return Decision(ignored_because="already applied (a retried record)")
        return decision


def stream_change(record: Mapping[str, Any]) -> StreamChange:
    """One DynamoDB Streams record (a Lambda event's, or ``GetRecords``'s) as a
    :class:`StreamChange`; :class:`InvalidEventError` if it is not one."""
    try:
        stream = record["dynamodb"]
        created = stream.get("ApproximateCreationDateTime")
        identity = record.get("userIdentity") or {}
        return StreamChange(
            event_name=record["eventName"],
            sequence=int(stream["SequenceNumber"]),
            occurred_at=_moment(created),
            keys=deserialize(stream["Keys"]),
            old_image=deserialize(stream["OldImage"]) if "OldImage" in stream else None,
            new_image=deserialize(stream["NewImage"]) if "NewImage" in stream else None,
            by_ttl=identity.get("type") == "Service"
            and identity.get("principalId") == TTL_PRINCIPAL,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        # AttributeError: a member that should be an object is not (fuzzing found it).
        raise InvalidEventError(f"not a DynamoDB Streams record: {error!r}") from error


def _moment(value: Any) -> datetime:
    """Lambda events give epoch seconds; boto3's GetRecords gives a datetime."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    raise ValueError("ApproximateCreationDateTime is missing")
