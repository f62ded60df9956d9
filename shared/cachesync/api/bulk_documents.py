"""``POST /v1/documents/bulk``: many puts and deletes in one request, each its own saga.

The route (app.py) authenticates the caller and reads the body on the request's thread; the
items then run on :class:`~cachesync.bulk_writes.BulkWriter`'s threads (bounded by
``api_bulk_concurrency``; items on one key one after the other, in request order). Nothing here
touches the resolver: Powertools keeps the current request in class attributes, which worker
threads must not read. Each item's per-request checks (the single routes' control characters and
tenancy) run on its worker thread, as a ``check`` that fails that item alone.

A failed item never rolls back a succeeded one: each is a write-through saga that completed or
rolled itself back. The answer lists every item in request order; HTTP 200 when all succeeded,
207 (Multi-Status) when at least one failed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from aws_lambda_powertools import Logger

from cachesync.api.models import (
    BulkItemResult,
    BulkRequest,
    BulkResult,
    ProblemDetails,
    WriteResult,
)
from cachesync.api.problems import problem_for
from cachesync.bulk_writes import BulkOperation, BulkOutcome, BulkWriter
from cachesync.rate_limit import Deadline
from cachesync.write_through import DocumentWriter

MULTI_STATUS: Final = 207
RATE_WAIT_SECONDS: Final = 20.0
"""How long, from the request's start, an item may wait for the writers' write rate limit: past
it the item is its own 429, well before API Gateway's 29 s integration timeout would turn the
whole request into a 504 of unknown outcome."""


def bulk_operations(
    request: BulkRequest, scoped: Callable[[str | None], str | None]
) -> list[BulkOperation]:
    """The request's items as bulk operations, idempotency keys scoped by ``scoped`` (to the
    caller's API key, as the single routes do)."""
    return [
        BulkOperation(
            operation=item.op,
            key=item.key,
            document=item.document,
            idempotency_key=scoped(item.idempotency_key),
        )
        for item in request.items
    ]


def run_bulk(
    writer: DocumentWriter,
    operations: list[BulkOperation],
    *,
    concurrency: int,
    check: Callable[[BulkOperation], None],
    logger: Logger,
) -> tuple[int, BulkResult]:
    """Run ``operations`` (at most ``concurrency`` at once); the HTTP status and the body."""
    report = BulkWriter(writer, workers=concurrency, logger=logger).run(
        operations, check=check, deadline=Deadline.after(RATE_WAIT_SECONDS)
    )
    results = [item_result(outcome) for outcome in report.outcomes]
    for result in results:
        if result.status >= 500:
            # The item's problem says nothing of the internals: the log keeps the reason.
            logger.warning(
                "bulk item failed",
                extra={
                    "index": result.index,
                    "status": result.status,
                    "problem": result.problem.type if result.problem else None,
                },
            )
    failed = sum(1 for result in results if result.receipt is None)
    body = BulkResult(items=results, succeeded=len(results) - failed, failed=failed)
    return (MULTI_STATUS if failed else 200), body


def item_result(outcome: BulkOutcome) -> BulkItemResult:
    """One outcome as the API reports it: a receipt (200), or the problem a single request
    would have answered."""
    operation = outcome.operation
    if outcome.error is None and outcome.receipt is not None:
        return BulkItemResult(
            index=outcome.position,
            key=operation.key,
            op=operation.operation,
            status=200,
            receipt=WriteResult.model_validate(outcome.receipt.model_dump(mode="json")),
        )
    error = outcome.error if outcome.error is not None else RuntimeError("no receipt")
    problem = problem_for(error)
    return BulkItemResult(
        index=outcome.position,
        key=operation.key,
        op=operation.operation,
        status=problem.status,
        problem=ProblemDetails.model_validate(problem.body(None)),
    )
