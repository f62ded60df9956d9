"""Use case: a backfill that spans Lambda invocations.

One invocation runs :class:`~cachesync.backfill.Backfill` page by page while its time lasts and
returns a ``continuation`` (the backfill's checkpoint, as JSON). Passing it back in the same
request resumes after the last finished page; with ``self_invoke`` the function does that itself,
asynchronously, until the backfill is done. Every invocation finishes at least one page, so the
chain always progresses and ends (the listing is finite); the result equals one uninterrupted
run's, because the backfill's writes are guarded and a resumed page is only ever redone
idempotently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from cachesync.backfill import (
    Backfill,
    BackfillCheckpoint,
    BackfillFilters,
    BackfillSummary,
    checkpoint_json,
)
from cachesync.exceptions import InvalidRequestError
from cachesync.rate_limit import Deadline
from cachesync.requests import BackfillRequest

DEFAULT_STOP_MARGIN_SECONDS: Final = 30.0
# Pages differ in duration (object sizes, throttling): keep room for this many of the slowest.
PAGE_SAFETY_FACTOR: Final = 2.0
# An asynchronous invocation's payload is limited (256 KB); a continuation stays well below.
MAX_CONTINUATION_BYTES: Final = 128 * 1024

Reinvoke = Callable[[dict[str, Any]], None]


class BackfillInvocationResult(BaseModel):
    """What one invocation did, and how to go on."""

    done: bool
    continuation: str | None
    """Pass it back as the request's ``continuation`` to resume; ``None`` once done."""
    summary: BackfillSummary
    """The counters of the whole backfill so far (every invocation of the chain)."""
    dry_run: bool
    pages: int
    """Pages this invocation finished."""
    reinvoked: bool
    """Whether this invocation queued the next one (``self_invoke``)."""


def backfill_filters(request: BackfillRequest) -> BackfillFilters:
    """The filters a backfill request selects objects with."""
    return BackfillFilters(
        prefixes=tuple(request.prefixes),
        since=request.since,
        until=request.until,
        customer=request.customer,
        kind=request.type,
    )


def run_backfill_invocation(
    backfill: Backfill,
    request: BackfillRequest,
    *,
    deadline: Deadline,
    reinvoke: Reinvoke | None,
    stop_margin_seconds: float = DEFAULT_STOP_MARGIN_SECONDS,
) -> BackfillInvocationResult:
    """Run ``request`` (from its continuation, if any) until done or out of time.

    Before each page after the first, stops if less than ``stop_margin_seconds`` (or twice the
    slowest page so far) remains before ``deadline``. With ``request.self_invoke`` and a
    ``reinvoke`` callable, an unfinished backfill hands ``reinvoke`` the next payload: the same
    request with the continuation. Raises :class:`InvalidRequestError` for a continuation that is
    not one, or belongs to another bucket, other filters, or the other kind of run (dry or not).
    """
    filters = backfill_filters(request)
    start = _resume_from(backfill, filters, request)
    if start is not None and start.done:
        return _result(start, request, continuation=None, pages=0, reinvoked=False)
    pacer = _PagePacer(deadline, stop_margin_seconds)
    last = backfill.run(
        filters,
        checkpoint=start,
        dry_run=request.dry_run,
        should_stop=pacer.should_stop,
        on_page=pacer.page_done,
        # Index writes that would wait past the deadline fail (listed in the summary) instead of
        # Lambda killing the invocation, which would lose its continuation.
        deadline=deadline,
    )
    if last.done:
        return _result(last, request, continuation=None, pages=pacer.pages, reinvoked=False)
    continuation = checkpoint_json(_fit(last))
    reinvoked = False
    if request.self_invoke and reinvoke is not None:
        # Last step: if anything after it failed, Lambda's retry of this invocation would start
        # a second chain alongside the first (harmless, its writes are duplicates, but costly).
        reinvoke(_next_payload(request, continuation))
        reinvoked = True
    return _result(last, request, continuation=continuation, pages=pacer.pages, reinvoked=reinvoked)


class _PagePacer:
    """Decides before each page whether the invocation has time for one more."""

    def __init__(self, deadline: Deadline, margin_seconds: float) -> None:
        if not margin_seconds >= 0:
            raise ValueError(f"margin_seconds must be >= 0, got {margin_seconds}")
        self._deadline = deadline
        self._margin = margin_seconds
        self._page_started: float | None = None
        self._slowest = 0.0
        self.pages = 0

    def should_stop(self) -> bool:
        if self.pages > 0:
            reserve = max(self._margin, PAGE_SAFETY_FACTOR * self._slowest)
            if self._deadline.remaining_seconds() < reserve:
                return True
        # Never before the first page: an invocation that finished none would hand the same
        # continuation on forever.
        self._page_started = self._deadline.clock()
        return False

    def page_done(self, _checkpoint: BackfillCheckpoint) -> None:
        if self._page_started is not None:
            self._slowest = max(self._slowest, self._deadline.clock() - self._page_started)
        self.pages += 1


def _resume_from(
    backfill: Backfill, filters: BackfillFilters, request: BackfillRequest
) -> BackfillCheckpoint | None:
    """The request's continuation, checked against the job it claims to continue."""
    if request.continuation is None:
        return None
    try:
        checkpoint = BackfillCheckpoint.model_validate_json(request.continuation)
    except ValidationError as error:
        raise InvalidRequestError(
            "not a continuation returned by this function", field="continuation"
        ) from error
    fresh = backfill.start(filters)
    if checkpoint.version != fresh.version:
        raise InvalidRequestError(
            f"continuation format {checkpoint.version} is not {fresh.version}; start again",
            field="continuation",
        )
    if checkpoint.bucket != fresh.bucket or checkpoint.filters != fresh.filters:
        raise InvalidRequestError(
            "the continuation belongs to another backfill (other bucket, prefixes or filters)",
            field="continuation",
        )
    if not 0 <= checkpoint.prefix_index < len(filters.prefixes):
        raise InvalidRequestError("the continuation's prefix is out of range", field="continuation")
    # The checkpoint does not record whether it came from a dry run; its counters tell, as soon
    # as a page counted an object as written or as "would be". Resuming a dry run for real
    # would skip the pages the dry run only looked at. Pages whose objects were all unchanged,
    # invalid or filtered look alike in both kinds of run, and a real run would not write there
    # either, so the counters are enough.
    written = checkpoint.summary.indexed + checkpoint.summary.skipped_newer
    if request.dry_run and written:
        raise InvalidRequestError(
            "the continuation comes from a real run, not a dry run", field="continuation"
        )
    if not request.dry_run and checkpoint.summary.would_index:
        raise InvalidRequestError(
            "the continuation comes from a dry run: start the real run afresh",
            field="continuation",
        )
    return checkpoint


def _fit(checkpoint: BackfillCheckpoint) -> BackfillCheckpoint:
    """``checkpoint`` small enough to travel in an asynchronous invocation's payload.

    Only the listed reasons can grow large (up to 100 keys of up to 1 KB each, twice); past the
    limit they are dropped from the continuation, the counters stay. Each invocation's result
    (and log) still lists what it saw.
    """
    if len(checkpoint_json(checkpoint).encode("utf-8")) <= MAX_CONTINUATION_BYTES:
        return checkpoint
    summary = checkpoint.summary.model_copy(update={"invalid_reasons": {}, "failures": {}})
    return checkpoint.model_copy(update={"summary": summary})


def _next_payload(request: BackfillRequest, continuation: str) -> dict[str, Any]:
    next_request = request.model_copy(update={"continuation": continuation})
    payload: dict[str, Any] = next_request.model_dump(mode="json")
    return payload


def _result(
    checkpoint: BackfillCheckpoint,
    request: BackfillRequest,
    *,
    continuation: str | None,
    pages: int,
    reinvoked: bool,
) -> BackfillInvocationResult:
    return BackfillInvocationResult(
        done=checkpoint.done,
        continuation=continuation,
        summary=checkpoint.summary,
        dry_run=request.dry_run,
        pages=pages,
        reinvoked=reinvoked,
    )
