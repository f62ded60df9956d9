"""Backfill and verify throughput (objects/s) against raw boto3 floors, at equal concurrency.

What is measured: ``Backfill.run`` (cachesync's rebuild of the index from S3: list the bucket,
then per object, with a pool of ``workers`` threads, a ``GetObject``, validation and the guarded
index write) over one bucket of ``CACHESYNC_BENCH_BACKFILL_DOCUMENTS`` change documents (half
name one customer, half two), at ``workers=1`` and ``workers=8``. The index is built like the
CLI builds it: ``DynamoDBIndexStore`` and ``S3ObjectStore`` on clients from
``cachesync.aws_clients`` (one attempt per call, a pool of 20 connections), an unlimited rate
limiter (the CLI's ``--rps`` is a policy, not a cost), ``page_size=1000``.

Beside it, in the same session and against the same servers, a raw boto3 *floor* does the
minimum work with the same guarantees, on clients built the same way (``LocalStack.client``, that
is ``aws_clients.client`` with the emulator's endpoint) and with the same number of threads:
``ListObjectsV2`` page by page (1000 keys), then per object ``GetObject``, ``json.loads`` and the
design's write (``design_floor.py``): one conditional ``PutItem`` of the document item for a
single-customer document, one ``TransactWriteItems`` of the document item and its link item for
a two-customer one. The condition refuses to overwrite a newer state of the key
(``attribute_not_exists(pk) OR s3_last_modified <= :lm``), the guarantee a backfill must keep
against events and write-throughs that got there first.

Why side by side: DynamoDB Local and moto are slow and share the machine's two cores with this
process (moto even runs in it, as threads), so absolute figures mean little; the ratio
backfill/floor at equal concurrency says how much our code costs on top of the unavoidable I/O.
The goal is a ratio of at least 0.8; it is reported, never asserted.

How noise is kept off the ratio: a run is a whole backfill, so sides cannot be interleaved object
by object. Each side builds its clients once (as a long-running job or a warm Lambda would;
building a boto3 client takes a few hundred milliseconds here) and first runs untimed on a small
warm-up bucket at each worker count (DynamoDB Local's JIT warms up over thousands of requests).
Then each round runs the four sides (floor and backfill, at 1 and 8 workers), every run on a
fresh index table (created untimed; all dropped at the end), the two sides of each ratio back to
back; the order reverses with every round (``f1 b1 f8 b8``, then ``b8 f8 b1 f1``), so over two
rounds each side runs first and second equally. Many short rounds (a run is about a second)
rather than a few long ones: a burst of load from elsewhere then tends to hit both runs of a pair.
The objects present before the measurements are frozen out of the garbage collector (a full
collection of this process takes about 0.3 s). Medians over rounds are reported, with the
per-round ratios. Other engineers share the machine, so single rounds stay noisy: also reported is
a CPU ratio (CPU seconds of this process and of the JVM per object, floor over backfill), which
load from other processes barely moves; on one worker a run is serial, so it tracks the wall-time
ratio. Every run is verified: its table holds exactly the documents and the link items the design
requires, or the test fails.

**Verify** throughput: ``Reconciler.verify()`` over a fully indexed table (the last backfill's),
which lists the bucket, scans the index (a consistent ``Scan``) and judges every key, reading no
object when the index agrees with the listing. Its floor: the same listing, a consistent ``Scan``
of the document items projected onto what the comparison needs (key, ETag, record type, pending
time, expiry), and the comparison in Python. Both must find no drift. The repetitions alternate
the sides, on the same clients.

CPU seconds are recorded per run: this process (our code, botocore and the in-process moto server,
all threads) and the DynamoDB Local JVM. Results are printed and written to
``build/bench/backfill_throughput.json``. Sizes: ``CACHESYNC_BENCH_BACKFILL_DOCUMENTS`` (100),
``CACHESYNC_BENCH_BACKFILL_ROUNDS`` (6), ``CACHESYNC_BENCH_VERIFY_REPEATS`` (9): about a minute.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import pytest

from cachesync.backfill import Backfill, BackfillFilters, ObjectIndexer
from cachesync.index_schema import Attr, RecordType
from cachesync.local import LocalStack
from cachesync.ordering import format_time
from cachesync.reconcile import Reconciler
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.s3_objects import S3ObjectStore
from tests.bench.conftest import change_document, customers_for
from tests.bench.design_floor import design_items, design_write, link_count, primary_customer
from tests.bench.test_sync_throughput import _cpu_of, _jvm_pids

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.bench

DOCUMENT_COUNT: Final = int(os.environ.get("CACHESYNC_BENCH_BACKFILL_DOCUMENTS", "100"))
"""Objects in the bucket every run lists and indexes."""
ROUNDS: Final = int(os.environ.get("CACHESYNC_BENCH_BACKFILL_ROUNDS", "6"))
"""Runs per side and worker count; the median is reported. Even: the order reverses each round."""
VERIFY_REPEATS: Final = int(os.environ.get("CACHESYNC_BENCH_VERIFY_REPEATS", "9"))
"""Verify runs per side (alternating); the median is reported."""
WORKER_COUNTS: Final = (1, 8)
VERIFY_WORKERS: Final = 4
"""The CLI's default ``--workers`` for verify (judging needs no I/O on an agreeing index)."""
PAGE_SIZE: Final = 1000
WARMUP_COUNT: Final = 80
"""Objects of a separate bucket each side indexes untimed at each worker count, before the
rounds."""
GOAL_RATIO: Final = 0.8
RESULTS_FILE: Final = (
    Path(__file__).resolve().parents[2] / "build" / "bench" / "backfill_throughput.json"
)
FLOOR_CONDITION: Final = "attribute_not_exists(pk) OR s3_last_modified <= :lm"
"""The floor's guard: never overwrite a state S3 stamped later than the object we read."""
_FIRST_NUMBER: Final = 20000  # document numbers apart from the other benches' corpora


# ---------------------------------------------------------------------- the corpus


@dataclass(frozen=True, slots=True)
class BackfillCorpus:
    """A bucket of uploaded documents: what every run must index."""

    bucket: str
    keys: tuple[str, ...]
    customers: dict[str, tuple[str, ...]]

    @property
    def link_count(self) -> int:
        """Link items the design stores for the whole bucket."""
        return sum(link_count(customers) for customers in self.customers.values())


def _upload(s3: S3Client, name: str, first: int, count: int) -> BackfillCorpus:
    bucket = f"bench-{name}-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    keys, customers = [], {}
    for number in range(first, first + count):
        # A space in some keys, as in the sync corpus: keys travel unencoded through a listing.
        key = f"changes/{name}/CHG-B{number:05d}{' draft' if number % 5 == 0 else ''}.json"
        named = customers_for(number)
        body = json.dumps(change_document(number, named), indent=2).encode()
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
        keys.append(key)
        customers[key] = named
    return BackfillCorpus(bucket, tuple(keys), customers)


@pytest.fixture(scope="module")
def backfill_corpora(bench_stack: LocalStack) -> tuple[BackfillCorpus, BackfillCorpus]:
    """The warm-up bucket and the measured bucket, uploaded once."""
    s3 = bench_stack.client("s3")
    warmup = _upload(s3, "backfill-warmup", _FIRST_NUMBER - WARMUP_COUNT, WARMUP_COUNT)
    return warmup, _upload(s3, "backfill", _FIRST_NUMBER, DOCUMENT_COUNT)


# ---------------------------------------------------------------------- the sides


RunFn = Callable[[], int]
"""Runs one whole backfill (or floor) of the bucket; returns the objects it indexed."""


def _clients(stack: LocalStack) -> tuple[DynamoDBClient, S3Client]:
    """DynamoDB and S3 clients as cachesync builds them, with a pool for every worker."""
    dynamodb, s3 = stack.client("dynamodb"), stack.client("s3")
    for client in (dynamodb, s3):
        pool = getattr(client.meta.config, "max_pool_connections", 0)
        assert pool >= max(WORKER_COUNTS), f"{pool} connections for {max(WORKER_COUNTS)} workers"
    return dynamodb, s3


class Side(Protocol):
    """One way of indexing a bucket, with its own clients (built once, reused by every run)."""

    name: str
    label: str

    def prepare(self, corpus: BackfillCorpus, table: str, workers: int) -> RunFn:
        """A run over ``corpus`` into ``table`` with ``workers`` threads."""
        ...


class BackfillSide:
    """cachesync's ``Backfill``, wired as the CLI wires it, without a rate limit."""

    name = "backfill"
    label = "cachesync Backfill"

    def __init__(self, stack: LocalStack) -> None:
        self._dynamodb, self._s3 = _clients(stack)

    def prepare(self, corpus: BackfillCorpus, table: str, workers: int) -> RunFn:
        """The stores on this side's clients, the indexer, the job (all cheap)."""
        objects = S3ObjectStore(self._s3)
        indexer = ObjectIndexer(DynamoDBIndexStore(self._dynamodb, table), objects)  # unlimited
        job = Backfill(indexer, objects, bucket=corpus.bucket, workers=workers, page_size=PAGE_SIZE)

        def run() -> int:
            done = job.run(BackfillFilters())
            summary = done.summary
            assert done.done, "the backfill stopped before the end of the listing"
            assert summary.failed == 0, f"failed objects: {summary.failures}"
            assert summary.invalid == 0, f"invalid objects: {summary.invalid_reasons}"
            return summary.indexed

        return run


class FloorSide:
    """Raw boto3: list pages; per object GET, ``json.loads``, the design's conditional write."""

    name = "floor"
    label = "floor (list, GET, PutItem|Transact)"

    def __init__(self, stack: LocalStack) -> None:
        self._dynamodb, self._s3 = _clients(stack)

    def prepare(self, corpus: BackfillCorpus, table: str, workers: int) -> RunFn:
        """A thread pool over each listed page, like the backfill's."""
        s3, dynamodb, bucket = self._s3, self._dynamodb, corpus.bucket

        def one(key: str) -> None:
            response = s3.get_object(Bucket=bucket, Key=key)
            text = response["Body"].read().decode()
            document = json.loads(text)
            last_modified = format_time(response["LastModified"])
            attributes = {
                "body": {"S": text},
                "etag": {"S": response["ETag"].strip('"')},
                "s3_last_modified": {"S": last_modified},
            }
            item, links = design_items(f"{bucket}/{key}", document, attributes)
            values = {":lm": {"S": last_modified}}
            design_write(dynamodb, table, item, links, FLOOR_CONDITION, values)

        def run() -> int:
            done = 0
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="floor") as pool:
                arguments: dict[str, Any] = {"Bucket": bucket, "Prefix": "", "MaxKeys": PAGE_SIZE}
                while True:
                    page = s3.list_objects_v2(**arguments)
                    keys = [entry["Key"] for entry in page.get("Contents", [])]
                    for _ in pool.map(one, keys):
                        done += 1
                    if not page.get("IsTruncated"):
                        return done
                    arguments["ContinuationToken"] = page["NextContinuationToken"]

        return run


# ---------------------------------------------------------------------- timing and checking


@dataclass(slots=True)
class Run:
    """One timed run of one side."""

    side: str
    workers: int
    round: int
    objects: int
    seconds: float
    process_cpu_seconds: float
    """This process, every thread: our code or the floor's, botocore, the moto server."""
    jvm_cpu_seconds: float
    load_average: float
    """The machine's 1-minute load average just before the run (other engineers share it)."""

    @property
    def objects_per_second(self) -> float:
        """Throughput of the run."""
        return self.objects / self.seconds

    @property
    def cpu_ms_per_object(self) -> float:
        """CPU of this process and of DynamoDB Local per object, in milliseconds."""
        return (self.process_cpu_seconds + self.jvm_cpu_seconds) / self.objects * 1000

    def as_json(self) -> dict[str, Any]:
        """The raw figures of the run."""
        return {
            "side": self.side,
            "workers": self.workers,
            "round": self.round,
            "objects": self.objects,
            "seconds": round(self.seconds, 4),
            "objects_per_second": round(self.objects_per_second, 2),
            "process_cpu_seconds": round(self.process_cpu_seconds, 3),
            "jvm_cpu_seconds": round(self.jvm_cpu_seconds, 3),
            "load_average_1m_before": round(self.load_average, 2),
        }


def _timed(side: str, workers: int, round_number: int, run: RunFn, jvm_pids: Sequence[int]) -> Run:
    """Run once, timed: wall seconds, this process's CPU seconds, the JVM's CPU seconds."""
    gc.collect()
    load = os.getloadavg()[0]
    cpu0, jvm0 = time.process_time(), sum(_cpu_of(pid) for pid in jvm_pids)
    started = time.perf_counter()
    objects = run()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    jvm = sum(_cpu_of(pid) for pid in jvm_pids) - jvm0
    return Run(side, workers, round_number, objects, elapsed, cpu, jvm, load)


def _verify_table(client: DynamoDBClient, table: str, corpus: BackfillCorpus, label: str) -> None:
    """The table holds one document item per object (its primary customer's index entry) and the
    design's link items: exactly those, or the run did not index the bucket."""
    primaries: dict[str, str] = {}
    links: set[tuple[str, str]] = set()
    pages = client.get_paginator("scan").paginate(
        TableName=table, ProjectionExpression="pk, sk, ct_pk", PaginationConfig={"PageSize": 1000}
    )
    for page in pages:
        for item in page.get("Items", []):
            if item["sk"]["S"] == "doc":
                primaries[item["pk"]["S"]] = item.get("ct_pk", {}).get("S", "")
            else:
                links.add((item["pk"]["S"], item["sk"]["S"]))
    expected = {f"{corpus.bucket}/{key}": key for key in corpus.keys}
    assert len(primaries) == len(expected), (
        f"{label}: {len(primaries)} documents indexed, expected {len(expected)}"
    )
    assert set(primaries) == set(expected), f"{label}: other keys indexed than listed"
    expected_links = set()
    for pk, key in expected.items():
        customers = corpus.customers[key]
        primary = primary_customer(customers)
        assert primaries[pk].startswith(f"{primary}#"), f"{label}: {key} off its primary"
        expected_links |= {(pk, f"customer#{c}") for c in customers if c != primary}
    assert len(expected_links) == corpus.link_count
    assert links == expected_links, (
        f"{label}: {len(links)} link items, expected {len(expected_links)}"
    )


# ---------------------------------------------------------------------- backfill rounds


@dataclass(slots=True)
class Plumbing:
    """The stack, a factory of fresh index tables, and an admin client."""

    stack: LocalStack
    new_table: Callable[[], str]
    admin: DynamoDBClient

    def drop(self, table: str) -> None:
        """DynamoDB Local keeps tables in memory: drop each once verified."""
        self.admin.delete_table(TableName=table)


def _one_run(
    plumbing: Plumbing,
    corpus: BackfillCorpus,
    side: Side,
    workers: int,
    round_number: int,
    jvm_pids: Sequence[int],
) -> tuple[Run, str]:
    """A fresh table (untimed), one timed run, then the table verified."""
    table = plumbing.new_table()
    run = _timed(side.name, workers, round_number, side.prepare(corpus, table, workers), jvm_pids)
    label = f"{side.name} w{workers} round {round_number}"
    assert run.objects == len(corpus.keys), f"{label}: {run.objects} objects indexed"
    _verify_table(plumbing.admin, table, corpus, label)
    return run, table


def _measure_backfill(
    plumbing: Plumbing, sides: Sequence[Side], warmup: BackfillCorpus, corpus: BackfillCorpus
) -> tuple[list[Run], str]:
    """Warm every side up untimed, then the rounds; return the runs and one backfilled table.

    Tables are dropped only after the last round: DynamoDB Local works for a while after a
    ``DeleteTable`` returns, and that work would land in the next timed run."""
    jvm_pids = _jvm_pids()
    order = [(side, workers) for workers in WORKER_COUNTS for side in sides]
    done: list[str] = []
    for side, workers in order:
        done.append(_one_run(plumbing, warmup, side, workers, -1, jvm_pids)[1])
    runs: list[Run] = []
    kept: str | None = None
    for round_number in range(ROUNDS):
        # f1 b1 f8 b8, then b8 f8 b1 f1: the sides of a ratio back to back, each first as often.
        for side, workers in order if round_number % 2 == 0 else reversed(order):
            run, table = _one_run(plumbing, corpus, side, workers, round_number, jvm_pids)
            runs.append(run)
            if side.name == "backfill" and kept is None:
                kept = table  # verify's input: a table the backfill filled
            else:
                done.append(table)
    for table in done:
        plumbing.drop(table)
    assert kept is not None
    return runs, kept


# ---------------------------------------------------------------------- verify


def _verify_side(stack: LocalStack, corpus: BackfillCorpus, table: str) -> RunFn:
    """``Reconciler.verify()`` of the whole bucket, as the CLI builds it (no repair)."""
    reconciler = Reconciler(
        DynamoDBIndexStore(stack.client("dynamodb"), table),
        S3ObjectStore(stack.client("s3")),
        bucket=corpus.bucket,
        workers=VERIFY_WORKERS,
    )

    def run() -> int:
        report = reconciler.verify()
        assert report.objects == len(corpus.keys), report.objects
        assert report.entries == len(corpus.keys), report.entries
        assert not report.drift, f"verify found drift: {report.counts()}"
        return report.objects

    return run


def _verify_floor_side(stack: LocalStack, corpus: BackfillCorpus, table: str) -> RunFn:
    """List, one consistent ``Scan`` of the document items (projected), compare in Python."""
    s3, dynamodb = stack.client("s3"), stack.client("dynamodb")
    names = {
        "#sk": "sk",
        "#key": Attr.KEY,
        "#etag": Attr.ETAG,
        "#type": Attr.RECORD_TYPE,
        "#exp": Attr.EXPIRES_AT,
        "#pending": Attr.PENDING_SINCE,
    }
    document = RecordType.DOCUMENT.value

    def run() -> int:
        listed: dict[str, str] = {}
        arguments: dict[str, Any] = {"Bucket": corpus.bucket, "Prefix": "", "MaxKeys": PAGE_SIZE}
        while True:
            page = s3.list_objects_v2(**arguments)
            listed.update((e["Key"], e["ETag"].strip('"')) for e in page.get("Contents", []))
            if not page.get("IsTruncated"):
                break
            arguments["ContinuationToken"] = page["NextContinuationToken"]
        entries: dict[str, tuple[str, str, int | None]] = {}
        request: dict[str, Any] = {
            "TableName": table,
            "ConsistentRead": True,
            "FilterExpression": "#sk = :doc",
            # pending_since: a pending write is drift only once stale (here, none is pending).
            "ProjectionExpression": "#key, #etag, #type, #exp, #pending",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {":doc": {"S": "doc"}},
        }
        while True:
            response = dynamodb.scan(**request)
            for item in response.get("Items", []):
                expires = item.get(Attr.EXPIRES_AT, {}).get("N")
                entries[item[Attr.KEY]["S"]] = (
                    item[Attr.RECORD_TYPE]["S"],
                    item.get(Attr.ETAG, {}).get("S", ""),
                    None if expires is None else int(expires),
                )
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        now = int(time.time())

        def agrees(key: str) -> bool:
            if key not in listed or key not in entries:
                return False
            record_type, etag, expires = entries[key]
            live = expires is None or expires > now
            return record_type == document and etag == listed[key] and live

        drift = [key for key in listed.keys() | entries.keys() if not agrees(key)]
        assert not drift, f"verify floor found drift: {drift[:3]}"
        return len(listed)

    return run


def _measure_verify(plumbing: Plumbing, corpus: BackfillCorpus, table: str) -> list[Run]:
    """Verify and its floor on the same fully indexed table, alternating, on the same clients."""
    sides = {
        "verify_floor": (1, _verify_floor_side(plumbing.stack, corpus, table)),
        "verify": (VERIFY_WORKERS, _verify_side(plumbing.stack, corpus, table)),
    }
    jvm_pids = _jvm_pids()
    for _, run in sides.values():  # untimed warm-up
        run()
    runs = []
    for repeat in range(VERIFY_REPEATS):
        for name in list(sides) if repeat % 2 == 0 else reversed(sides):
            workers, run = sides[name]
            runs.append(_timed(name, workers, repeat, run, jvm_pids))
    return runs


# ---------------------------------------------------------------------- reporting


def _of(runs: Sequence[Run], side: str, workers: int | None = None) -> list[Run]:
    return [r for r in runs if r.side == side and (workers is None or r.workers == workers)]


def _summary(runs: Sequence[Run]) -> dict[str, float]:
    def per_object_ms(values: Sequence[float]) -> float:
        return round(statistics.median(values) * 1000, 3)

    return {
        "objects_per_second_median": round(
            statistics.median(r.objects_per_second for r in runs), 2
        ),
        "seconds_median": round(statistics.median(r.seconds for r in runs), 4),
        "process_cpu_ms_per_object": per_object_ms(
            [r.process_cpu_seconds / r.objects for r in runs]
        ),
        "jvm_cpu_ms_per_object": per_object_ms([r.jvm_cpu_seconds / r.objects for r in runs]),
        "cpu_ms_per_object": round(statistics.median(r.cpu_ms_per_object for r in runs), 3),
    }


def _per_round_ratios(runs: Sequence[Run], workers: int) -> list[float]:
    """backfill/floor of each round (the two runs were back to back)."""
    rates = {(r.side, r.round): r.objects_per_second for r in runs if r.workers == workers}
    rounds = sorted({r.round for r in runs})
    return [round(rates[("backfill", n)] / rates[("floor", n)], 3) for n in rounds]


def _table(title: str, rows: list[tuple[str, int, dict[str, float]]]) -> list[str]:
    lines = [
        title,
        f"{'side':<40}{'workers':>8}{'objects/s':>11}{'s/run':>8}"
        f"{'proc':>8}{'jvm':>8}{'total':>8}  <- CPU ms/object",
    ]
    for label, workers, s in rows:
        lines.append(
            f"{label:<40}{workers:>8}{s['objects_per_second_median']:>11.1f}"
            f"{s['seconds_median']:>8.3f}{s['process_cpu_ms_per_object']:>8.2f}"
            f"{s['jvm_cpu_ms_per_object']:>8.2f}{s['cpu_ms_per_object']:>8.2f}"
        )
    return lines


def _report(
    sides: Sequence[Side],
    corpus: BackfillCorpus,
    backfill_runs: list[Run],
    verify_runs: list[Run],
    seconds: dict[str, float],
) -> dict[str, Any]:
    summaries = {
        f"{side.name}_w{workers}": _summary(_of(backfill_runs, side.name, workers))
        for workers in WORKER_COUNTS
        for side in sides
    }
    summaries |= {name: _summary(_of(verify_runs, name)) for name in ("verify_floor", "verify")}

    def rate(name: str) -> float:
        return summaries[name]["objects_per_second_median"]

    ratios, per_round, cpu_ratios = {}, {}, {}
    for workers in WORKER_COUNTS:
        ratios[f"w{workers}"] = round(rate(f"backfill_w{workers}") / rate(f"floor_w{workers}"), 4)
        per_round[f"w{workers}"] = _per_round_ratios(backfill_runs, workers)
        cpu_ratios[f"w{workers}"] = round(
            summaries[f"floor_w{workers}"]["cpu_ms_per_object"]
            / summaries[f"backfill_w{workers}"]["cpu_ms_per_object"],
            4,
        )
    goal = {name: ratio >= GOAL_RATIO for name, ratio in ratios.items()}
    low, high = min(WORKER_COUNTS), max(WORKER_COUNTS)
    scaling = {
        side.name: round(rate(f"{side.name}_w{high}") / rate(f"{side.name}_w{low}"), 3)
        for side in sides
    }
    verify_ratio = round(rate("verify") / rate("verify_floor"), 4)
    singles = sum(1 for customers in corpus.customers.values() if len(customers) == 1)

    lines = [""]
    lines += _table(
        f"backfill throughput: {len(corpus.keys)} objects ({singles} with one customer, "
        f"{len(corpus.keys) - singles} with two), page size {PAGE_SIZE}, {ROUNDS} rounds "
        "(order reversing each round), fresh table per run, medians",
        [
            (side.label, workers, summaries[f"{side.name}_w{workers}"])
            for workers in WORKER_COUNTS
            for side in sides
        ],
    )
    for workers in WORKER_COUNTS:
        name = f"w{workers}"
        lines.append(
            f"ratio backfill/floor, {workers} worker{'s' if workers > 1 else ''}: "
            f"{ratios[name]:.3f}   goal >= {GOAL_RATIO}: {'MET' if goal[name] else 'NOT MET'}"
            f"   per round: {', '.join(f'{r:.2f}' for r in per_round[name])}"
            f"   CPU ratio (floor/backfill): {cpu_ratios[name]:.3f}"
        )
    lines.append(
        f"scaling {high} workers / {low}: "
        + ", ".join(f"{name} x{value:.2f}" for name, value in scaling.items())
        + "   (moto serves S3 from this process: client and server share one GIL)"
    )
    lines += [""]
    lines += _table(
        f"verify throughput: {VERIFY_REPEATS} runs per side (alternating) over a fully indexed "
        "table, medians",
        [
            ("floor (list, Scan projected, compare)", 1, summaries["verify_floor"]),
            ("cachesync Reconciler.verify", VERIFY_WORKERS, summaries["verify"]),
        ],
    )
    lines += [
        f"ratio verify/floor: {verify_ratio:.3f}",
        "phases (s): " + ", ".join(f"{name} {sec:.1f}" for name, sec in seconds.items()),
        f"results: {RESULTS_FILE}",
    ]
    print("\n".join(lines))
    return {
        "benchmark": "backfill_throughput",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "objects": len(corpus.keys),
        "single_customer_objects": singles,
        "link_items": corpus.link_count,
        "warmup_objects": WARMUP_COUNT,
        "page_size": PAGE_SIZE,
        "rounds": ROUNDS,
        "verify_repeats": VERIFY_REPEATS,
        "verify_workers": VERIFY_WORKERS,
        "sides": {
            "floor": "ListObjectsV2 pages; per object (same thread count) GetObject, json.loads, "
            "design write: single customer one conditional PutItem, two customers one "
            f"TransactWriteItems with the link item; condition {FLOOR_CONDITION!r}",
            "backfill": "cachesync Backfill.run (ObjectIndexer, unlimited rate limiter, "
            f"page_size {PAGE_SIZE})",
            "verify_floor": "ListObjectsV2 pages; consistent Scan of document items projected on "
            "key, etag, record type, expiry, pending time; compare in Python",
            "verify": f"cachesync Reconciler.verify (workers {VERIFY_WORKERS}, no repair)",
        },
        "summary": summaries,
        "ratio_backfill_floor": ratios,
        "ratio_backfill_floor_per_round": per_round,
        "cpu_ratio_floor_backfill": cpu_ratios,
        "scaling": scaling,
        "ratio_verify_floor": verify_ratio,
        "goal_ratio": GOAL_RATIO,
        "goal_met": goal,
        "phase_seconds": {name: round(sec, 2) for name, sec in seconds.items()},
        "runs": [r.as_json() for r in (*backfill_runs, *verify_runs)],
    }


# ---------------------------------------------------------------------- the benchmark


def test_backfill_and_verify_throughput_against_raw_floors(
    bench_stack: LocalStack,
    backfill_corpora: tuple[BackfillCorpus, BackfillCorpus],
    fresh_table: Callable[[], str],
) -> None:
    """Backfill and floor at 1 and 8 workers, then verify and its floor; report the ratios."""
    warmup, corpus = backfill_corpora
    plumbing = Plumbing(bench_stack, fresh_table, bench_stack.client("dynamodb"))
    sides: list[Side] = [FloorSide(bench_stack), BackfillSide(bench_stack)]
    # A full collection takes about 0.3 s in this process (moto's state, botocore's models): one
    # landing in a timed run of about a second would swamp it. Freeze what exists now, so the
    # collection before each run and any during it only walk what the runs allocate.
    gc.collect()
    gc.freeze()
    try:
        started = time.perf_counter()
        backfill_runs, table = _measure_backfill(plumbing, sides, warmup, corpus)
        between = time.perf_counter()
        verify_runs = _measure_verify(plumbing, corpus, table)
        plumbing.drop(table)
        phases = {"backfill": between - started, "verify": time.perf_counter() - between}
    finally:
        gc.unfreeze()  # the next bench module runs in this process
    report = _report(sides, corpus, backfill_runs, verify_runs, phases)
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    # Sanity only: every run was verified as it ran; the figures are reported, not gated.
    assert len(backfill_runs) == ROUNDS * len(WORKER_COUNTS) * len(sides)
    assert all(r.objects == DOCUMENT_COUNT and r.seconds > 0 for r in backfill_runs)
    assert all(r.objects == DOCUMENT_COUNT for r in verify_runs)
