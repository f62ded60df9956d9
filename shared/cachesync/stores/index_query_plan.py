"""Query planning for the index: which GSI, which time periods, which filters; no I/O.

A query by customer is served by ``CustomerTimeIndex`` (statuses then filter), a query by
status(es) without a customer by ``StatusTimeIndex``, any other by ``TimeRangeIndex``; a kind and
a tenancy of several customers are filters; a tenancy of one customer is a query by that
customer. GSI partition keys carry a time period (``index_schema.py``), so a query walks the
periods of its window in order, one DynamoDB Query per period (and per page of it).

Several statuses without a customer are several *lanes*: one ``StatusTimeIndex`` partition per
status in each period, merged in index-time order by the store. A document has one status, so
the lanes never hold the same document twice, and each lane resumes from its own key. (A tenancy
of several customers stays a filter: a document naming two of them would sit in two lanes.)
The store runs the requests; this module decides them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from cachesync.documents import DocumentKind
from cachesync.index_models import DEFAULT_WINDOW_DAYS, IndexQuery
from cachesync.index_schema import (
    CUSTOMER_TIME_INDEX,
    STATUS_TIME_INDEX,
    TIME_RANGE_INDEX,
    Attr,
    GlobalIndex,
)
from cachesync.ordering import format_time, parse_time
from cachesync.stores.index_items import serialize

# One day of slack past now in a default window: an index time a little ahead of our clock is
# still found.
CLOCK_SLACK: Final = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Filter:
    """A condition on a non-key attribute, applied by DynamoDB after the key condition."""

    attribute: str
    value: Any
    """One value, or a tuple of values for ``any_of`` and ``names_any``."""
    not_expired: bool = False
    """``True``: the attribute is a TTL that must be absent or later than ``value`` (now)."""
    any_of: bool = False
    """``True``: the attribute equals one of the values."""
    names_any: bool = False
    """``True``: the attribute is a list holding at least one of the values."""

    def placeholders(self, value: str) -> dict[str, Any]:
        """The value placeholders of this filter, derived from ``value``, and their values."""
        if isinstance(self.value, tuple):
            return {f"{value}_{n}": item for n, item in enumerate(self.value)}
        return {value: self.value}

    def expression(self, name: str, value: str) -> str:
        """This filter with the placeholders ``name`` and ``value``."""
        if self.not_expired:
            # DynamoDB deletes expired items only eventually: hide them until it does.
            return f"(attribute_not_exists({name}) OR {name} > {value})"
        if self.any_of:
            return f"{name} IN ({', '.join(self.placeholders(value))})"
        if self.names_any:
            named = " OR ".join(f"contains({name}, {v})" for v in self.placeholders(value))
            return f"({named})"
        return f"{name} = {value}"


@dataclass(frozen=True, slots=True)
class QueryPlan:
    """How one :class:`IndexQuery` is answered: a GSI, its partitions in order, a window."""

    index: GlobalIndex
    lanes: tuple[str | None, ...]
    """What precedes the period in the GSI partition key: the customer, each status, or nothing
    (``None``, the time index); more than one only for several statuses."""
    periods: tuple[str, ...]
    """The time periods of the window, in query order."""
    since: str
    until: str
    filters: tuple[Filter, ...]
    ascending: bool

    @property
    def partitions(self) -> tuple[str, ...]:
        """Every GSI partition key value the plan reads, period by period (lanes within)."""
        return tuple(
            self.partition(position, lane)
            for position in range(len(self.periods))
            for lane in range(len(self.lanes))
        )

    def partition(self, position: int, lane: int = 0) -> str:
        """The GSI partition key value of ``lane`` in the period at ``position``."""
        return self.index.partition_value(self.lanes[lane], self.periods[position])

    def period_request(self, position: int, lane: int = 0) -> dict[str, Any]:
        """The Query arguments (without table, limit and start key) for one lane of a period."""
        names = {"#p": self.index.partition_key, "#s": self.index.sort_key}
        values: dict[str, Any] = {
            ":p": self.partition(position, lane),
            ":since": self.since,
            ":until": self.until,
        }
        filters = []
        for number, condition in enumerate(self.filters):
            names[f"#f{number}"] = condition.attribute
            values.update(condition.placeholders(f":f{number}"))
            filters.append(condition.expression(f"#f{number}", f":f{number}"))
        return {
            "IndexName": self.index.name,
            "KeyConditionExpression": "#p = :p AND #s BETWEEN :since AND :until",
            "FilterExpression": " AND ".join(filters),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": serialize(values),
            "ScanIndexForward": self.ascending,
        }


def plan_query(query: IndexQuery, now: datetime, window: tuple[str, str] | None) -> QueryPlan:
    """Choose the GSI, its partition values and filters; fix the time window.

    ``window``: the window of the first page, from a continuation token, so that a default
    window that moves with the clock does not shift under a paging client.
    """
    if window is not None:
        since, until = window
    else:
        since = format_time(query.since or now - timedelta(days=DEFAULT_WINDOW_DAYS))
        until = format_time(query.until or now + CLOCK_SLACK)
    filters = [Filter(Attr.EXPIRES_AT, int(now.timestamp()), not_expired=True)]
    if query.kind is not None:
        filters.append(Filter(Attr.KIND, DocumentKind(query.kind).value))
    statuses = (query.status,) if query.status is not None else tuple(query.statuses)
    customer = query.customer
    tenancy = query.within_customers
    if customer is None and tenancy is not None and len(tenancy) == 1:
        # A key limited to one customer reads that customer's index partition directly.
        customer = tenancy[0]
    elif customer is None and tenancy is not None:
        filters.append(Filter(Attr.CUSTOMERS, tuple(tenancy), names_any=True))
    index: GlobalIndex = TIME_RANGE_INDEX
    lanes: tuple[str | None, ...] = (None,)
    if customer is not None:
        index, lanes = CUSTOMER_TIME_INDEX, (customer.strip().lower(),)
        if len(statuses) == 1:
            filters.append(Filter(Attr.STATUS, statuses[0]))
        elif statuses:
            filters.append(Filter(Attr.STATUS, statuses, any_of=True))
    elif statuses:
        index, lanes = STATUS_TIME_INDEX, statuses
    periods = index.periods_between(parse_time(since), parse_time(until))
    if query.order == "desc":
        periods.reverse()
    return QueryPlan(
        index=index,
        lanes=lanes,
        periods=tuple(periods),
        since=since,
        until=until,
        filters=tuple(filters),
        ascending=query.order == "asc",
    )


def next_position(plan: QueryPlan, position: int, period_done: bool) -> int | None:
    """Where the page after one that ended in the period at ``position`` starts (``None``: the
    query is done): the same period while any of its lanes has more, else the next period."""
    if not period_done:
        return position
    return position + 1 if position + 1 < len(plan.periods) else None
