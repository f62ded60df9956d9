"""Experiment 1: DynamoDB Local killed and restarted in the middle of a stream of S3 events."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote_plus

import pytest

from cachesync.local import LocalStack
from cachesync.local.dynamodb_local import free_port
from cachesync.local.env_file import export_to_process_environment
from cachesync.local.event_pump import EventPump, PumpStats, QueueRoute
from cachesync.local.lambda_functions import load_handler
from cachesync.local.pipeline import CREATED_FUNCTION, LOCAL_FUNCTION_ENVIRONMENT, REMOVED_FUNCTION
from cachesync.local.provision import LocalResources
from tests.chaos.harness import (
    counting_retries,
    queue_depth,
    recent_documents,
    reset_moto,
    verify_drift,
    wait_until,
)
from tests.chaos.report import ChaosReport, Experiment
from tests.support.scale import scaled

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

DOCUMENTS = scaled(120, 600)
KILL_AFTER = DOCUMENTS // 3
DOWN_SECONDS = 5.0
# A message may fail this many receives before SQS moves it to the DLQ; with the visibility
# timeout below, the stack rides out an outage of about RECEIVES x VISIBILITY seconds.
MAX_RECEIVES = 12
VISIBILITY_SECONDS = 2
POISON_BODIES = (
    "this is not JSON",
    json.dumps({"Records": "not a list"}),
    json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]}),
)
INVALID_DOCUMENT_KEY = "changes/INVALID-not-a-document.json"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    """A stack whose DynamoDB Local keeps its tables on disk (-dbPath), on a fixed port."""
    resources = LocalResources(
        max_receive_count=MAX_RECEIVES, visibility_timeout_seconds=VISIBILITY_SECONDS
    )
    with LocalStack(
        resources, dynamodb_port=free_port(), data_dir=tmp_path / "dynamodb"
    ) as local_stack:
        try:
            yield local_stack
        finally:
            reset_moto(local_stack.moto_endpoint)


def _pump(stack: LocalStack, timeline: list[tuple[float, int, int]]) -> EventPump:
    export_to_process_environment({**stack.environment(), **LOCAL_FUNCTION_ENVIRONMENT})
    provisioned = stack.provisioned
    routes = [
        QueueRoute(
            provisioned.created_queue.url,
            provisioned.created_queue.arn,
            CREATED_FUNCTION,
            load_handler(CREATED_FUNCTION),
        ),
        QueueRoute(
            provisioned.removed_queue.url,
            provisioned.removed_queue.arn,
            REMOVED_FUNCTION,
            load_handler(REMOVED_FUNCTION),
        ),
    ]

    def on_batch(stats: PumpStats) -> None:
        timeline.append((time.monotonic(), stats.succeeded, stats.failed))

    return EventPump(stack.client("sqs"), routes, wait_seconds=1, on_batch=on_batch)


def test_events_retry_while_dynamodb_is_down_then_apply_and_only_poison_reaches_the_dlq(
    stack: LocalStack, chaos_report: ChaosReport
) -> None:
    experiment = chaos_report.add(
        Experiment(
            name="1. DynamoDB Local killed and restarted mid-stream",
            hypothesis=(
                "S3 events arriving through SQS while DynamoDB is down fail and come back after "
                "the visibility timeout, then apply once it is back; nothing is lost, and only "
                "the poison messages mixed in reach the DLQ."
            ),
            fault=(
                f"{DOCUMENTS} documents put to S3 (events via moto SQS, redrive to a DLQ after "
                f"{MAX_RECEIVES} receives, visibility {VISIBILITY_SECONDS} s) plus "
                f"{len(POISON_BODIES)} poison messages and 1 invalid document; DynamoDB Local "
                f"(-dbPath on disk) SIGKILLed after {KILL_AFTER} puts, restarted on the same "
                f"port after {DOWN_SECONDS:.0f} s while puts go on."
            ),
        )
    )
    started = time.monotonic()
    # Given the real handlers fed by the SQS pump, running
    provisioned = stack.provisioned
    s3, sqs, dynamodb = stack.client("s3"), stack.client("sqs"), stack.client("dynamodb")
    timeline: list[tuple[float, int, int]] = []
    pump = _pump(stack, timeline)
    stop = threading.Event()
    pumping = threading.Thread(target=pump.run, args=(stop,), name="chaos-pump")
    documents = recent_documents(DOCUMENTS)
    with counting_retries() as retries:
        pumping.start()
        try:
            # When documents stream in, poison is mixed in, and DynamoDB dies and comes back
            for poison in POISON_BODIES:
                sqs.send_message(QueueUrl=provisioned.created_queue.url, MessageBody=poison)
            s3.put_object(Bucket=provisioned.bucket_name, Key=INVALID_DOCUMENT_KEY, Body=b"{")
            for number, (key, body) in enumerate(documents[:KILL_AFTER]):
                s3.put_object(Bucket=provisioned.bucket_name, Key=key, Body=body)
                if number % 10 == 0:
                    time.sleep(0.05)  # a stream, not a single burst
            killed_at = time.monotonic()
            stack.dynamodb_local.kill()
            failed_before_restart = pump.stats.failed
            puts_during_outage = 0
            for key, body in documents[KILL_AFTER:]:
                s3.put_object(Bucket=provisioned.bucket_name, Key=key, Body=body)
                puts_during_outage += 1
                if time.monotonic() - killed_at >= DOWN_SECONDS / 2:
                    break
            time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - killed_at)))
            failed_while_down = pump.stats.failed - failed_before_restart
            stack.dynamodb_local.start()
            ready_at = time.monotonic()
            for key, body in documents[KILL_AFTER + puts_during_outage :]:
                s3.put_object(Bucket=provisioned.bucket_name, Key=key, Body=body)
            # Then the queues drain: every good event applied, poison in the DLQ
            drained = wait_until(
                lambda: (
                    queue_depth(sqs, provisioned.created_queue.url) == 0
                    and queue_depth(sqs, provisioned.removed_queue.url) == 0
                ),
                timeout=MAX_RECEIVES * VISIBILITY_SECONDS + 60,
            )
            drained_at = time.monotonic()
        finally:
            stop.set()
            pumping.join(timeout=30)
    dlq_bodies = sorted(
        message["Body"]
        for message in _receive_all(sqs, provisioned.created_dlq.url)
        + _receive_all(sqs, provisioned.removed_dlq.url)
    )
    # The invalid document's event is poison too: no retry makes it valid.
    dlq_events_of_invalid_document = sum(
        quote_plus(INVALID_DOCUMENT_KEY) in body for body in dlq_bodies
    )
    dlq_poison = sorted(body for body in dlq_bodies if body in POISON_BODIES)
    only_poison = (
        dlq_poison == sorted(POISON_BODIES)
        and dlq_events_of_invalid_document == 1
        and len(dlq_bodies) == len(POISON_BODIES) + 1
    )
    first_success_after = next(
        (t - ready_at for t, succeeded, _ in timeline if t > ready_at and succeeded), None
    )
    drift, totals = verify_drift(
        dynamodb, s3, table=provisioned.table_name, bucket=provisioned.bucket_name
    )
    experiment.drift = drift
    experiment.figures = {
        "documents": DOCUMENTS,
        "puts_while_dynamodb_down": puts_during_outage,
        "dynamodb_down_seconds": round(ready_at - killed_at, 1),
        "messages_received": pump.stats.received,
        "messages_succeeded": pump.stats.succeeded,
        "message_failures": pump.stats.failed,
        "message_failures_while_down": failed_while_down,
        "whole_batch_failures": pump.stats.invocation_errors,
        "retries_by_retry_policy": retries.retries,
        "seconds_to_first_apply_after_restart": (
            round(first_success_after, 1) if first_success_after is not None else None
        ),
        "seconds_from_restart_to_drained": round(drained_at - ready_at, 1),
        "dlq_messages": len(dlq_bodies),
        "dlq_bodies": [body[:120] for body in dlq_bodies],
        "verify": totals,
    }
    experiment.seconds = time.monotonic() - started
    lost = DOCUMENTS - totals["entries"]
    experiment.confirmed = (
        drained and only_poison and not any(drift.values()) and lost == 0 and failed_while_down > 0
    )
    experiment.outcome = (
        f"DynamoDB down {ready_at - killed_at:.1f} s; {pump.stats.failed} message failures "
        f"({failed_while_down} while down) and {retries.retries} retries; first event applied "
        f"{experiment.figures['seconds_to_first_apply_after_restart']} s after the restart, "
        f"queues drained {drained_at - ready_at:.1f} s after it; {totals['entries']} of "
        f"{DOCUMENTS} documents indexed ({lost} lost); DLQ holds {len(dlq_bodies)} message(s) "
        f"({'the poison and the invalid document only' if only_poison else 'NOT only poison'})."
    )
    assert drained, "the queues did not drain"
    assert failed_while_down > 0, "the outage was not felt: the experiment injected nothing"
    assert lost == 0
    assert not any(drift.values()), drift
    assert only_poison, dlq_bodies


def _receive_all(sqs: SQSClient, url: str) -> list[MessageTypeDef]:
    """Every message of a queue (received and deleted)."""
    messages: list[MessageTypeDef] = []
    while True:
        found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not found:
            return messages
        messages += found
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(found)
            ],
        )
