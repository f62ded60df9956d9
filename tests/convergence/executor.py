"""Run one history against the world, deliver its S3 events, check it as it goes and at the end.

Events: every S3 mutation the model records becomes a pending event (the sequencer is the
mutation's number when the history has sequencers). ``deliver`` steps hand a random few pending
events to the real handlers, each through a random shape (direct S3 notification, S3 -> SQS,
S3 -> SNS -> SQS, EventBridge, EventBridge -> SQS), sometimes several in one SQS batch,
sometimes with AWS errors injected into the handler's own requests. A delivered event may come
again later (at-least-once); one that fails comes back (SQS's visibility timeout), and after
three failures goes to the DLQ; a few are dropped straight to the DLQ (a lost invocation);
``redrive`` steps put the DLQ back. Whatever is still pending when the operations end is
delayed, not lost: quiescence delivers it all, redrives the DLQ once more, and runs one
``verify --repair`` on the history's prefix.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from cachesync.backfill import BackfillFilters
from cachesync.documents import parse_document
from cachesync.exceptions import CacheSyncError, DocumentNotFoundError, InvalidDocumentError
from cachesync.local.lambda_functions import LambdaHandler, LocalLambdaContext
from cachesync.write_through import IndexCommit
from tests.convergence.checker import Checker, Divergence
from tests.convergence.history import Body, Fault, History, Op
from tests.convergence.model import Mutation, S3Model
from tests.convergence.world import BucketRig, ProcessCrash, World
from tests.support.s3_events import (
    eventbridge_event,
    load_event,
    s3_notification,
    s3_record,
    sns_envelope,
    sqs_event,
)

SHAPES: Final = ("s3", "sqs", "sns", "eventbridge", "eventbridge_sqs")
MAX_ATTEMPTS: Final = 3
MODIFIED_AT: Final = "2026-11-20T10:00:00+00:00"


@dataclass
class _Pending:
    mutation: Mutation
    attempts: int = 0


@dataclass
class Outcome:
    """What one history did and broke."""

    seed: int
    divergences: list[Divergence]
    stats: Counter[str]
    seconds: float
    log: list[str] = field(default_factory=list)


class _Run:
    def __init__(self, world: World, history: History, log: Callable[[str], None]) -> None:
        self.world = world
        self.history = history
        self.rig: BucketRig = world.rigs[history.versioned]
        self.prefix = world.prefix_for(history.seed)
        self.model = S3Model(self.rig.bucket, self.prefix, history.versioned)
        self.checker = Checker(history.seed, self.model)
        self.rng = random.Random(history.seed * 7919 + 17)
        self.stats: Counter[str] = Counter()
        self.pending: list[_Pending] = []
        self.dlq: list[_Pending] = []
        self.seen = 0
        self.delivered: set[int] = set()
        self.latest_delivered: dict[str, int] = {}
        self.log = log

    # ------------------------------------------------------------------ helpers

    def key(self, number: int) -> str:
        return f"{self.prefix}changes/k{number}.json"

    def customer(self, letter: str) -> str:
        return f"s{self.history.seed}{letter}"

    def body_bytes(self, key: str, body: Body) -> bytes:
        if not body.valid:
            number = int(body.title.removeprefix("junk") or 0)
            if number % 2:
                return b'{"object_type": "change", "customers": '  # truncated JSON
            return json.dumps({"object_type": "memo", "title": body.title}).encode()
        document = {
            "object_type": "change",
            "change_id": key.rsplit("/", 1)[-1].removesuffix(".json"),
            "title": body.title,
            "customers": [self.customer(c) for c in body.customers],
            "status": "approved",
            "modified_at": MODIFIED_AT,
        }
        return json.dumps(document).encode()

    def collect_mutations(self) -> list[Mutation]:
        fresh = self.model.mutations[self.seen :]
        self.seen = len(self.model.mutations)
        for mutation in fresh:
            self.pending.append(_Pending(mutation))
            self.log(f"      S3 #{mutation.number} {mutation.operation} {self._short(mutation)}")
        return fresh

    def _short(self, mutation: Mutation) -> str:
        name = mutation.key.removeprefix(self.prefix)
        if mutation.version is not None:
            return f"{name} etag={mutation.version.etag[:8]} v={mutation.version_id}"
        return f"{name} v={mutation.version_id} marker={mutation.delete_marker}"

    # ------------------------------------------------------------------ operations

    def run(self) -> None:
        for step, op in enumerate(self.history.ops):
            self.checker.step = step
            self.stats[f"op:{op.kind}"] += 1
            if op.fault is not None:
                self.stats[f"fault:{op.fault.kind}"] += 1
            self.log(f"  {step:2d}. {op.describe()}")
            injected = self.world.faults.injected
            try:
                self.apply(op)
            except ProcessCrash as crash:
                self.stats["saga:crashed"] += 1
                self.log(f"      process died {crash}")
            except CacheSyncError as error:
                self.stats[f"error:{type(error).__name__}"] += 1
                self.log(f"      {type(error).__name__}: {error}")
            except Exception as error:  # noqa: BLE001 - anything else is a crash to report
                self.checker.fail(
                    "crash", f"{op.describe()} raised {type(error).__name__}: {error}"
                )
            finally:
                self.rig.saga_index.crash_at = None
                self.rig.saga_objects.crash_at = None
            self.stats["fault:aws_errors_injected"] += self.world.faults.injected - injected
            self.collect_mutations()
        self.quiesce()

    def apply(self, op: Op) -> None:
        kind, key = op.kind, self.key(op.key)
        s3 = self.world.s3
        if kind == "s3_put":
            assert op.body is not None
            s3.put_object(Bucket=self.rig.bucket, Key=key, Body=self.body_bytes(key, op.body))
        elif kind == "s3_delete":
            s3.delete_object(Bucket=self.rig.bucket, Key=key)
        elif kind == "s3_delete_version":
            stack = self.model.key_model(key).stack
            if not stack or stack[-1].version_id is None:
                self.stats["noop:s3_delete_version"] += 1
                return
            s3.delete_object(Bucket=self.rig.bucket, Key=key, VersionId=stack[-1].version_id)
        elif kind in ("write_put", "write_delete"):
            self.write_through(op, key)
        elif kind in ("api_put", "api_delete"):
            self.api_write(op, key)
        elif kind == "read":
            with self.world.faults.armed(op.fault):
                try:
                    read = self.rig.reader().get_document(key)
                except DocumentNotFoundError:
                    self.log("      not found")
                    return
            self.log(f"      read {read.source.value} etag={read.etag[:8]} v={read.version_id}")
            self.checker.check_read("read", key, read.etag, read.version_id, json.loads(read.body))
        elif kind == "api_get":
            with self.world.faults.armed(op.fault):
                reply = self.api("GET", key)
            self.stats[f"api:GET:{reply['statusCode']}"] += 1
            if reply["statusCode"] == 200:
                result = json.loads(reply["body"])
                self.log(f"      api {result['source']} etag={result['etag'][:8]}")
                self.checker.check_read(
                    "api GET", key, result["etag"], result["version_id"], result["document"]
                )
        elif kind == "api_query":
            customer = self.customer(op.customer)
            reply = self.api("GET", None, query={"customer": customer, "limit": "50"})
            self.stats[f"api:query:{reply['statusCode']}"] += 1
            if reply["statusCode"] == 200:
                items = json.loads(reply["body"])["items"]
                self.log(f"      {len(items)} items")
                for item in items:
                    self.checker.check_query_item(
                        customer, item["key"], item["etag"], item.get("version_id")
                    )
        elif kind == "backfill":
            with self.world.faults.armed(op.fault):
                self.rig.backfill().run(BackfillFilters(prefixes=(self.prefix,)))
        elif kind == "deliver":
            self.deliver(op.count)
        elif kind == "redrive":
            self.stats["delivery:redriven"] += len(self.dlq)
            self.pending.extend(self.dlq)
            self.dlq = []

    def write_through(self, op: Op, key: str) -> None:
        fault = op.fault
        if fault is not None and fault.kind.startswith("crash"):
            self.rig.saga_index.crash_at = fault.kind
            self.rig.saga_objects.crash_at = fault.kind
        with self.world.faults.armed(fault):
            if op.kind == "write_put":
                assert op.body is not None
                document = self.body_bytes(key, op.body)
                receipt = self.rig.writer.write_document(key, document)
            else:
                receipt = self.rig.writer.delete_document(key)
        self.stats[f"saga:{receipt.index.value}"] += 1
        self.log(f"      receipt {receipt.index.value} etag={receipt.etag}")
        if op.kind == "write_delete" and receipt.index is IndexCommit.COMMITTED:
            self._deletion_committed(key)

    def _deletion_committed(self, key: str) -> None:
        fresh = [m for m in self.model.mutations[self.seen :] if m.key == key and m.removal]
        if fresh:
            self.checker.deletion_taken_in(key, fresh[-1].number)

    def api_write(self, op: Op, key: str) -> None:
        with self.world.faults.armed(op.fault):
            if op.kind == "api_put":
                assert op.body is not None
                reply = self.api("PUT", key, body=self.body_bytes(key, op.body).decode())
            else:
                reply = self.api("DELETE", key)
        status = reply["statusCode"]
        self.stats[f"api:{op.kind}:{status}"] += 1
        self.log(f"      api {status} {reply['body'][:160]}")
        committed = status == 200 and json.loads(reply["body"])["index"] == "committed"
        if committed and op.kind == "api_delete":
            self._deletion_committed(key)

    def api(
        self,
        method: str,
        key: str | None,
        *,
        body: str | None = None,
        query: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        sample = "query_api_put_document.json" if method != "GET" else "query_api_query.json"
        event = load_event(sample)
        path = f"/v1/documents/{key}" if key is not None else "/v1/documents"
        event["httpMethod"] = event["requestContext"]["httpMethod"] = method
        event["path"] = path
        event["requestContext"]["path"] = "/api" + path
        event["pathParameters"] = {"proxy": path.lstrip("/")}
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = (
            {name: [value] for name, value in query.items()} if query else None
        )
        event["body"] = body
        event["isBase64Encoded"] = False
        for headers in (event["headers"], event["multiValueHeaders"]):
            headers.pop("Idempotency-Key", None)
        event["headers"]["Authorization"] = f"Bearer {self.world.api_key}"
        event["multiValueHeaders"]["Authorization"] = [f"Bearer {self.world.api_key}"]
        reply: dict[str, Any] = self.rig.api(event, LocalLambdaContext(function_name="query_api"))
        if reply["statusCode"] == 500:
            self.checker.fail("api_5xx", f"{method} {path} answered 500: {reply['body'][:300]}")
        return reply

    # ------------------------------------------------------------------ deliveries

    def deliver(self, count: int, *, quiet: bool = False) -> None:
        """Deliver up to ``count`` pending events (``quiet``: no losses, no faults)."""
        for _ in range(count):
            if not self.pending:
                return
            item = self.pending.pop(self.rng.randrange(len(self.pending)))
            if not quiet and self.rng.random() < 0.05:
                self.stats["delivery:lost_to_dlq"] += 1
                self.log(f"      event #{item.mutation.number} lost (to the DLQ)")
                self.dlq.append(item)
                continue
            shape = self.rng.choice(SHAPES)
            batch = [item]
            if shape in ("sqs", "sns", "eventbridge_sqs") and self.rng.random() < 0.3:
                same = [p for p in self.pending if p.mutation.removal == item.mutation.removal]
                for extra in self.rng.sample(same, min(len(same), self.rng.randint(1, 2))):
                    self.pending.remove(extra)
                    batch.append(extra)
                if self.rng.random() < 0.2:
                    batch.append(_Pending(item.mutation, item.attempts))  # twice in one batch
                self.stats["delivery:batches"] += 1
            fault = None
            if not quiet and self.rng.random() < 0.1:
                kind = self.rng.choice(("dynamodb_throttle", "dynamodb_5xx", "dynamodb_dropped"))
                fault = Fault(kind, skip=self.rng.randint(0, 2), times=self.rng.choice((1, 2, 6)))
                self.stats[f"fault:delivery_{kind}"] += 1
            results = self.invoke(batch, shape, fault)
            for delivered, ok in zip(batch, results, strict=True):
                self.after_delivery(delivered, ok, quiet=quiet)

    def after_delivery(self, item: _Pending, ok: bool, *, quiet: bool) -> None:
        mutation = item.mutation
        if not ok:
            item.attempts += 1
            self.stats["delivery:failed"] += 1
            if item.attempts >= MAX_ATTEMPTS:
                self.stats["delivery:to_dlq"] += 1
                self.dlq.append(item)
            else:
                self.pending.append(item)
            return
        if mutation.number in self.delivered:
            self.stats["delivery:duplicate"] += 1
        if mutation.number < self.latest_delivered.get(mutation.key, 0):
            self.stats["delivery:reordered"] += 1
        self.delivered.add(mutation.number)
        self.latest_delivered[mutation.key] = max(
            self.latest_delivered.get(mutation.key, 0), mutation.number
        )
        if mutation.operation == "delete":
            self.checker.deletion_taken_in(mutation.key, mutation.number)
        if not quiet and self.rng.random() < 0.25:
            self.pending.append(_Pending(mutation))  # at least once: it comes again later

    def invoke(self, batch: list[_Pending], shape: str, fault: Fault | None) -> list[bool]:
        removal = batch[0].mutation.removal
        handler: LambdaHandler = self.rig.removed if removal else self.rig.created
        name = "s3_object_removed" if removal else "s3_object_created"
        self.stats[f"shape:{shape}"] += len(batch)
        numbers = [p.mutation.number for p in batch]
        if shape == "s3":
            event: dict[str, Any] = s3_notification(*[self.record(p.mutation) for p in batch])
        elif shape == "eventbridge":
            event = self.eventbridge(batch[0].mutation)
        else:
            if shape == "sqs":
                bodies = [s3_notification(self.record(p.mutation)) for p in batch]
            elif shape == "sns":
                bodies = [sns_envelope(s3_notification(self.record(p.mutation))) for p in batch]
            else:
                bodies = [self.eventbridge(p.mutation) for p in batch]
            event = sqs_event(*bodies)
        with self.world.faults.armed(fault):
            try:
                reply = handler(event, LocalLambdaContext(function_name=name))
            except CacheSyncError as error:  # direct and EventBridge invocations fail whole
                self.log(f"      deliver {numbers} via {shape}: failed ({error})"[:200])
                return [False] * len(batch)
            except Exception as error:  # noqa: BLE001 - anything else is a crash to report
                self.checker.fail(
                    "crash", f"{name} raised {type(error).__name__} on {numbers}: {error}"
                )
                return [False] * len(batch)
        if shape in ("s3", "eventbridge"):
            self.log(f"      deliver {numbers} via {shape}: ok")
            return [True] * len(batch)
        failed = {f["itemIdentifier"] for f in reply["batchItemFailures"]}
        ids = [record["messageId"] for record in event["Records"]]
        outcome = [message_id not in failed for message_id in ids]
        self.log(f"      deliver {numbers} via {shape}: {['ok' if o else 'FAIL' for o in outcome]}")
        return outcome

    def record(self, mutation: Mutation) -> dict[str, Any]:
        sequencer = mutation.sequencer if self.history.sequencers else None
        if mutation.version is not None:
            return s3_record(
                "ObjectCreated:Put",
                self.rig.bucket,
                mutation.key,
                etag=mutation.version.etag,
                size=len(mutation.version.body),
                sequencer=sequencer,
                version_id=mutation.version_id,
                event_time=mutation.at,
            )
        name = (
            "ObjectRemoved:DeleteMarkerCreated"
            if mutation.delete_marker
            else "ObjectRemoved:Delete"
        )
        return s3_record(
            name,
            self.rig.bucket,
            mutation.key,
            sequencer=sequencer,
            version_id=mutation.version_id,
            event_time=mutation.at,
        )

    def eventbridge(self, mutation: Mutation) -> dict[str, Any]:
        sequencer = mutation.sequencer if self.history.sequencers else None
        version = mutation.version
        event = eventbridge_event(
            "Object Created" if version is not None else "Object Deleted",
            self.rig.bucket,
            mutation.key,
            etag=version.etag if version is not None else None,
            size=len(version.body) if version is not None else None,
            sequencer=sequencer,
            version_id=mutation.version_id,
        )
        event["time"] = mutation.at.strftime("%Y-%m-%dT%H:%M:%SZ")
        event["detail"]["reason"] = "PutObject" if version is not None else "DeleteObject"
        if version is None:
            event["detail"]["deletion-type"] = (
                "Delete Marker Created" if mutation.delete_marker else "Permanently Deleted"
            )
        return event

    # ------------------------------------------------------------------ quiescence

    def quiesce(self) -> None:
        self.checker.step = -1
        self.log("  quiescence: every pending event, then the DLQ once more, then verify")
        while self.pending:
            self.deliver(len(self.pending), quiet=True)
        self.stats["delivery:redriven"] += len(self.dlq)
        self.pending, self.dlq = self.dlq, []
        for item in self.pending:
            item.attempts = 0
        while self.pending:
            self.deliver(len(self.pending), quiet=True)
        self.stats["delivery:poison"] += len(self.dlq)
        for item in self.dlq:
            current = self.model.key_model(item.mutation.key).current
            if current is not None and _valid(item.mutation.key, current.body):
                # Only an event about an invalid document may fail for good.
                self.checker.fail(
                    "converged",
                    f"event #{item.mutation.number} for {item.mutation.key} still fails after "
                    "a redrive, though S3's current object there is a valid document",
                )
        report = self.rig.reconciler().verify(BackfillFilters(prefixes=(self.prefix,)), repair=True)
        for kind, count in report.counts().items():
            self.stats[f"verify:{kind}"] += count
        self.log(f"  verify: {report.counts()} repaired {report.repaired}")
        for key, failure in report.repair_failures.items():
            current = self.model.key_model(key).current
            if failure.startswith("invalid document") and current and not _valid(key, current.body):
                # verify evicts the stale entry, then reports the key as one it cannot index:
                # the index is checked below like any other key.
                self.stats["verify:repair_reported_invalid"] += 1
                continue
            self.checker.fail("converged", f"verify could not repair {key}: {failure}")
        self.check_converged()

    def check_converged(self) -> None:
        for key, keymodel in sorted(self.model.keys.items()):
            self.checker.checks += 1
            current = keymodel.current
            in_s3 = self._s3_current(key)
            if (current.identity if current else None) != in_s3:
                self.checker.fail(
                    "model", f"{key}: the model says {current and current.identity}, S3 {in_s3}"
                )
                continue
            state = self.rig.index.get_state(self.rig.bucket, key)
            if state is not None and state.is_pending:
                self.checker.fail("converged", f"{key}: a write-through marker is still pending")
                continue
            indexed = self.rig.index.get_document(self.rig.bucket, key, consistent=True)
            if current is None or not _valid(key, current.body):
                if indexed is not None:
                    what = "absent" if current is None else "not a valid document"
                    self.checker.fail(
                        "converged",
                        f"{key}: S3's current object is {what}, the index serves "
                        f"ETag {indexed.etag} version {indexed.version_id}",
                    )
                continue
            if indexed is None:
                self.checker.fail(
                    "converged", f"{key}: S3 holds ETag {current.etag}, the index nothing"
                )
                continue
            if (indexed.etag, indexed.version_id) != current.identity or json.loads(
                indexed.body or "null"
            ) != current.document():
                self.checker.fail(
                    "converged",
                    f"{key}: S3 holds ETag {current.etag} version {current.version_id}, the "
                    f"index ETag {indexed.etag} version {indexed.version_id}",
                )

    def _s3_current(self, key: str) -> tuple[str, str | None] | None:
        try:
            head = self.world.s3.head_object(Bucket=self.rig.bucket, Key=key)
        except self.world.s3.exceptions.ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head["ETag"].strip('"'), head.get("VersionId")


def _valid(key: str, body: bytes) -> bool:
    try:
        parse_document(key, body, s3_last_modified=datetime.now(UTC))
    except InvalidDocumentError:
        return False
    return True


def run_history(
    world: World, history: History, *, log: Callable[[str], None] | None = None
) -> Outcome:
    """Run ``history`` in ``world``; ``log`` receives the operation log (verbose replays)."""
    lines: list[str] = []

    def keep(line: str) -> None:
        lines.append(line)
        if log is not None:
            log(line)

    started = time.perf_counter()
    run = _Run(world, history, keep if log is not None else lambda _: None)
    world.recorder.model = run.model
    try:
        run.run()
    finally:
        world.recorder.model = None
    run.stats["checks"] += run.checker.checks
    return Outcome(
        seed=history.seed,
        divergences=run.checker.divergences,
        stats=run.stats,
        seconds=time.perf_counter() - started,
        log=lines,
    )
