"""The query parameters of the API, parsed and checked (pure functions: no I/O).

Each raises :class:`~cachesync.api.problems.ApiProblemError` (a 400) naming what is wrong.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from cachesync.api.models import SUMMARY_FIELDS
from cachesync.api.problems import bad_request
from cachesync.documents import AnnouncementStatus, ChangeStatus
from cachesync.index_models import DocumentSummary

KNOWN_STATUSES: Final = frozenset(s.value for s in (*ChangeStatus, *AnnouncementStatus))
# Ten years: a page walk queries every period of the window (monthly for two indexes).
MAX_WINDOW: Final = timedelta(days=3660)


def parse_moment(name: str, text: str | None) -> datetime | None:
    """An ISO 8601 date (midnight UTC) or date-time (UTC when it names no zone)."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise bad_request(f"{name} is not an ISO 8601 date or date-time: {text!r}") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_statuses(given: list[str]) -> list[str]:
    """The distinct statuses asked for, sorted (one query, one token, whatever their order)."""
    statuses = sorted({status.strip() for status in given if status.strip()})
    unknown = [status for status in statuses if status not in KNOWN_STATUSES]
    if unknown:
        raise bad_request(f"unknown status: {', '.join(unknown)}", allowed=sorted(KNOWN_STATUSES))
    return statuses


def parse_window(
    since: str | None, until: str | None, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """The query window; at most :data:`MAX_WINDOW` long (each period costs a DynamoDB query)."""
    start, end = parse_moment("since", since), parse_moment("until", until)
    if start is not None and end is not None and start >= end:
        raise bad_request("since must be before until")
    if (end or now) - (start or (end or now) - MAX_WINDOW) > MAX_WINDOW:
        raise bad_request(f"the window spans more than {MAX_WINDOW.days} days: narrow it")
    return start, end


def parse_projection(fields: str | None) -> tuple[str, ...]:
    """The summary fields named by ``fields`` (a comma list; ``None``: all of them)."""
    if fields is None:
        return SUMMARY_FIELDS
    wanted = tuple(dict.fromkeys(name.strip() for name in fields.split(",") if name.strip()))
    unknown = [name for name in wanted if name not in SUMMARY_FIELDS]
    if unknown or not wanted:
        raise bad_request(
            f"unknown fields: {', '.join(unknown) or '(none given)'}",
            allowed=list(SUMMARY_FIELDS),
        )
    return wanted


def project(item: DocumentSummary, fields: tuple[str, ...]) -> dict[str, Any]:
    """``item`` as JSON, holding only ``fields``."""
    data = item.model_dump(mode="json")
    return {name: data[name] for name in fields}


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison of ``etag`` with an If-None-Match list (``*`` matches all)."""
    candidates = [part.strip() for part in if_none_match.split(",")]
    return "*" in candidates or etag in [c.removeprefix("W/") for c in candidates]
