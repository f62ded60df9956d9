"""Event-sync throughput of the ``s3_object_created`` handler against a raw boto3 floor.

What is measured: records per second through the real Lambda entry point (Powertools batch
processing, event parsing, the guarded S3 read, document validation, the conditional index write)
on batches of 10 SQS records, one thread, as Lambda runs a batch. Beside it, in the same run and
against the same servers, a raw boto3 *floor* does the minimum work for the same events: parse the
body, ``GetObject`` with ``IfMatch``, ``json.loads`` the document, one conditional ``PutItem``.

Why side by side: DynamoDB Local and moto are slow and share the machine's cores with this
process, so absolute figures mean little; the ratio handler/floor says how much our code costs on
top of the unavoidable I/O. The goal is a ratio of at least 0.8. Runs of the sides are interleaved
(the order flips each round) and each side's median is taken, so machine noise hits both alike.

A second floor, ``design``, writes what the index design requires (the document item plus one
link item per customer, with the GSI keys, in one ``TransactWriteItems``), still with no cachesync
code: handler/design isolates the cost of our code from the cost of the design's extra items.

Besides wall time each run records CPU seconds of this process's main thread (the client: our
code, Powertools, pydantic, botocore), of its other threads (the in-process moto server), and of
the DynamoDB Local JVM, so the report can say where the time goes. Set
``CACHESYNC_BENCH_PROFILE=1`` to also profile one handler run with cProfile (written next to the
JSON results under ``build/bench/``).
"""

from __future__ import annotations

import cProfile
import gc
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import unquote_plus

import pytest

from cachesync import aws_clients
from cachesync.local import LocalStack
from cachesync.local.lambda_functions import LocalLambdaContext, load_handler
from cachesync.local.pipeline import CREATED_FUNCTION, LOCAL_FUNCTION_ENVIRONMENT
from cachesync.settings import export_to_process_environment
from tests.bench.conftest import BATCH_SIZE, ROUNDS, WARMUP_COUNT, BenchCorpus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

pytestmark = pytest.mark.bench

GOAL_RATIO: Final = 0.8
RESULTS_DIR: Final = Path(__file__).resolve().parents[2] / "build" / "bench"
RESULTS_FILE: Final = RESULTS_DIR / "sync_throughput.json"
PROFILE_FILE: Final = RESULTS_DIR / "sync_handler.prof"
PROFILE_TEXT_FILE: Final = RESULTS_DIR / "sync_handler_profile.txt"
_PROFILE: Final = os.environ.get("CACHESYNC_BENCH_PROFILE", "") not in ("", "0", "false")
_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")

BatchFn = Callable[[dict[str, Any]], None]


# ---------------------------------------------------------------------- resource accounting


def _jvm_pids() -> list[int]:
    """The DynamoDB Local JVM(s): ``java`` children of this process."""
    me, pids = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state, ppid, ...
        command = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == me and command == "java":
            pids.append(int(entry.name))
    return pids


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    # utime and stime are fields 14 and 15 of stat(5); 12 and 13 after the command.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class Usage:
    """Wall clock and CPU clocks at one instant."""

    wall: float
    main_thread_cpu: float
    process_cpu: float
    jvm_cpu: float

    @classmethod
    def now(cls, jvm_pids: list[int]) -> Usage:
        """Read every clock."""
        return cls(
            wall=time.perf_counter(),
            main_thread_cpu=time.thread_time(),
            process_cpu=time.process_time(),
            jvm_cpu=sum(_cpu_of(pid) for pid in jvm_pids),
        )


@dataclass(slots=True)
class RunResult:
    """One measured run of one side over every batch."""

    side: str
    round: int
    records: int
    seconds: float
    client_cpu_seconds: float
    """This process's main thread: our code, Powertools, pydantic, botocore."""
    moto_cpu_seconds: float
    """This process's other threads: the moto server answering S3."""
    jvm_cpu_seconds: float
    """DynamoDB Local."""
    batch_seconds: list[float] = field(default_factory=list)

    @property
    def records_per_second(self) -> float:
        """Throughput of the run."""
        return self.records / self.seconds

    def as_json(self) -> dict[str, Any]:
        """The raw figures, rounded for reading."""
        raw = asdict(self)
        raw["records_per_second"] = round(self.records_per_second, 2)
        raw["batch_seconds"] = [round(s, 5) for s in self.batch_seconds]
        return raw


def _measure(side: str, round_number: int, process: BatchFn, corpus: BenchCorpus) -> RunResult:
    """Time ``process`` over every measured batch, sequentially, in this thread."""
    jvms = _jvm_pids()
    gc.collect()
    before = Usage.now(jvms)
    batch_seconds = []
    for event in corpus.batches:
        started = time.perf_counter()
        process(event)
        batch_seconds.append(time.perf_counter() - started)
    after = Usage.now(jvms)
    client = after.main_thread_cpu - before.main_thread_cpu
    return RunResult(
        side=side,
        round=round_number,
        records=len(corpus.documents),
        seconds=after.wall - before.wall,
        client_cpu_seconds=client,
        moto_cpu_seconds=(after.process_cpu - before.process_cpu) - client,
        jvm_cpu_seconds=after.jvm_cpu - before.jvm_cpu,
        batch_seconds=batch_seconds,
    )


# ---------------------------------------------------------------------- the sides


class Side(Protocol):
    """One way of applying the events: set up on a fresh table, then process batches."""

    name: str

    def prepare(self, table: str) -> BatchFn:
        """Build clients (or load the handler) for ``table``; return the batch processor."""
        ...

    def expected_links(self, corpus: BenchCorpus) -> int:
        """How many customer link items the side writes for the whole corpus."""
        ...


class HandlerSide:
    """The real ``s3_object_created`` entry point, loaded afresh for each table."""

    name = "handler"

    def __init__(self, stack: LocalStack) -> None:
        self._stack = stack

    def prepare(self, table: str) -> BatchFn:
        """Export the stack's settings for ``table`` and import the handler as Lambda would."""
        export_to_process_environment(
            {
                **self._stack.environment(),
                **LOCAL_FUNCTION_ENVIRONMENT,
                "CACHESYNC_TABLE_NAME": table,
            }
        )
        handler = load_handler(CREATED_FUNCTION)

        def process(event: dict[str, Any]) -> None:
            context = LocalLambdaContext(function_name=CREATED_FUNCTION)
            response = handler(event, context)
            failures = response.get("batchItemFailures")
            if failures:
                raise AssertionError(f"handler reported failed records: {failures}")

        return process

    def expected_links(self, corpus: BenchCorpus) -> int:
        """One link item per customer a document names."""
        return sum(len(d.customers) for d in (*corpus.warmup, *corpus.documents))


class RawFloor:
    """The minimum boto3 work per record: GET with IfMatch, parse, one conditional write.

    ``design=False``: one ``PutItem`` of the document item (pk/sk, body, a few attributes).
    ``design=True``: one ``TransactWriteItems`` of the document item and one link item per
    customer, carrying the GSI key attributes the index design gives them, as the handler writes.
    """

    def __init__(self, stack: LocalStack, *, design: bool) -> None:
        self._stack = stack
        self._design = design
        self.name = "design" if design else "floor"

    def prepare(self, table: str) -> BatchFn:
        """New clients, built the way cachesync builds them (same config, same pools)."""
        s3 = aws_clients.client("s3", endpoint_url=self._stack.moto_endpoint)
        dynamodb = aws_clients.client("dynamodb", endpoint_url=self._stack.dynamodb_endpoint)
        design = self._design

        def process(event: dict[str, Any]) -> None:
            for record in event["Records"]:
                notification = json.loads(record["body"])["Records"][0]
                bucket = notification["s3"]["bucket"]["name"]
                described = notification["s3"]["object"]
                key = unquote_plus(described["key"])
                etag, sequencer = described["eTag"], described["sequencer"]
                response = s3.get_object(Bucket=bucket, Key=key, IfMatch=f'"{etag}"')
                text = response["Body"].read().decode()
                document = json.loads(text)
                item: dict[str, Any] = {
                    "pk": {"S": f"{bucket}/{key}"},
                    "sk": {"S": "doc"},
                    "body": {"S": text},
                    "etag": {"S": etag},
                    "sequencer": {"S": sequencer},
                    "doc_id": {"S": document["change_id"]},
                    "status": {"S": document["status"]},
                    "customers": {"L": [{"S": c} for c in document["customers"]]},
                }
                put = {
                    "TableName": table,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(pk) OR sequencer < :seq",
                    "ExpressionAttributeValues": {":seq": {"S": sequencer}},
                }
                if not design:
                    dynamodb.put_item(**put)
                    continue
                modified = document["modified_at"]
                month = modified[:7]
                item |= {
                    "tr_pk": {"S": month},
                    "tr_sk": {"S": modified},
                    "st_pk": {"S": f"{document['status']}#{month}"},
                    "st_sk": {"S": modified},
                }
                links = [
                    {
                        "Put": {
                            "TableName": table,
                            "Item": {
                                "pk": item["pk"],
                                "sk": {"S": f"customer#{customer}"},
                                "customer": {"S": customer},
                                "doc_id": item["doc_id"],
                                "status": item["status"],
                                "etag": item["etag"],
                                "ct_pk": {"S": f"{customer}#{modified[:4]}"},
                                "ct_sk": {"S": modified},
                            },
                        }
                    }
                    for customer in document["customers"]
                ]
                dynamodb.transact_write_items(TransactItems=[{"Put": put}, *links])  # type: ignore[list-item]

        return process

    def expected_links(self, corpus: BenchCorpus) -> int:
        """Links only in the design variant."""
        if not self._design:
            return 0
        return sum(len(d.customers) for d in (*corpus.warmup, *corpus.documents))


# ---------------------------------------------------------------------- verification


def _index_contents(client: DynamoDBClient, table: str) -> tuple[set[str], int]:
    """The partition keys of document items, and the number of link items, in ``table``."""
    documents: set[str] = set()
    links = 0
    paginator = client.get_paginator("scan")
    for page in paginator.paginate(
        TableName=table,
        ProjectionExpression="pk, sk",
        ConsistentRead=True,
    ):
        for item in page.get("Items", []):
            if item["sk"]["S"] == "doc":
                documents.add(item["pk"]["S"])
            else:
                links += 1
    return documents, links


def _verify(
    client: DynamoDBClient, table: str, side: Side, corpus: BenchCorpus, label: str
) -> None:
    """Every record of the run (warm-up included) is in ``table``: a silent failure is loud."""
    expected = {f"{corpus.bucket}/{d.key}" for d in (*corpus.warmup, *corpus.documents)}
    documents, links = _index_contents(client, table)
    missing = expected - documents
    assert not missing, f"{label}: {len(missing)} documents not indexed, e.g. {sorted(missing)[:3]}"
    assert documents == expected, f"{label}: unexpected items {sorted(documents - expected)[:3]}"
    assert links == side.expected_links(corpus), f"{label}: {links} link items"


def _run(
    side: Side,
    round_number: int,
    corpus: BenchCorpus,
    new_table: Callable[[], str],
    client: DynamoDBClient,
) -> RunResult:
    """Fresh table, warm-up batch (untimed), measured batches, verification."""
    table = new_table()
    process = side.prepare(table)
    for event in corpus.warmup_batches:
        process(event)
    result = _measure(side.name, round_number, process, corpus)
    _verify(client, table, side, corpus, f"{side.name} round {round_number}")
    client.delete_table(TableName=table)
    return result


# ---------------------------------------------------------------------- reporting


def _median_rate(results: list[RunResult]) -> float:
    return statistics.median(r.records_per_second for r in results)


def _per_record_ms(results: list[RunResult], attribute: str) -> float:
    """Median over runs of ``attribute`` (seconds per run) in milliseconds per record."""
    return statistics.median(getattr(r, attribute) / r.records * 1000 for r in results)


def _summary(results: list[RunResult]) -> dict[str, float]:
    return {
        "records_per_second_median": round(_median_rate(results), 2),
        "wall_ms_per_record": round(_per_record_ms(results, "seconds"), 3),
        "client_cpu_ms_per_record": round(_per_record_ms(results, "client_cpu_seconds"), 3),
        "moto_cpu_ms_per_record": round(_per_record_ms(results, "moto_cpu_seconds"), 3),
        "jvm_cpu_ms_per_record": round(_per_record_ms(results, "jvm_cpu_seconds"), 3),
    }


def _report(by_side: dict[str, list[RunResult]], corpus: BenchCorpus) -> dict[str, Any]:
    summaries = {name: _summary(results) for name, results in by_side.items()}
    floor = summaries["floor"]["records_per_second_median"]
    design = summaries["design"]["records_per_second_median"]
    handler = summaries["handler"]["records_per_second_median"]
    ratio = handler / floor
    labels = {
        "floor": "floor (GET + PutItem)",
        "design": "floor (GET + TransactWriteItems)",
        "handler": "handler (s3_object_created)",
    }
    lines = [
        "",
        f"event-sync throughput: {len(corpus.documents)} records in batches of {BATCH_SIZE}, "
        f"{ROUNDS} interleaved rounds, medians",
        f"{'side':<34}{'records/s':>10}{'ms/rec':>8}{'client':>8}{'moto':>8}{'jvm':>8}"
        "   (CPU ms/record)",
    ]
    for name, summary in summaries.items():
        lines.append(
            f"{labels[name]:<34}{summary['records_per_second_median']:>10.1f}"
            f"{summary['wall_ms_per_record']:>8.2f}{summary['client_cpu_ms_per_record']:>8.2f}"
            f"{summary['moto_cpu_ms_per_record']:>8.2f}{summary['jvm_cpu_ms_per_record']:>8.2f}"
        )
    verdict = "MET" if ratio >= GOAL_RATIO else "NOT MET"
    lines += [
        f"ratio handler/floor  = {ratio:.3f}   goal >= {GOAL_RATIO}: {verdict}",
        f"ratio handler/design = {handler / design:.3f}   (our code alone, same DynamoDB work)",
        f"ratio design/floor   = {design / floor:.3f}   (the design's transaction and link items)",
        "runs (records/s): "
        + "; ".join(
            f"{name} " + ", ".join(f"{r.records_per_second:.1f}" for r in results)
            for name, results in by_side.items()
        ),
        f"results: {RESULTS_FILE}",
    ]
    print("\n".join(lines))
    return {
        "benchmark": "sync_throughput",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": list(os.getloadavg()),
        "records": len(corpus.documents),
        "warmup_records": WARMUP_COUNT,
        "batch_size": BATCH_SIZE,
        "rounds": ROUNDS,
        "sides": {
            "floor": "json.loads body; GetObject IfMatch; json.loads document; PutItem (condition)",
            "design": "as floor, but TransactWriteItems: document item + one link per customer, "
            "with GSI keys",
            "handler": "functions/s3_object_created/handler.py lambda_handler, one call per batch",
        },
        "summary": summaries,
        "ratio_handler_floor": round(ratio, 4),
        "ratio_handler_design": round(handler / design, 4),
        "ratio_design_floor": round(design / floor, 4),
        "goal_ratio": GOAL_RATIO,
        "goal_met": ratio >= GOAL_RATIO,
        "runs": [r.as_json() for results in by_side.values() for r in results],
    }


def _profile_handler(
    stack: LocalStack,
    corpus: BenchCorpus,
    new_table: Callable[[], str],
    client: DynamoDBClient,
) -> None:
    """One more handler run under cProfile (main thread only); top functions to a text file."""
    side = HandlerSide(stack)
    table = new_table()
    process = side.prepare(table)
    for event in corpus.warmup_batches:
        process(event)
    profiler = cProfile.Profile()
    profiler.enable()
    for event in corpus.batches:
        process(event)
    profiler.disable()
    _verify(client, table, side, corpus, "profiled handler run")
    client.delete_table(TableName=table)
    profiler.dump_stats(PROFILE_FILE)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(30)
    PROFILE_TEXT_FILE.write_text(text.getvalue(), encoding="utf-8")
    print(f"handler profile: {PROFILE_FILE} (top functions: {PROFILE_TEXT_FILE})")


# ---------------------------------------------------------------------- the benchmark


@pytest.mark.usefixtures("restore_environment")
def test_sync_throughput_against_raw_floor(
    bench_stack: LocalStack, bench_corpus: BenchCorpus, fresh_table: Callable[[], str]
) -> None:
    """Handler and floors over the same events, interleaved; report records/s and ratios."""
    client = bench_stack.client("dynamodb")
    # The floors' clients read region and credentials from the environment, like the handler's.
    export_to_process_environment({**bench_stack.environment(), **LOCAL_FUNCTION_ENVIRONMENT})
    sides: list[Side] = [
        RawFloor(bench_stack, design=False),
        RawFloor(bench_stack, design=True),
        HandlerSide(bench_stack),
    ]
    by_side: dict[str, list[RunResult]] = {side.name: [] for side in sides}
    for round_number in range(ROUNDS):
        # Flip the order each round so that neither side always runs first (or last).
        order = sides if round_number % 2 == 0 else sides[::-1]
        for side in order:
            by_side[side.name].append(_run(side, round_number, bench_corpus, fresh_table, client))

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    report = _report(by_side, bench_corpus)
    RESULTS_FILE.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if _PROFILE:
        _profile_handler(bench_stack, bench_corpus, fresh_table, client)

    # Sanity only: the figures are reported, not gated.
    assert report["ratio_handler_floor"] > 0
    assert all(r.records == len(bench_corpus.documents) for rs in by_side.values() for r in rs)
