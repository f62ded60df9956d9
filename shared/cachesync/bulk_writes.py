"""Many puts and deletes in one call, each its own write-through saga.

Operations on different keys run at once (bounded by ``workers``); operations on one key run one
after the other, in the order given, so that a bulk request that puts and then deletes a key
means just that. A failed operation never undoes another: each is a saga that either completed
or rolled itself back, so nothing is half-written. Results come back in request order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from aws_lambda_powertools import Logger
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from cachesync.exceptions import CacheSyncError, InvalidRequestError
from cachesync.rate_limit import Deadline
from cachesync.requests import WriteRequest
from cachesync.write_through import DocumentWriter, WriteReceipt, execute_write


class BulkOperation(BaseModel):
    """One put or delete of a bulk request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # "op" too: a line of `put --from-jsonl` may be an item of POST /v1/documents/bulk as is.
    operation: Literal["put", "delete"] = Field(validation_alias=AliasChoices("operation", "op"))
    key: str = Field(min_length=1, max_length=1024)
    document: dict[str, Any] | None = None
    """The document of a put (a delete has none)."""
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=256)

    @model_validator(mode="after")
    def _document_only_with_a_put(self) -> BulkOperation:
        if self.operation == "put" and self.document is None:
            raise ValueError("a put needs a document")
        if self.operation == "delete" and self.document is not None:
            raise ValueError("a delete takes no document")
        return self


class BulkOutcome(BaseModel):
    """What became of one operation: its receipt, or the error that stopped it."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    position: int
    """The operation's index in the request."""
    operation: BulkOperation
    receipt: WriteReceipt | None = None
    error: CacheSyncError | None = Field(default=None, exclude=True)
    """Mapped to an HTTP problem or a CLI message by the caller (``None``: it succeeded)."""

    @property
    def succeeded(self) -> bool:
        """Whether the operation completed."""
        return self.error is None


class BulkReport(BaseModel):
    """Every operation's outcome, in request order."""

    model_config = ConfigDict(frozen=True)

    outcomes: list[BulkOutcome]

    @property
    def failed(self) -> int:
        """How many operations failed."""
        return sum(1 for outcome in self.outcomes if not outcome.succeeded)


class _UnexpectedError(CacheSyncError):
    """An operation failed on a defect, not on its input: logged with its traceback."""

    def __init__(self, key: str, error: Exception) -> None:
        self.key = key
        super().__init__(f"{key}: unexpected {type(error).__name__}")


class BulkWriter:
    """Runs bulk operations through one :class:`DocumentWriter`."""

    def __init__(self, writer: DocumentWriter, *, workers: int = 8, logger: Logger | None = None):
        if workers < 1:
            raise InvalidRequestError("workers must be at least 1", field="workers")
        self._writer = writer
        self._workers = workers
        self._logger = logger or Logger(service="cachesync")

    def run(
        self,
        operations: Sequence[BulkOperation],
        *,
        dry_run: bool = False,
        deadline: Deadline | None = None,
        on_outcome: Callable[[BulkOutcome], None] | None = None,
        check: Callable[[BulkOperation], None] | None = None,
    ) -> BulkReport:
        """Run ``operations``; ``on_outcome`` hears of each as it ends (from worker threads).

        ``check`` runs before each operation, on its worker thread (the API's tenancy checks read
        S3): raising a :class:`CacheSyncError` fails that operation alone, unwritten.
        """
        by_key: dict[str, list[int]] = {}
        for position, operation in enumerate(operations):
            by_key.setdefault(operation.key, []).append(position)
        outcomes: list[BulkOutcome | None] = [None] * len(operations)

        def run_key(positions: list[int]) -> None:
            for position in positions:
                outcome = self._run_one(position, operations[position], dry_run, deadline, check)
                outcomes[position] = outcome
                if on_outcome is not None:
                    try:
                        on_outcome(outcome)
                    except Exception:  # a listener (a progress bar) never costs an outcome
                        self._logger.exception("bulk outcome listener failed")

        with ThreadPoolExecutor(
            max_workers=min(self._workers, max(1, len(by_key))), thread_name_prefix="cachesync-bulk"
        ) as pool:
            for future in [pool.submit(run_key, positions) for positions in by_key.values()]:
                future.result()
        return BulkReport(outcomes=[outcome for outcome in outcomes if outcome is not None])

    def _run_one(
        self,
        position: int,
        operation: BulkOperation,
        dry_run: bool,
        deadline: Deadline | None,
        check: Callable[[BulkOperation], None] | None,
    ) -> BulkOutcome:
        try:
            if check is not None:
                check(operation)
            # The write_through function's own dispatch: a bulk item is one of its requests.
            request = WriteRequest(**operation.model_dump(), dry_run=dry_run)
            receipt = execute_write(self._writer, request, deadline=deadline)
        except CacheSyncError as error:
            return BulkOutcome(position=position, operation=operation, error=error)
        except Exception as error:  # one operation's defect must not sink the others
            self._logger.exception(
                "bulk operation failed unexpectedly", extra={"key": operation.key}
            )
            return BulkOutcome(
                position=position, operation=operation, error=_UnexpectedError(operation.key, error)
            )
        return BulkOutcome(position=position, operation=operation, receipt=receipt)
