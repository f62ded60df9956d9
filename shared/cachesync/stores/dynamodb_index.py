"""The index store: guarded writes, reads and queries of the DynamoDB index table.

All DynamoDB I/O of cachesync happens here, through an injected boto3 client. DynamoDB error codes
become cachesync errors in exactly one function, :func:`_translate`.

Writes are guarded: a write applies only if it supersedes the stored state of its key (see
``ordering.py``), decided by a condition expression, not by a read-then-write race. A document
and its customer link items are written in one transaction, so a customer query never sees a
customer the document no longer names.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from cachesync.clock import utc_now
from cachesync.exceptions import (
    CacheSyncError,
    ConcurrentModificationError,
    IndexRequestError,
    IndexStoreError,
    IndexUnavailableError,
    InvalidQueryError,
)
from cachesync.index_models import (
    DocumentSummary,
    IndexedDocument,
    IndexEntry,
    IndexQuery,
    PendingWrite,
    QueryPage,
    StoredState,
    Tombstone,
    WriteOutcome,
    WriteResult,
)
from cachesync.index_schema import (
    DOCUMENT_SORT_KEY,
    PARTITION_KEY,
    SORT_KEY,
    Attr,
)
from cachesync.ordering import OrderingFacts, is_same_state, supersedes
from cachesync.retry_policies import (
    DEFAULT_RETRY_POLICY,
    RetryPolicy,
    error_code,
)
from cachesync.retry_policies import is_transient_aws_error as _is_transient
from cachesync.stores.index_conditions import (
    UNREAD,
    Unread,
    guarded_write,
    still_revision,
)
from cachesync.stores.index_items import (
    STATE_ATTRIBUTES,
    Item,
    deserialize,
    document_from_item,
    document_items,
    document_key,
    gsi_position,
    is_live_document,
    link_key,
    linked_customers,
    links_to_remove,
    pending_claim,
    serialize,
    state_from_item,
    summary_from_item,
    tombstone_item,
    with_revision,
)
from cachesync.stores.index_query_plan import QueryPlan, next_position, plan_query
from cachesync.stores.page_tokens import (
    LANE_DONE,
    LaneResume,
    PageCursor,
    PageTokens,
    query_fingerprint,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import PutTypeDef, TransactWriteItemTypeDef

T = TypeVar("T")

# A guarded write re-reads and retries when the entry changed between the refusal that told us its
# customers and our next attempt (another writer got in between); each loop is one more writer.
MAX_WRITE_ATTEMPTS: Final = 5
DEFAULT_TOMBSTONE_TTL: Final = timedelta(days=30)


@dataclass(slots=True)
class _LaneRead:
    """What one lane of a period returned: entries in index-time order, and where it resumes."""

    entries: list[tuple[DocumentSummary, Item]]
    end: LaneResume


class _ConditionRefusedError(IndexStoreError):
    """Internal: a guarded write's condition failed; carries the stored item, if returned."""

    def __init__(self, item: Item | None) -> None:
        self.item = item
        super().__init__("condition refused")


class DynamoDBIndexStore:
    """The cachesync index in one DynamoDB table (layout: ``index_schema.py``).

    ``client`` is a boto3 DynamoDB client; build it with :func:`cachesync.aws_clients.client` so
    that botocore makes one attempt per call and ``retry_policy`` is the only retry layer.
    ``page_tokens`` issues and opens the continuation tokens of :meth:`query`.

    The item layout lives in ``index_items.py``, the write conditions in ``index_conditions.py``,
    query planning in ``index_query_plan.py`` and tokens in ``page_tokens.py``: this class does
    the I/O and the decisions that need it (retries after a refused condition).
    """

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        tombstone_ttl: timedelta = DEFAULT_TOMBSTONE_TTL,
        clock: Callable[[], datetime] = utc_now,
        page_tokens: PageTokens | None = None,
    ) -> None:
        self._client = client
        self._table = table_name
        self._retry = retry_policy
        self._tombstone_ttl = tombstone_ttl
        self._clock = clock
        self._tokens = page_tokens or PageTokens()

    @property
    def table_name(self) -> str:
        """The DynamoDB table this store reads and writes."""
        return self._table

    # ------------------------------------------------------------------ writes

    def put_document(self, entry: IndexEntry) -> WriteResult:
        """Index ``entry`` unless the index holds the same or a newer state of its key."""
        items = document_items(entry, self._clock())
        return self._guarded_write(items.document, items.links, entry.version.ordering(), UNREAD)

    def replace_document(self, entry: IndexEntry, expected: StoredState | None) -> bool:
        """Write ``entry`` if the key's entry is still ``expected`` (``None``: still absent).

        For callers that establish the truth themselves (S3's current state, verified): no
        ordering check, only proof that nobody wrote since ``expected`` was read.
        """
        items = document_items(entry, self._clock())
        return self._replace(items.document, items.links, expected)

    def replace_with_tombstone(self, tombstone: Tombstone, expected: StoredState | None) -> bool:
        """Write a tombstone if the entry is still ``expected`` (see :meth:`replace_document`)."""
        return self._replace(self._tombstone_item(tombstone), [], expected)

    # ------------------------------------------------------------------ write-through

    def begin_pending(self, bucket: str, key: str, operation: str) -> PendingWrite:
        """Claim the entry of ``bucket/key`` for a write-through: replace it by a pending marker.

        The marker keeps the replaced entry's ordering facts and customers (so events keep their
        guards and know which customer links exist) and has no GSI keys and no document, so reads
        and queries do not see it. Customer links stay: they describe a version S3 still holds.

        One ``UpdateItem``: it sets the marker's own attributes, leaves the carried ones in place
        (defaults where the key had no entry), removes the rest, and returns the replaced entry
        (``ALL_OLD``). The replaced entry is read and replaced atomically: no condition, no read
        before, and no other writer can get in between (the last claim wins; an earlier claimant
        then finds its marker replaced at commit and follows S3).
        """
        claim = pending_claim(bucket, key, operation, self._clock())
        response = self._call(
            "UpdateItem",
            lambda: self._client.update_item(
                TableName=self._table,
                Key=serialize(claim.key),
                UpdateExpression=claim.update_expression,
                ExpressionAttributeNames=claim.names,
                ExpressionAttributeValues=serialize(claim.values),
                ReturnValues="ALL_OLD",
            ),
        )
        raw = response.get("Attributes")
        previous_item = deserialize(raw) if raw else None
        return PendingWrite(
            bucket=bucket,
            key=key,
            marker=state_from_item(claim.marker(previous_item)),
            previous=state_from_item(previous_item) if previous_item else None,
            previous_item=previous_item,
        )

    def rollback_pending(self, pending: PendingWrite) -> bool:
        """Put back the entry a pending write replaced, if the marker is still ours.

        ``False``: a newer write or event replaced the marker meanwhile; it is left alone.
        """
        try:
            if pending.previous_item is None:
                self._delete_if_revision(pending.bucket, pending.key, pending.marker.revision_token)
            else:
                self._put_if_revision(pending.previous_item, pending.marker.revision_token)
        except _ConditionRefusedError:
            return False
        return True

    def commit_document(self, pending: PendingWrite, entry: IndexEntry) -> bool:
        """Replace our pending marker by ``entry``; ``False`` if the marker is no longer ours."""
        return self.replace_document(entry, pending.marker)

    def commit_tombstone(self, pending: PendingWrite, tombstone: Tombstone) -> bool:
        """Replace our pending marker by a tombstone; ``False`` if the marker is no longer ours."""
        return self.replace_with_tombstone(tombstone, pending.marker)

    def _put_if_revision(self, item: Item, revision: str) -> None:
        self._call(
            "PutItem",
            lambda: self._client.put_item(
                TableName=self._table,
                Item=serialize(item),
                **still_revision(revision).request_arguments(),
            ),
        )

    def _delete_if_revision(self, bucket: str, key: str, revision: str) -> None:
        self._call(
            "DeleteItem",
            lambda: self._client.delete_item(
                TableName=self._table,
                Key=serialize(document_key(bucket, key)),
                **still_revision(revision).request_arguments(),
            ),
        )

    def _replace(self, item: Item, links: list[Item], expected: StoredState | None) -> bool:
        try:
            self._write(item, links, None, expected)
        except _ConditionRefusedError:
            return False
        return True

    def put_tombstone(self, tombstone: Tombstone) -> WriteResult:
        """Replace the entry of a deleted key by a tombstone unless the index holds newer state.

        The tombstone is in no GSI, is never returned by reads or queries, and expires after the
        store's tombstone TTL. A late create after that is still refused by its S3 read (the
        object is gone), so the TTL bounds storage, not correctness.
        """
        # A delete removes the customer links, which needs the stored customers: read them first
        # (one consistent read is cheaper than a refused transaction).
        previous = self.get_state(tombstone.bucket, tombstone.key)
        if previous is not None and not supersedes(tombstone.ordering(), previous.ordering):
            outcome = (
                WriteOutcome.DUPLICATE
                if is_same_state(tombstone.ordering(), previous.ordering)
                else WriteOutcome.STALE
            )
            return WriteResult(outcome=outcome, previous=previous)
        return self._guarded_write(
            self._tombstone_item(tombstone), [], tombstone.ordering(), previous
        )

    def _tombstone_item(self, tombstone: Tombstone) -> Item:
        return tombstone_item(tombstone, self._clock(), self._tombstone_ttl)

    def _guarded_write(
        self,
        item: Item,
        links: list[Item],
        new: OrderingFacts,
        previous: StoredState | Unread | None,
    ) -> WriteResult:
        bucket, key = str(item[Attr.BUCKET]), str(item[Attr.KEY])
        for _ in range(MAX_WRITE_ATTEMPTS):
            try:
                self._write(item, links, new, previous)
            except _ConditionRefusedError as refused:
                stored = state_from_item(refused.item) if refused.item else None
                if stored is None:
                    # The condition named an existing entry that has vanished since; read again.
                    previous = self.get_state(bucket, key)
                    continue
                if not supersedes(new, stored.ordering):
                    same = is_same_state(new, stored.ordering)
                    outcome = WriteOutcome.DUPLICATE if same else WriteOutcome.STALE
                    return WriteResult(outcome=outcome, previous=stored)
                # Older, but it names other customers than we assumed, or it changed since we
                # read it: retry knowing exactly which links to remove.
                previous = stored
                continue
            known = None if isinstance(previous, Unread) else previous
            return WriteResult(outcome=WriteOutcome.APPLIED, previous=known)
        raise ConcurrentModificationError(bucket, key, MAX_WRITE_ATTEMPTS)

    def _write(
        self,
        item: Item,
        links: list[Item],
        new: OrderingFacts | None,
        previous: StoredState | Unread | None,
    ) -> None:
        """One conditional write: ``new`` must supersede the stored state (unless ``None``),
        and the stored entry must be ``previous`` (or, when unread, name the same customers)."""
        condition = guarded_write(new, previous, str(item[Attr.CUSTOMERS_KEY]))
        removed = (
            links_to_remove(previous.customers, item[Attr.CUSTOMERS])
            if isinstance(previous, StoredState)
            else []
        )
        item = with_revision(item)
        put: PutTypeDef = {
            "TableName": self._table,
            "Item": serialize(item),
            **condition.request_arguments(),  # type: ignore[typeddict-item]
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if not links and not removed:
            self._call("PutItem", lambda: self._client.put_item(**put))
            return
        pk = item[PARTITION_KEY]
        actions: list[TransactWriteItemTypeDef] = [{"Put": put}]
        actions += [{"Put": {"TableName": self._table, "Item": serialize(link)}} for link in links]
        actions += [
            {"Delete": {"TableName": self._table, "Key": serialize(link_key(pk, code))}}
            for code in removed
        ]
        self._call(
            "TransactWriteItems", lambda: self._client.transact_write_items(TransactItems=actions)
        )

    # ------------------------------------------------------------------ reads

    def get_state(self, bucket: str, key: str) -> StoredState | None:
        """The stored state of ``bucket/key`` (tombstones included), read consistently."""
        item = self._get_item(bucket, key, consistent=True)
        return state_from_item(item) if item else None

    def get_document(
        self, bucket: str, key: str, *, consistent: bool = False
    ) -> IndexedDocument | None:
        """The indexed document at ``bucket/key``; ``None`` when absent, deleted or expired."""
        item = self._get_item(bucket, key, consistent=consistent)
        if not item or not is_live_document(item, self._clock()):
            return None
        return document_from_item(item)

    def read(
        self, bucket: str, key: str, *, consistent: bool = False
    ) -> tuple[IndexedDocument | None, StoredState | None]:
        """One read, both views: the live document (as :meth:`get_document`) and the raw state
        (tombstones, pending writes and expired entries included)."""
        item = self._get_item(bucket, key, consistent=consistent)
        if not item:
            return None, None
        live = is_live_document(item, self._clock())
        return (document_from_item(item) if live else None), state_from_item(item)

    def scan_entries(self, bucket: str, prefix: str = "") -> Iterator[tuple[str, StoredState]]:
        """Every key of ``bucket`` under ``prefix`` that has an entry (documents, pending writes
        and tombstones), with its state. A full table scan: for verify and reconcile jobs."""
        start: Item | None = None
        while True:
            request: dict[str, Any] = {
                "TableName": self._table,
                "ConsistentRead": True,
                "FilterExpression": (
                    "#sk = :doc AND #bucket = :bucket AND begins_with(#key, :prefix)"
                ),
                # Only what a state needs: bodies and summaries would dominate the scan's cost.
                "ProjectionExpression": ", ".join(f"#p{n}" for n in range(len(STATE_ATTRIBUTES))),
                "ExpressionAttributeNames": {
                    "#sk": SORT_KEY,
                    "#bucket": Attr.BUCKET,
                    "#key": Attr.KEY,
                    **{f"#p{n}": name for n, name in enumerate(STATE_ATTRIBUTES)},
                },
                "ExpressionAttributeValues": serialize(
                    {":doc": DOCUMENT_SORT_KEY, ":bucket": bucket, ":prefix": prefix}
                ),
            }
            if start:
                request["ExclusiveStartKey"] = serialize(start)
            response = self._call("Scan", lambda r=request: self._client.scan(**r))  # type: ignore[misc]
            for raw in response.get("Items", []):
                item = deserialize(raw)
                yield str(item[Attr.KEY]), state_from_item(item)
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            start = deserialize(last)

    def remove_entry(self, bucket: str, key: str, expected: StoredState) -> bool:
        """Delete the entry and its customer links if it is still ``expected`` (for entries
        past their TTL that DynamoDB has not deleted yet); ``False`` if it changed."""
        entry_key = document_key(bucket, key)
        actions: list[TransactWriteItemTypeDef] = [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": serialize(entry_key),
                    **still_revision(expected.revision_token).request_arguments(),  # type: ignore[typeddict-item]
                }
            }
        ]
        actions += [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": serialize(link_key(entry_key[PARTITION_KEY], code)),
                }
            }
            for code in linked_customers(expected.customers)
        ]
        try:
            self._call(
                "TransactWriteItems",
                lambda: self._client.transact_write_items(TransactItems=actions),
            )
        except _ConditionRefusedError:
            return False
        return True

    def _get_item(self, bucket: str, key: str, *, consistent: bool) -> Item | None:
        response = self._call(
            "GetItem",
            lambda: self._client.get_item(
                TableName=self._table,
                Key=serialize(document_key(bucket, key)),
                ConsistentRead=consistent,
            ),
        )
        raw = response.get("Item")
        return deserialize(raw) if raw else None

    # ------------------------------------------------------------------ queries

    def query(self, query: IndexQuery) -> QueryPage:
        """One page of documents matching ``query``, in index-time order.

        Walks the time periods of the window in order until the page is full; in each period the
        plan's lanes (one per status when several are asked for) are merged in index-time order.
        Expired entries are filtered out (DynamoDB deletes them only eventually).
        """
        fingerprint = query_fingerprint(query)
        cursor = self._tokens.open(query.next_token, fingerprint) if query.next_token else None
        plan = plan_query(query, self._clock(), cursor.window if cursor else None)
        if cursor is not None and len(cursor.lanes) != len(plan.lanes):
            raise InvalidQueryError("next_token is not a token this index issued")
        fresh: tuple[LaneResume, ...] = (None,) * len(plan.lanes)
        items: list[DocumentSummary] = []
        for position in range(cursor.position if cursor else 0, len(plan.periods)):
            resume = cursor.lanes if cursor and position == cursor.position else fresh
            taken, lanes = self._read_period(plan, position, resume, query.limit - len(items))
            items += taken
            if len(items) >= query.limit:
                return QueryPage(
                    items=items, next_token=self._next_token(plan, fingerprint, position, lanes)
                )
        return QueryPage(items=items, next_token=None)

    def _next_token(
        self, plan: QueryPlan, fingerprint: str, position: int, lanes: tuple[LaneResume, ...]
    ) -> str | None:
        resume_at = next_position(plan, position, all(lane == LANE_DONE for lane in lanes))
        if resume_at is None:
            return None
        if resume_at != position:
            lanes = (None,) * len(plan.lanes)
        cursor = PageCursor(fingerprint, resume_at, lanes, (plan.since, plan.until))
        return self._tokens.issue(cursor)

    def _read_period(
        self, plan: QueryPlan, position: int, resume: tuple[LaneResume, ...], wanted: int
    ) -> tuple[list[DocumentSummary], tuple[LaneResume, ...]]:
        """Up to ``wanted`` entries of one period, its lanes merged in index-time order, and
        where each lane resumes after them."""
        lanes = [
            self._read_lane(plan, position, lane, start, wanted)
            for lane, start in enumerate(resume)
        ]
        sort_key = plan.index.sort_key
        merged = heapq.merge(
            *(
                [(item[sort_key], lane, n) for n, (_, item) in enumerate(read.entries)]
                for lane, read in enumerate(lanes)
            ),
            reverse=not plan.ascending,
        )
        taken = list(itertools.islice(merged, wanted))
        used = [0] * len(lanes)
        for _, lane, _ in taken:
            used[lane] += 1
        resumes: list[LaneResume] = []
        for lane, read in enumerate(lanes):
            if used[lane] == len(read.entries):
                resumes.append(read.end)
            elif used[lane] == 0:
                resumes.append(resume[lane])
            else:
                # A merged page can stop inside what a lane returned: resume after the last entry
                # taken from it (a real item's keys are a valid ExclusiveStartKey).
                resumes.append(gsi_position(plan.index, read.entries[used[lane] - 1][1]))
        summaries = [lanes[lane].entries[n][0] for _, lane, n in taken]
        return summaries, tuple(resumes)

    def _read_lane(
        self, plan: QueryPlan, position: int, lane: int, start: LaneResume, wanted: int
    ) -> _LaneRead:
        """At least ``wanted`` entries of one lane of a period from ``start`` (fewer: the lane
        ends), and where it resumes after them."""
        read = _LaneRead(entries=[], end=LANE_DONE)
        if start == LANE_DONE:
            return read
        start_key = start if isinstance(start, dict) else None
        while True:
            request: dict[str, Any] = {
                "TableName": self._table,
                **plan.period_request(position, lane),
                # Limit counts items read before the filter: never read past what the page may
                # need, so that the last evaluated key is where this lane resumes.
                "Limit": wanted - len(read.entries),
            }
            if start_key:
                request["ExclusiveStartKey"] = serialize(start_key)
            response = self._call("Query", lambda r=request: self._client.query(**r))  # type: ignore[misc]
            for raw in response.get("Items", []):
                item = deserialize(raw)
                read.entries.append((summary_from_item(item), item))
            last_raw = response.get("LastEvaluatedKey")
            if not last_raw:
                return read
            start_key = deserialize(last_raw)
            read.end = start_key
            if len(read.entries) >= wanted:
                return read

    # ------------------------------------------------------------------ plumbing

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        try:
            return self._retry.call(operation, fn)
        except ClientError as error:
            raise _translate(operation, error) from error
        except BotoCoreError as error:
            raise IndexUnavailableError(operation, type(error).__name__, str(error)) from error


def _translate(operation: str, error: ClientError) -> CacheSyncError:
    """The one place DynamoDB error codes become cachesync errors."""
    code = error_code(error)
    message = str(error.response.get("Error", {}).get("Message", error))
    # botocore adds the modelled fields of these errors (Item, CancellationReasons) to the
    # response; the stubs type the response without them.
    response: dict[str, Any] = dict(error.response)
    if code == "ConditionalCheckFailedException":
        raw = response.get("Item")
        return _ConditionRefusedError(deserialize(raw) if raw else None)
    if code == "TransactionCanceledException":
        reasons: list[dict[str, Any]] = response.get("CancellationReasons", [])
        if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
            raw = reasons[0].get("Item")
            return _ConditionRefusedError(deserialize(raw) if raw else None)
        message = f"{message} (reasons: {[r.get('Code') for r in reasons]})"
    if _is_transient(error):
        return IndexUnavailableError(operation, code, message)
    return IndexRequestError(operation, code, message)
