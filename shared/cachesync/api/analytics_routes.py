"""The analytics routes (``/v1/analytics/...``): the change feed's counters, for the caller's
customers, as JSON or CSV.

Registered by ``create_app`` on the API's resolver with its read-scope guard; the figures come
from :class:`~cachesync.analytics.AnalyticsReader`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Final, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict

from cachesync.analytics import (
    AnalyticsReader,
    AnalyticsWindow,
    Breakdown,
    DailyLag,
    DailyVolume,
    Transition,
    as_csv,
    default_window,
)
from cachesync.api.keys import Principal
from cachesync.api.problems import bad_request, forbidden

CSV_CONTENT_TYPE: Final = "text/csv; charset=utf-8"
_DAY_PATTERN: Final = r"^\d{4}-\d{2}-\d{2}$"
Format = Literal["json", "csv"]
# Route parameters (module level: the routes' annotations are resolved by name).
SinceQuery = Annotated[
    str | None, Query(pattern=_DAY_PATTERN, description="First day (default: 29 days ago)")
]
UntilQuery = Annotated[
    str | None, Query(pattern=_DAY_PATTERN, description="Last day, inclusive (default: today)")
]
CustomerQuery = Annotated[str | None, Query(min_length=1, max_length=128)]
KindQuery = Annotated[Literal["change", "announcement"] | None, Query()]
FormatQuery = Annotated[Format, Query(description="json (default) or csv")]


class VolumeReport(BaseModel):
    """Changes per day and status."""

    model_config = ConfigDict(frozen=True)

    since: date
    until: date
    days: list[DailyVolume]


class BreakdownReport(BaseModel):
    """Totals of the window per status, customer or kind."""

    model_config = ConfigDict(frozen=True)

    since: date
    until: date
    by: str
    rows: list[Breakdown]


class TransitionsReport(BaseModel):
    """Status transitions of the window."""

    model_config = ConfigDict(frozen=True)

    since: date
    until: date
    transitions: list[Transition]


class LagReport(BaseModel):
    """Sync lag per day."""

    model_config = ConfigDict(frozen=True)

    since: date
    until: date
    days: list[DailyLag]


def register_analytics_routes(
    app: APIGatewayRestResolver,
    reader: Callable[[], AnalyticsReader],
    *,
    guard: Any,
    principal: Callable[[], Principal],
    today: Callable[[], datetime],
    problem_responses: dict[int, OpenAPIResponse],
) -> None:
    """Add the ``/v1/analytics`` routes to ``app``, each behind ``guard`` (read scope)."""

    def window(
        since: str | None, until: str | None, customer: str | None, kind: str | None
    ) -> tuple[AnalyticsWindow, tuple[str, ...] | None]:
        caller = principal()
        start, end = default_window(today().date())
        try:
            first = date.fromisoformat(since) if since else start
            last = date.fromisoformat(until) if until else end
        except ValueError as error:
            raise bad_request(f"since and until are dates (YYYY-MM-DD): {error}") from error
        code = customer.strip().lower() if customer else None
        if code is not None and caller.customers is not None and code not in caller.customers:
            raise forbidden(f"this API key may not see customer {code!r}")
        chosen = AnalyticsWindow(
            since=first, until=last, customers=(code,) if code else None, kind=kind
        )
        return chosen, caller.customers

    def answer(report: BaseModel, rows: list[Any], output: Format) -> Response[Any]:
        if output == "csv":
            return Response(status_code=200, content_type=CSV_CONTENT_TYPE, body=as_csv(rows))
        return Response(
            status_code=200, content_type="application/json", body=report.model_dump_json()
        )

    def responses(model: type[BaseModel]) -> dict[int, OpenAPIResponse]:
        return {
            200: {
                "description": "The report (JSON, or CSV with format=csv)",
                "content": {"application/json": {"model": model}, "text/csv": {}},
            },
            **problem_responses,
        }

    @app.get(
        "/v1/analytics/volume",
        middlewares=[guard],
        summary="Document changes per day",
        description="Created, updated, deleted, entered and left per day and status.",
        responses=responses(VolumeReport),
        tags=["analytics"],
    )
    def volume(
        since: SinceQuery = None,
        until: UntilQuery = None,
        customer: CustomerQuery = None,
        kind: KindQuery = None,
        format: FormatQuery = "json",
    ) -> Response[Any]:
        chosen, visible = window(since, until, customer, kind)
        days = reader().volume_by_day(chosen, visible)
        report = VolumeReport(since=chosen.since, until=chosen.until, days=days)
        return answer(report, days, format)

    @app.get(
        "/v1/analytics/breakdown",
        middlewares=[guard],
        summary="Totals per status, customer or kind",
        description="The window's changes summed per status, customer or kind, with net change.",
        responses=responses(BreakdownReport),
        tags=["analytics"],
    )
    def breakdown(
        by: Annotated[Literal["status", "customer", "kind"], Query()] = "status",
        since: SinceQuery = None,
        until: UntilQuery = None,
        customer: CustomerQuery = None,
        kind: KindQuery = None,
        format: FormatQuery = "json",
    ) -> Response[Any]:
        chosen, visible = window(since, until, customer, kind)
        rows = reader().breakdown(chosen, visible, by)
        report = BreakdownReport(since=chosen.since, until=chosen.until, by=by, rows=rows)
        return answer(report, rows, format)

    @app.get(
        "/v1/analytics/transitions",
        middlewares=[guard],
        summary="Status transitions",
        description="How many documents moved from one status to another in the window.",
        responses=responses(TransitionsReport),
        tags=["analytics"],
    )
    def transitions(
        since: SinceQuery = None,
        until: UntilQuery = None,
        customer: CustomerQuery = None,
        kind: KindQuery = None,
        format: FormatQuery = "json",
    ) -> Response[Any]:
        chosen, visible = window(since, until, customer, kind)
        found = reader().transitions(chosen, visible)
        report = TransitionsReport(since=chosen.since, until=chosen.until, transitions=found)
        return answer(report, found, format)

    @app.get(
        "/v1/analytics/sync-lag",
        middlewares=[guard],
        summary="Sync lag per day",
        description="How long S3's changes took to reach the index: the pipeline's, over every "
        "customer's changes, so only for a key of every customer.",
        responses=responses(LagReport),
        tags=["analytics"],
    )
    def sync_lag(
        since: SinceQuery = None,
        until: UntilQuery = None,
        format: FormatQuery = "json",
    ) -> Response[Any]:
        if principal().customers is not None:
            # Its counts are every customer's changes together: not for a restricted key.
            raise forbidden("sync lag covers every customer's changes: it needs a key for all")
        chosen, _ = window(since, until, None, None)
        days = reader().sync_lag(chosen)
        return answer(LagReport(since=chosen.since, until=chosen.until, days=days), days, format)
