"""Application-path latency: fallback reads and write-throughs against raw boto3 floors.

Two measurements, in the same run, against the bench session's local stack (DynamoDB Local and
moto sharing the machine's cores with this process): per-operation latency
(``time.perf_counter``), reported as p50 and p99 over every round, with the ratio of each path
to its floor. Ratios are *latency* ratios: 2.0 means twice as slow as the floor. Absolute figures
mean little on these emulators; the ratios, taken from sides that ran at the same moments, do.

**Reads** (``FallbackReader.get_document``, built like the integration tests' ``app`` fixture:
``DynamoDBIndexStore`` and ``S3ObjectStore`` on the stack's clients, default retry policy, no
metrics). ``CACHESYNC_BENCH_APP_DOCUMENTS`` change documents (one or two customers, alternating)
are first written through ``DocumentWriter`` into one bucket and one index table, so the index
holds every one of them. Then, per round, read by read (the order of the sides rotating with each
read):

* ``hit``: a reader on that index table. Every read is answered by the index (asserted): one
  eventually consistent ``GetItem``, then our mapping.
* ``getitem``: the hit floor, a raw eventually consistent ``GetItem`` of the same item.
* ``fallback``: a reader on a *fresh, empty* index table, created for the round, each key read
  once per round. Every read is therefore a real miss, taken the way production takes one
  (asserted: source S3, reason ``absent``, backfilled): ``GetItem`` finds nothing, ``GetObject``,
  validation, and the **backfill** write conditioned on the key still being absent (one
  ``PutItem``, or one ``TransactWriteItems`` for a multi-customer document). The backfill turns
  the key into a hit for later reads; the fresh table of the next round makes it a miss again,
  so no round measures hits under the name of fallbacks.
* ``miss_floor``: a raw ``GetItem`` on its own fresh, empty table, a raw ``GetObject`` of the
  same object, then a raw conditional write of the design's items (``design_floor.py``),
  each part timed. Its *GetItem + GetObject* part is the floor the issue asks for; the whole
  (with the write) is the like-for-like floor of a miss with its backfill. Both ratios are
  reported: fallback / (GetItem + GetObject) is the cost a reader sees on a miss, backfill
  included; fallback / (GetItem + GetObject + write) is the cost of our code.

**Write-throughs** (``DocumentWriter.write_document``, no rate limiter, default retry policy):
the same documents, each side on its own bucket and, per round, its own fresh index table, so
every measured write is the first write of its key into the index (the object may already be in
S3 from an earlier round). Per document, interleaved like the reads:

* ``write_through``: no idempotency key. Beyond the floor it does one ``UpdateItem`` (the
  pending marker, which returns the entry it replaced), then the ``PutObject``, then the
  conditional commit (``PutItem``, or ``TransactWriteItems`` with the link item of a
  multi-customer document) *while* a ``HeadObject`` with ``IfMatch`` checks the LastModified
  the commit took from the PUT's ``Date`` (``PutObject`` does not return LastModified). Three
  calls in sequence against the floor's two, a fourth beside the third.
* ``write_through_idem``: the same with a fresh idempotency key per write (Powertools'
  idempotency on the stack's idempotency table): two more DynamoDB writes (the in-progress
  record, then the completed one). Reported as an extra line.
* ``floor``: one raw ``PutObject`` plus one raw conditional ``PutItem`` of a comparable item:
  the document item as the design shapes it (body, ETag, summary fields, the three GSIs' keys).
* ``design``: ``PutObject`` plus the design's write: that ``PutItem``, or for a multi-customer
  document one ``TransactWriteItems`` with the link items, as the commit does.

Every read is checked (right document, right source), every write committed (receipts, then the
index tables scanned); no threshold is asserted. Results are printed and written to
``build/bench/application_paths.json``. Sizes: ``CACHESYNC_BENCH_APP_DOCUMENTS`` (150),
``CACHESYNC_BENCH_APP_ROUNDS`` (3).
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
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from cachesync.fallback_reader import FallbackReader, MissReason, ReadResult, ReadSource
from cachesync.local import LocalStack
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.s3_objects import S3ObjectStore
from cachesync.write_through import DocumentWriter, IndexCommit, WriteReceipt
from tests.bench.conftest import change_document, customers_for
from tests.bench.design_floor import design_items, design_write, link_count, primary_customer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

pytestmark = pytest.mark.bench

DOCUMENT_COUNT: Final = int(os.environ.get("CACHESYNC_BENCH_APP_DOCUMENTS", "150"))
"""Measured operations per side and round (one per document)."""
ROUNDS: Final = int(os.environ.get("CACHESYNC_BENCH_APP_ROUNDS", "3"))
"""Rounds per phase; percentiles pool every round's samples."""
WARMUP_COUNT: Final = 10
"""Untimed operations per side at the start of each round, on documents of their own."""
RESULTS_FILE: Final = Path(__file__).resolve().parents[2] / "build/bench/application_paths.json"
_FIRST_NUMBER: Final = 5000  # document numbers apart from the sync corpus's


@dataclass(frozen=True, slots=True)
class AppDocument:
    """One document of this benchmark: its key, its exact text and what it names."""

    key: str
    text: str
    document: dict[str, Any]

    @property
    def customers(self) -> tuple[str, ...]:
        """The customer codes the document names."""
        return tuple(self.document["customers"])


def _documents(prefix: str, first: int, count: int) -> tuple[AppDocument, ...]:
    documents = []
    for number in range(first, first + count):
        document = change_document(number, customers_for(number))
        key = f"changes/{prefix}/CHG-B{number:05d}.json"
        documents.append(AppDocument(key, json.dumps(document, indent=2), document))
    return tuple(documents)


# ---------------------------------------------------------------------- sides and sampling

Operation = Callable[[AppDocument], Any]
Check = Callable[[AppDocument, Any], None]


@dataclass(slots=True)
class Side:
    """One way of doing the operation, prepared for one round."""

    name: str
    operate: Operation
    """Runs one timed operation; returns what ``check`` inspects (outside the timing)."""
    check: Check


@dataclass(slots=True)
class Samples:
    """Latencies of every side, pooled over rounds, and of the floors' timed parts."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    by_round: dict[str, list[list[float]]] = field(default_factory=lambda: defaultdict(list))
    parts: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    parts_by_round: dict[str, list[list[float]]] = field(default_factory=lambda: defaultdict(list))

    def add_round(self, measured: dict[str, list[float]], parts: dict[str, list[float]]) -> None:
        """Pool one round's latencies."""
        for name, values in measured.items():
            self.seconds[name] += values
            self.by_round[name].append(values)
        for name, values in parts.items():
            self.parts[name] += values
            self.parts_by_round[name].append(values)


@dataclass(slots=True)
class Timed:
    """What a multi-call floor returns: its result and the seconds of each of its parts."""

    value: Any
    parts: dict[str, float]


def _interleaved_round(
    sides: Sequence[Side],
    warmup: Sequence[AppDocument],
    documents: Sequence[AppDocument],
    round_number: int,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Warm every side up untimed, then time one operation per side per document, the order of
    the sides rotating with each document; check every result after its timing."""
    for document in warmup:
        for side in sides:
            side.check(document, side.operate(document))
    measured: dict[str, list[float]] = {side.name: [] for side in sides}
    parts: dict[str, list[float]] = defaultdict(list)
    gc.collect()
    for index, document in enumerate(documents):
        shift = (index + round_number) % len(sides)
        for side in (*sides[shift:], *sides[:shift]):
            started = time.perf_counter()
            result = side.operate(document)
            measured[side.name].append(time.perf_counter() - started)
            side.check(document, result)
            if isinstance(result, Timed):
                for part, seconds in result.parts.items():
                    parts[f"{side.name}.{part}"].append(seconds)
    return measured, dict(parts)


def _percentile(values: Sequence[float], q: int) -> float:
    """The ``q``-th percentile (inclusive method: p50 is the median), in milliseconds."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def _summed(samples: Samples, side: str, names: Sequence[str]) -> list[float]:
    """Per operation, the sum of the named parts of ``side`` (same operation, same moment)."""
    series = [samples.parts[f"{side}.{name}"] for name in names]
    return [sum(values) for values in zip(*series, strict=True)]


def _summed_by_round(samples: Samples, side: str, names: Sequence[str]) -> list[list[float]]:
    rounds = [samples.parts_by_round[f"{side}.{name}"] for name in names]
    return [
        [sum(values) for values in zip(*per_round, strict=True)]
        for per_round in zip(*rounds, strict=True)
    ]


# ---------------------------------------------------------------------- stack plumbing


@dataclass(slots=True)
class Plumbing:
    """The stack, and a factory of fresh index tables dropped once a round is verified."""

    stack: LocalStack
    new_table: Callable[[], str]
    admin: DynamoDBClient

    def bucket(self, name: str) -> str:
        """A new bucket on moto."""
        bucket = f"bench-{name}-{uuid.uuid4().hex[:8]}"
        self.stack.client("s3").create_bucket(Bucket=bucket)
        return bucket

    def stores(self, table: str) -> tuple[DynamoDBIndexStore, S3ObjectStore]:
        """Stores on new clients (their own connection pools), as the ``app`` fixture builds."""
        index = DynamoDBIndexStore(self.stack.client("dynamodb"), table)
        return index, S3ObjectStore(self.stack.client("s3"))

    def drop(self, *tables: str) -> None:
        """Delete tables a round is done with (DynamoDB Local keeps them in memory)."""
        for table in tables:
            self.admin.delete_table(TableName=table)

    def scan(self, table: str) -> Iterator[dict[str, Any]]:
        """Every item of ``table`` (document and link items), low-level form."""
        paginator = self.admin.get_paginator("scan")
        for page in paginator.paginate(TableName=table):
            yield from page.get("Items", [])


def _doc_key(bucket: str, key: str) -> dict[str, Any]:
    return {"pk": {"S": f"{bucket}/{key}"}, "sk": {"S": "doc"}}


# ---------------------------------------------------------------------- reads


def _check_hit(document: AppDocument, result: ReadResult) -> None:
    assert result.source is ReadSource.INDEX, f"{document.key}: not a hit ({result.miss_reason})"
    assert result.key == document.key
    assert result.body == document.text


def _check_fallback(document: AppDocument, result: ReadResult) -> None:
    assert result.source is ReadSource.S3, f"{document.key}: answered by the index"
    assert result.miss_reason is MissReason.ABSENT, f"{document.key}: {result.miss_reason}"
    assert result.backfilled, f"{document.key}: not backfilled"
    assert result.body == document.text


def _check_item(document: AppDocument, item: dict[str, Any] | None) -> None:
    assert item is not None, f"{document.key}: no item"
    assert item["body"]["S"] == document.text


def _check_miss_floor(document: AppDocument, result: Timed) -> None:
    assert result.value == document.text


def _read_sides(
    plumbing: Plumbing, bucket: str, hit_table: str, miss_table: str, floor_table: str
) -> list[Side]:
    hit_reader = FallbackReader(*plumbing.stores(hit_table), bucket=bucket)
    miss_reader = FallbackReader(*plumbing.stores(miss_table), bucket=bucket)
    getitem_client = plumbing.stack.client("dynamodb")
    floor_dynamodb, floor_s3 = plumbing.stack.client("dynamodb"), plumbing.stack.client("s3")

    def getitem(document: AppDocument) -> dict[str, Any] | None:
        response = getitem_client.get_item(TableName=hit_table, Key=_doc_key(bucket, document.key))
        return response.get("Item")

    def miss_floor(document: AppDocument) -> Timed:
        clock = time.perf_counter
        t0 = clock()
        absent = floor_dynamodb.get_item(TableName=floor_table, Key=_doc_key(bucket, document.key))
        t1 = clock()
        response = floor_s3.get_object(Bucket=bucket, Key=document.key)
        text = response["Body"].read().decode()
        t2 = clock()
        item, links = design_items(
            f"{bucket}/{document.key}",
            json.loads(text),
            {"body": {"S": text}, "etag": {"S": response["ETag"].strip('"')}},
        )
        design_write(floor_dynamodb, floor_table, item, links, "attribute_not_exists(pk)")
        t3 = clock()
        assert "Item" not in absent
        return Timed(text, {"getitem": t1 - t0, "getobject": t2 - t1, "write": t3 - t2})

    return [
        Side("hit", lambda d: hit_reader.get_document(d.key), _check_hit),
        Side("getitem", getitem, _check_item),
        Side("fallback", lambda d: miss_reader.get_document(d.key), _check_fallback),
        Side("miss_floor", miss_floor, _check_miss_floor),
    ]


def _verify_backfill(
    plumbing: Plumbing, table: str, bucket: str, documents: Sequence[AppDocument]
) -> None:
    """The fallback side's table holds exactly the design's items for what it read."""
    items = list(plumbing.scan(table))
    docs = {i["pk"]["S"]: i for i in items if i["sk"]["S"] == "doc"}
    links = sum(1 for i in items if i["sk"]["S"] != "doc")
    assert set(docs) == {f"{bucket}/{d.key}" for d in documents}
    for document in documents:
        primary = primary_customer(document.customers)
        assert docs[f"{bucket}/{document.key}"]["ct_pk"]["S"].startswith(f"{primary}#")
    assert links == sum(link_count(d.customers) for d in documents)


def _measure_reads(
    plumbing: Plumbing, warmup: Sequence[AppDocument], documents: Sequence[AppDocument]
) -> Samples:
    bucket, hit_table = plumbing.bucket("reads"), plumbing.new_table()
    loader = DocumentWriter(*plumbing.stores(hit_table), bucket=bucket)
    for document in (*warmup, *documents):
        receipt = loader.write_document(document.key, document.text)
        assert receipt.index is IndexCommit.COMMITTED
    samples = Samples()
    for round_number in range(ROUNDS):
        miss_table, floor_table = plumbing.new_table(), plumbing.new_table()
        sides = _read_sides(plumbing, bucket, hit_table, miss_table, floor_table)
        samples.add_round(*_interleaved_round(sides, warmup, documents, round_number))
        _verify_backfill(plumbing, miss_table, bucket, (*warmup, *documents))
        plumbing.drop(miss_table, floor_table)
    plumbing.drop(hit_table)
    return samples


# ---------------------------------------------------------------------- write-throughs


def _check_receipt(document: AppDocument, receipt: WriteReceipt) -> None:
    assert receipt.index is IndexCommit.COMMITTED, f"{document.key}: {receipt.index}"
    assert receipt.key == document.key
    assert receipt.etag


def _check_etag(document: AppDocument, etag: str) -> None:
    assert etag, f"{document.key}: no ETag"


@dataclass(slots=True)
class WriteRound:
    """The sides of one write round, with their tables, buckets and what they reported."""

    sides: list[Side]
    tables: dict[str, str]
    buckets: dict[str, str]
    etags: dict[str, dict[str, str]]


def _write_round(plumbing: Plumbing, buckets: dict[str, str], idempotency_table: str) -> WriteRound:
    tables = {name: plumbing.new_table() for name in buckets}
    etags: dict[str, dict[str, str]] = {name: {} for name in buckets}
    plain = DocumentWriter(
        *plumbing.stores(tables["write_through"]), bucket=buckets["write_through"]
    )
    idempotent = DocumentWriter(
        *plumbing.stores(tables["write_through_idem"]),
        bucket=buckets["write_through_idem"],
        idempotency_store=DynamoDBPersistenceLayer(
            table_name=idempotency_table, boto3_client=plumbing.stack.client("dynamodb")
        ),
    )

    def through(writer: DocumentWriter, *, keyed: bool) -> Operation:
        def operate(document: AppDocument) -> WriteReceipt:
            key = uuid.uuid4().hex if keyed else None
            return writer.write_document(document.key, document.text, idempotency_key=key)

        return operate

    def recorded(name: str) -> Check:
        def check(document: AppDocument, result: Any) -> None:
            if isinstance(result, WriteReceipt):
                _check_receipt(document, result)
                result = result.etag
            _check_etag(document, result)
            etags[name][document.key] = result

        return check

    def raw(name: str, *, design: bool) -> Operation:
        dynamodb, s3 = plumbing.stack.client("dynamodb"), plumbing.stack.client("s3")
        bucket, table = buckets[name], tables[name]

        def operate(document: AppDocument) -> str:
            response = s3.put_object(
                Bucket=bucket,
                Key=document.key,
                Body=document.text.encode(),
                ContentType="application/json",
            )
            etag = response["ETag"].strip('"')
            attributes = {"body": {"S": document.text}, "etag": {"S": etag}}
            item, links = design_items(f"{bucket}/{document.key}", document.document, attributes)
            if not design:
                links = []  # the floor: one PutItem of the document item, always
            design_write(dynamodb, table, item, links, "attribute_not_exists(pk)")
            return etag

        return operate

    sides = [
        Side("write_through", through(plain, keyed=False), recorded("write_through")),
        Side(
            "write_through_idem",
            through(idempotent, keyed=True),
            recorded("write_through_idem"),
        ),
        Side("floor", raw("floor", design=False), recorded("floor")),
        Side("design", raw("design", design=True), recorded("design")),
    ]
    return WriteRound(sides, tables, buckets, etags)


def _verify_writes(
    plumbing: Plumbing, written: WriteRound, documents: Sequence[AppDocument]
) -> None:
    """Every side's table holds a committed document item per key, with the ETag S3 returned;
    the write-throughs and the design floor hold the design's link items too."""
    for name, table in written.tables.items():
        bucket = written.buckets[name]
        items = list(plumbing.scan(table))
        docs = {i["pk"]["S"]: i for i in items if i["sk"]["S"] == "doc"}
        assert set(docs) == {f"{bucket}/{d.key}" for d in documents}, name
        for document in documents:
            item = docs[f"{bucket}/{document.key}"]
            assert item["etag"]["S"] == written.etags[name][document.key], (name, document.key)
            if name.startswith("write_through"):
                assert item["record_type"]["S"] == "document", (name, document.key)
        links = sum(1 for i in items if i["sk"]["S"] != "doc")
        expected = 0 if name == "floor" else sum(link_count(d.customers) for d in documents)
        assert links == expected, f"{name}: {links} link items, expected {expected}"


def _measure_writes(
    plumbing: Plumbing, warmup: Sequence[AppDocument], documents: Sequence[AppDocument]
) -> Samples:
    names = ("write_through", "write_through_idem", "floor", "design")
    buckets = {name: plumbing.bucket(name.replace("_", "-")) for name in names}
    idempotency_table = plumbing.stack.provisioned.idempotency_table_name
    samples = Samples()
    for round_number in range(ROUNDS):
        written = _write_round(plumbing, buckets, idempotency_table)
        samples.add_round(*_interleaved_round(written.sides, warmup, documents, round_number))
        _verify_writes(plumbing, written, (*warmup, *documents))
        plumbing.drop(*written.tables.values())
    return samples


# ---------------------------------------------------------------------- reporting


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(_percentile(values, 50), 3),
        "p99_ms": round(_percentile(values, 99), 3),
        "mean_ms": round(statistics.fmean(values) * 1000, 3),
    }


def _ratio(path: dict[str, float], floor: dict[str, float]) -> dict[str, float]:
    return {
        "p50": round(path["p50_ms"] / floor["p50_ms"], 3),
        "p99": round(path["p99_ms"] / floor["p99_ms"], 3),
    }


def _per_round_p50_ratio(paths: list[list[float]], floors: list[list[float]]) -> list[float]:
    return [
        round(statistics.median(path) / statistics.median(floor), 3)
        for path, floor in zip(paths, floors, strict=True)
    ]


def _report(reads: Samples, writes: Samples, phase_seconds: dict[str, float]) -> dict[str, Any]:
    getobject_parts = ("getitem", "getobject")
    all_parts = ("getitem", "getobject", "write")
    series: dict[str, tuple[str, list[float]]] = {
        "hit": ("index hit (FallbackReader)", reads.seconds["hit"]),
        "getitem": ("floor: raw GetItem", reads.seconds["getitem"]),
        "fallback": ("S3 fallback + backfill (FallbackReader)", reads.seconds["fallback"]),
        "getitem_getobject": (
            "floor: raw GetItem + GetObject",
            _summed(reads, "miss_floor", getobject_parts),
        ),
        "getobject": ("  of which raw GetObject", reads.parts["miss_floor.getobject"]),
        "getitem_getobject_write": (
            "floor: raw GetItem + GetObject + write",
            reads.seconds["miss_floor"],
        ),
        "write_through": ("write-through (DocumentWriter)", writes.seconds["write_through"]),
        "write_through_idem": (
            "write-through, idempotency key",
            writes.seconds["write_through_idem"],
        ),
        "floor": ("floor: raw PutObject + PutItem", writes.seconds["floor"]),
        "design": ("floor: PutObject + PutItem|Transact", writes.seconds["design"]),
    }
    stats = {name: _stats(values) for name, (_, values) in series.items()}
    ratios = {
        "hit/getitem": _ratio(stats["hit"], stats["getitem"]),
        "fallback/getitem+getobject": _ratio(stats["fallback"], stats["getitem_getobject"]),
        "fallback/getitem+getobject+write": _ratio(
            stats["fallback"], stats["getitem_getobject_write"]
        ),
        "write_through/floor": _ratio(stats["write_through"], stats["floor"]),
        "write_through/design": _ratio(stats["write_through"], stats["design"]),
        "write_through_idem/floor": _ratio(stats["write_through_idem"], stats["floor"]),
    }
    per_round = {
        "hit/getitem": _per_round_p50_ratio(reads.by_round["hit"], reads.by_round["getitem"]),
        "fallback/getitem+getobject": _per_round_p50_ratio(
            reads.by_round["fallback"], _summed_by_round(reads, "miss_floor", getobject_parts)
        ),
        "fallback/getitem+getobject+write": _per_round_p50_ratio(
            reads.by_round["fallback"], _summed_by_round(reads, "miss_floor", all_parts)
        ),
        "write_through/floor": _per_round_p50_ratio(
            writes.by_round["write_through"], writes.by_round["floor"]
        ),
        "write_through/design": _per_round_p50_ratio(
            writes.by_round["write_through"], writes.by_round["design"]
        ),
        "write_through_idem/floor": _per_round_p50_ratio(
            writes.by_round["write_through_idem"], writes.by_round["floor"]
        ),
    }
    lines = [
        "",
        f"application paths: {DOCUMENT_COUNT} documents x {ROUNDS} rounds per side, sides "
        "interleaved operation by operation; latency in ms (pooled over rounds)",
        f"{'path':<42}{'p50':>9}{'p99':>9}{'mean':>9}",
    ]
    for name, (label, _) in series.items():
        if name == "write_through":
            lines.append("")
        s = stats[name]
        lines.append(f"{label:<42}{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}{s['mean_ms']:>9.2f}")
    lines += ["", f"{'latency ratio (x the floor)':<42}{'p50':>9}{'p99':>9}   p50 per round"]
    for name, ratio in ratios.items():
        rounds = ", ".join(f"{r:.2f}" for r in per_round.get(name, []))
        lines.append(f"{name:<42}{ratio['p50']:>9.2f}{ratio['p99']:>9.2f}   {rounds}")
    lines.append(
        "phases (s): " + ", ".join(f"{name} {sec:.1f}" for name, sec in phase_seconds.items())
    )
    lines.append(f"results: {RESULTS_FILE}")
    print("\n".join(lines))
    return {
        "benchmark": "application_paths",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "documents": DOCUMENT_COUNT,
        "warmup_documents": WARMUP_COUNT,
        "rounds": ROUNDS,
        "ratio_kind": "latency: path / floor (1.0 = as fast as the floor, 2.0 = twice as slow)",
        "paths": {name: {"label": label, **stats[name]} for name, (label, _) in series.items()},
        "ratios": ratios,
        "ratios_p50_per_round": per_round,
        "phase_seconds": {name: round(sec, 2) for name, sec in phase_seconds.items()},
        "read_floor_parts_ms": {
            part: _stats(reads.parts[f"miss_floor.{part}"]) for part in all_parts
        },
    }


# ---------------------------------------------------------------------- the benchmark


# Powertools warns on every idempotent call made outside a Lambda invocation (no context to tell
# the remaining time): expected here, as in the integration tests.
@pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left:UserWarning")
def test_application_path_latency_against_raw_floors(
    bench_stack: LocalStack, fresh_table: Callable[[], str]
) -> None:
    """Reads (hits, fallbacks) and write-throughs against their floors; report p50/p99 ratios."""
    plumbing = Plumbing(bench_stack, fresh_table, bench_stack.client("dynamodb"))
    warmup = _documents("app-warmup", _FIRST_NUMBER, WARMUP_COUNT)
    documents = _documents("app", _FIRST_NUMBER + WARMUP_COUNT, DOCUMENT_COUNT)
    started = time.perf_counter()
    reads = _measure_reads(plumbing, warmup, documents)
    between = time.perf_counter()
    writes = _measure_writes(plumbing, warmup, documents)
    phases = {"reads": between - started, "writes": time.perf_counter() - between}
    report = _report(reads, writes, phases)
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    # Sanity only: every operation was checked as it ran; the figures are reported, not gated.
    for samples in (reads, writes):
        assert all(len(v) == DOCUMENT_COUNT * ROUNDS for v in samples.seconds.values())
