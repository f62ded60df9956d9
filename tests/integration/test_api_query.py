"""Query API over HTTP: every filter combination, its index, page walks, projection, windows."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from cachesync.index_models import Tombstone, WriteSource
from tests.integration.api_http import ApiWorld, api_world, change, index_document

__all__ = ["api_world"]

# Documents spread over 2025-2026 with empty months in between; times are distinct.
MONTHS = (1, 1, 2, 5, 5, 5, 6, 9, 9, 11)
SINCE = "2025-01-01"
UNTIL = "2027-01-01"


@dataclass(frozen=True)
class Seeded:
    key: str
    customers: tuple[str, ...]
    status: str
    kind: str
    time: datetime


def _seed_documents() -> list[Seeded]:
    customers_cycle = (("acme",), ("globex",), ("acme", "globex"), ("initech",), ("globex",))
    documents = []
    for number in range(36):
        year = 2025 + number % 2
        when = datetime(year, MONTHS[number % len(MONTHS)], 1 + number % 27, 8, number, tzinfo=UTC)
        kind = "announcement" if number % 6 == 5 else "change"
        status = (
            ("published" if number % 4 else "draft")
            if kind == "announcement"
            else (("approved", "draft", "scheduled")[number % 3])
        )
        documents.append(
            Seeded(
                key=f"q/{kind}-{number:02d}.json",
                customers=customers_cycle[number % len(customers_cycle)],
                status=status,
                kind=kind,
                time=when,
            )
        )
    return documents


SEEDED = _seed_documents()


@pytest.fixture(scope="module")
def seeded(api_world: ApiWorld) -> list[Seeded]:
    """The documents above, in the index."""
    for doc in SEEDED:
        index_document(
            api_world,
            doc.key,
            change(
                doc.key.rsplit("/", 1)[1],
                customers=doc.customers,
                status=doc.status,
                modified=doc.time,
                kind=doc.kind,
            ),
        )
    return SEEDED


def walk(
    world: ApiWorld, key: str, params: Mapping[str, Any], limit: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every item of a query, page by page; also each page's body (without items)."""
    items: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(200):
        query = {**params, "limit": limit, **({"next_token": token} if token else {})}
        reply = world.get(f"/v1/documents?{urlencode(query, doseq=True)}", key)
        assert reply.status == 200, reply.body
        page = reply.json()
        assert page["count"] == len(page["items"])
        # A page is never empty while later items exist, and never over the limit.
        assert page["items"] or "next_token" not in page or page["next_token"] is None
        assert len(page["items"]) <= limit
        items += page["items"]
        pages.append({k: v for k, v in page.items() if k != "items"})
        token = page.get("next_token")
        if not token:
            # The last page has no next_token at all (not null), as the API promises.
            assert "next_token" not in page
            return items, pages
    raise AssertionError("the walk did not end")


class Churn:
    """Documents of one customer that come and go in a thread while a walk runs: each one
    written, every second one replaced by a tombstone again. At most ``limit`` (a walk a page at
    a time must overtake them); a failure in the thread fails the test, not just warns."""

    def __init__(
        self,
        world: ApiWorld,
        prefix: str,
        customer: str,
        moment: Callable[[int], datetime],
        status: Callable[[int], str] = lambda _: "approved",
        *,
        limit: int = 1_000,
        pause: float = 0.0,
    ) -> None:
        self.world, self.prefix, self.customer = world, prefix, customer
        self.moment, self.status, self.limit, self.pause = moment, status, limit, pause
        self.written: list[str] = []
        self.failures: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> Churn:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            for number in range(self.limit):
                if self._stop.is_set():
                    return
                self._churn_one(number)
                self._stop.wait(self.pause)
        except BaseException as error:
            self.failures.append(error)
            raise

    def _churn_one(self, number: int) -> None:
        doc_key = f"{self.prefix}/churn-{number:03d}.json"
        body = change(
            f"C{number}",
            customers=(self.customer,),
            status=self.status(number),
            modified=self.moment(number),
        )
        index_document(self.world, doc_key, body)
        self.written.append(doc_key)
        if number % 2:
            self.world.index.put_tombstone(
                Tombstone(
                    bucket=self.world.bucket,
                    key=self.written[number - 1],
                    deleted_at=datetime.now(UTC),
                    source=WriteSource.EVENT,
                )
            )


def expected(
    seeded: list[Seeded],
    *,
    customer: str | None = None,
    statuses: tuple[str, ...] = (),
    kind: str | None = None,
    within: tuple[str, ...] | None = None,
    order: str = "desc",
) -> list[str]:
    matching = [
        doc
        for doc in seeded
        if (customer is None or customer in doc.customers)
        and (not statuses or doc.status in statuses)
        and (kind is None or doc.kind == kind)
        and (within is None or any(c in within for c in doc.customers))
    ]
    matching.sort(key=lambda doc: doc.time, reverse=order == "desc")
    return [doc.key for doc in matching]


COMBINATIONS = [
    ({}, {}, "TimeRangeIndex"),
    ({"customer": "acme"}, {"customer": "acme"}, "CustomerTimeIndex"),
    ({"customer": "GLOBEX"}, {"customer": "globex"}, "CustomerTimeIndex"),
    ({"status": "approved"}, {"statuses": ("approved",)}, "StatusTimeIndex"),
    (
        {"customer": "globex", "status": "draft"},
        {"customer": "globex", "statuses": ("draft",)},
        "CustomerTimeIndex",
    ),
    ({"kind": "announcement"}, {"kind": "announcement"}, "TimeRangeIndex"),
    (
        {"status": ["draft", "published"]},
        {"statuses": ("draft", "published")},
        "StatusTimeIndex",
    ),
    (
        {"customer": "acme", "kind": "change", "status": ["approved", "scheduled"]},
        {"customer": "acme", "kind": "change", "statuses": ("approved", "scheduled")},
        "CustomerTimeIndex",
    ),
    (
        {"status": "published", "kind": "announcement", "order": "asc"},
        {"statuses": ("published",), "kind": "announcement", "order": "asc"},
        "StatusTimeIndex",
    ),
]


@pytest.mark.parametrize(("params", "filters", "index"), COMBINATIONS)
def test_each_combination_walks_its_index_and_returns_each_match_once_in_order(
    api_world: ApiWorld,
    seeded: list[Seeded],
    params: dict[str, Any],
    filters: dict[str, Any],
    index: str,
) -> None:
    # Given the seeded documents and a reader key for every customer
    key = api_world.key()
    # When the query is walked three items a page
    items, pages = walk(api_world, key, {**params, "since": SINCE, "until": UNTIL}, limit=3)
    # Then every match comes exactly once, in index-time order, from the expected index
    assert [item["key"] for item in items] == expected(seeded, **filters)
    assert {page["progress"]["index"] for page in pages} == {index}
    assert "next_token" not in pages[-1]


def test_pages_are_filled_across_empty_periods(api_world: ApiWorld, seeded: list[Seeded]) -> None:
    # Given a filter matching few documents, months apart (a monthly index with empty months)
    key = api_world.key()
    wanted = expected(seeded, kind="announcement")
    # When it is walked two items a page
    items, pages = walk(
        api_world, key, {"kind": "announcement", "since": SINCE, "until": UNTIL}, limit=2
    )
    # Then every page but the last is full, and the progress moves back through the periods
    assert [item["key"] for item in items] == wanted
    assert all(page["count"] == 2 for page in pages[:-1])
    reached = [page["progress"]["reached"] for page in pages if page["progress"]["reached"]]
    assert reached == sorted(reached, reverse=True)
    assert pages[0]["progress"]["period"] == reached[0][:7]


def test_the_window_is_half_open(api_world: ApiWorld, seeded: list[Seeded]) -> None:
    # Given two documents' exact index times
    first, second = sorted(seeded, key=lambda doc: doc.time)[3:5]
    key = api_world.key()
    # When the window runs from the first to the second
    params = {"since": first.time.isoformat(), "until": second.time.isoformat()}
    items, _ = walk(api_world, key, params, limit=10)
    # Then it holds the first and not the second
    assert [item["key"] for item in items] == [first.key]


def test_fields_project_the_items_and_an_unknown_field_is_a_400(
    api_world: ApiWorld, seeded: list[Seeded]
) -> None:
    # Given a reader key
    key = api_world.key()
    # When a projection is asked for, then one with an unknown field
    projected = api_world.get(f"/v1/documents?fields=key,status&since={SINCE}&limit=5", key)
    unknown = api_world.get("/v1/documents?fields=key,body", key)
    # Then items hold exactly those fields, and the unknown field is named
    assert projected.status == 200
    assert projected.json()["items"]
    assert all(set(item) == {"key", "status"} for item in projected.json()["items"])
    assert unknown.status == 400
    assert "body" in unknown.json()["detail"]
    assert "title" in unknown.json()["allowed"]


def test_a_query_without_a_window_pages_through_the_default_window(
    api_world: ApiWorld, seeded: list[Seeded]
) -> None:
    # Given the 36 seeded documents, most of them in the default window (a year back)
    key = api_world.key()
    # When the first page is asked with limit 10 and no window
    reply = api_world.get("/v1/documents?limit=10&order=asc", key)
    # Then it is full and carries a token
    body = reply.json()
    assert body["count"] == 10
    assert body["next_token"]


def test_a_walk_returns_each_stable_item_once_while_others_come_and_go(
    api_world: ApiWorld,
) -> None:
    # Given 40 documents of one customer spread over months
    customer = f"walk{uuid.uuid4().hex[:6]}"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    stable = []
    for number in range(40):
        doc_key = f"walk/{customer}/stable-{number:02d}.json"
        when = start + timedelta(days=7 * number, minutes=number)
        index_document(
            api_world, doc_key, change(f"S{number}", customers=(customer,), modified=when)
        )
        stable.append(doc_key)
    key = api_world.key()
    churn = Churn(
        api_world,
        f"walk/{customer}",
        customer,
        lambda number: start + timedelta(days=(number * 11) % 280, seconds=30),
    )
    with churn:
        # When the customer's documents are walked five a page, in both orders, meanwhile
        walks = [
            walk(api_world, key, {"customer": customer, "since": "2025-12-01", "order": o}, 5)
            for o in ("desc", "asc")
        ]
    # Then each stable document appears exactly once, and nothing appears twice
    assert not churn.failures
    assert churn.written
    for items, _ in walks:
        keys = [item["key"] for item in items]
        assert len(keys) == len(set(keys))
        assert sorted(k for k in keys if "/stable-" in k) == stable


@pytest.mark.parametrize(("limit", "order"), [(1, "asc"), (3, "desc")])
def test_several_statuses_merge_their_lanes_across_ties_and_churn(
    api_world: ApiWorld, order: str, limit: int
) -> None:
    # Given 30 documents of one customer in three statuses, in twos and threes at the same
    # instant (ties across and within statuses), over three months
    customer = f"lanes{uuid.uuid4().hex[:6]}"
    statuses = ("approved", "draft", "scheduled")
    start = datetime(2026, 3, 1, tzinfo=UTC)
    stable: dict[str, tuple[datetime, str]] = {}
    for number in range(30):
        doc_key = f"lanes/{customer}/stable-{number:02d}.json"
        when = start + timedelta(days=3 * (number // 3), hours=number % 2)
        status = statuses[number % 3]
        index_document(
            api_world,
            doc_key,
            change(f"L{number}", customers=(customer,), status=status, modified=when),
        )
        stable[doc_key] = (when, status)
    # (an unrestricted key: a key of one customer would read that customer's partition)
    key = api_world.key()
    # Documents of the asked statuses (and one that is not asked) come and go meanwhile.
    churn = Churn(
        api_world,
        f"lanes/{customer}",
        customer,
        lambda number: start + timedelta(days=(number * 7) % 80, minutes=1),
        lambda number: (*statuses, "completed")[number % 4],
        limit=60,
        pause=0.02,
    )
    with churn:
        # When any of two statuses is walked `limit` items a page, while others change
        params = {"status": ["draft", "approved"], "since": "2026-02-01", "order": order}
        items, pages = walk(api_world, key, params, limit)
    # Then the status index served it, each stable match came exactly once, in time order,
    # and nothing came twice or with another status
    assert not churn.failures
    assert churn.written
    assert {page["progress"]["index"] for page in pages} == {"StatusTimeIndex"}
    keys = [item["key"] for item in items]
    assert len(keys) == len(set(keys))
    assert all(item["status"] in ("draft", "approved") for item in items)
    wanted = {k for k, (_, status) in stable.items() if status in ("draft", "approved")}
    assert {k for k in keys if k.startswith(f"lanes/{customer}/stable-")} == wanted
    # Documents present for the whole walk come in time order. (One written meanwhile may come
    # out of order: each lane resumes from its own place, and an item written in one lane
    # behind the page's last time but ahead of that lane's place is still ahead of the lane.)
    times = [item["index_time"] for item in items if "/stable-" in item["key"]]
    assert times == sorted(times, reverse=order == "desc")
