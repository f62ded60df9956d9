"""A key's usage over the last hour and day, from the access log's records (``keys usage``).

Locally the access log is a JSON Lines file (``cachesync api serve --access-log``); in AWS the
same figures come from CloudWatch (the metrics of ``api/access_log.py``, or the Logs Insights
queries of docs/RUNBOOK.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, ValidationError

from cachesync.api.access_log import AccessRecord

WINDOWS: Final = (("last hour", timedelta(hours=1)), ("last day", timedelta(days=1)))


class UsageFigures(BaseModel):
    """Counts and latency percentiles of some requests."""

    model_config = ConfigDict(frozen=True)

    requests: int
    errors: int
    """Answers with a 4xx or 5xx status (throttled ones included)."""
    client_errors: int
    server_errors: int
    throttled: int
    """429 answers."""
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class RouteUsage(UsageFigures):
    """The figures of one route (``METHOD /template``)."""

    route: str


class UsageWindow(BaseModel):
    """The figures of one period ending now: in total and per route (busiest first)."""

    model_config = ConfigDict(frozen=True)

    window: str
    since: datetime
    total: UsageFigures
    routes: list[RouteUsage]


class UsageReport(BaseModel):
    """What ``cachesync keys usage KEY_ID`` shows."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    until: datetime
    windows: list[UsageWindow]
    skipped_lines: int = 0
    """Lines of the log that were not access records (a torn last line, another format)."""


def read_access_log(path: Path) -> tuple[list[AccessRecord], int]:
    """The records of the JSON Lines file at ``path``, and how many lines were not records."""
    records: list[AccessRecord] = []
    skipped = 0
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                records.append(AccessRecord.model_validate_json(line))
            except ValidationError:
                skipped += 1
    return records, skipped


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` in 0..1) of sorted ``values``; ``None`` if empty."""
    if not values:
        return None
    rank = max(1, math.ceil(share * len(values)))
    return values[rank - 1]


def figures(records: Iterable[AccessRecord]) -> UsageFigures:
    """The figures of ``records``."""
    chosen = list(records)
    latencies = sorted(record.latency_ms for record in chosen)
    client = sum(1 for record in chosen if 400 <= record.status < 500)
    server = sum(1 for record in chosen if record.status >= 500)
    return UsageFigures(
        requests=len(chosen),
        errors=client + server,
        client_errors=client,
        server_errors=server,
        throttled=sum(1 for record in chosen if record.throttled),
        p50_ms=percentile(latencies, 0.50),
        p95_ms=percentile(latencies, 0.95),
        p99_ms=percentile(latencies, 0.99),
    )


def _by_route(records: list[AccessRecord]) -> Iterator[RouteUsage]:
    routes: dict[str, list[AccessRecord]] = {}
    for record in records:
        routes.setdefault(record.route, []).append(record)
    for route, chosen in sorted(routes.items(), key=lambda item: (-len(item[1]), item[0])):
        yield RouteUsage(route=route, **figures(chosen).model_dump())


def summarize(
    records: Iterable[AccessRecord], key_id: str, now: datetime, skipped: int = 0
) -> UsageReport:
    """The usage of ``key_id`` over each of :data:`WINDOWS` ending at ``now``."""
    mine = [record for record in records if record.key_id == key_id]
    windows = []
    for name, length in WINDOWS:
        since = now - length
        chosen = [record for record in mine if since <= record.timestamp <= now]
        windows.append(
            UsageWindow(
                window=name, since=since, total=figures(chosen), routes=list(_by_route(chosen))
            )
        )
    return UsageReport(key_id=key_id, until=now, windows=windows, skipped_lines=skipped)
